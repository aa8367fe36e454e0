// Package release assembles a release folder the way a distri mirror
// offers images: zstd-compressed images, a signed checksum list, one
// BitTorrent metainfo file per image with the mirror as web seed, and a
// README and index.html that list magnet links.
//
// # Layout
//
//	<dir>/img/<name>.zst            compressed images and tars (Artifact.Compress)
//	<dir>/img/<name>                files published as they are (e.g. distri-gce.tar.gz)
//	<dir>/img/<file>.torrent        BitTorrent v1 metainfo (Artifact.Torrent), url-list <url>img/<file>
//	<dir>/img/README, index.html    what is here, sizes, SHA-256, magnet links, how to verify
//	<dir>/img/SHA256SUMS            sha256sum(1) format over every file above
//	<dir>/img/SHA256SUMS.minisig    minisign signature by the repository key
//
// <dir> is served at Options.URL; a mirror puts it next to a
// repository's pkg/ (one URL prefix, /img/ and /pkg/, as the original
// distri's mirrors did).
//
// # Decisions
//
//   - Nothing half-written becomes visible: the new img/ is assembled in
//     a hidden sibling folder and exchanged with the old one in one
//     renameat2(RENAME_EXCHANGE); a mirror serving <dir> sees the old
//     release or the new one, with matching SHA256SUMS.
//   - Deterministic: the same inputs and options give byte-identical
//     files. zstd output does not depend on the number of goroutines
//     (klauspost's concurrent blocks split the input at fixed offsets),
//     torrents carry no creation date, Ed25519 signatures are
//     deterministic, and the signature's time stamp is the newest input's
//     mtime unless Options.Time says otherwise.
//   - Sparse images: an 8 GiB disk image holds a few hundred MiB of
//     data. Holes are found with SEEK_DATA/SEEK_HOLE and fed to the
//     encoder as zeros from memory; klauspost encodes a block of zeros
//     as one RLE block after a single matchLen scan, so holes cost
//     memory bandwidth, not disk reads.
//   - Compression is klauspost/compress's zstd (an allowed dependency, in
//     process, parallel), not the zstd CLI; the result is a standard zstd
//     frame with a checksum that zstd -t and unzstd accept. klauspost has
//     no long-distance matcher: docs/release.md compares ratio and time
//     with zstd -T0 -19 --long (bench/release.go measures it).
package release

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/repo"
	"distri.dev/distri/lib/torrent"
)

// Names of the files [Make] writes besides the artifacts.
const (
	ImgDir        = "img"
	SumsFile      = "SHA256SUMS"
	SignatureFile = "SHA256SUMS.minisig"
	ReadmeFile    = "README"
	HTMLFile      = "index.html"
)

// Artifact is one file to publish.
type Artifact struct {
	// Src is the input file, e.g. distri-disk.img.
	Src string
	// Compress publishes the zstd compression of Src as Name.
	Compress bool
	// Name is the published file's name; empty means Src's base name,
	// with ".zst" appended when Compress is set, e.g.
	// distri-disk.img.zst.
	Name string
	// Torrent also publishes Name.torrent and lists its magnet link.
	Torrent bool
	// Title says in a few words what the file is, for README and
	// index.html, e.g. "UEFI disk image, console on screen".
	Title string
}

// Options says what to publish where.
type Options struct {
	// Dir is the release folder, e.g. release; [Make] writes Dir/img.
	Dir string
	// URL is where Dir is served, e.g. https://mirror.example/distri/;
	// web seeds are URL + "img/" + name. Required when an artifact has
	// a torrent.
	URL string
	// Artifacts are the files to publish, in the order README lists them.
	Artifacts []Artifact
	// Key signs SHA256SUMS.
	Key minisign.PrivateKey
	// Trackers are announce URLs put into torrents and magnet links;
	// empty means none (web seed, DHT and peer exchange only).
	Trackers []string
	// Time is the signature's time stamp; zero means the newest mtime
	// of the artifacts' sources, so a rebuild from the same inputs
	// signs the same comment.
	Time time.Time
	// Compress tunes compression.
	Compress CompressOptions
	// Log receives a line per file written; nil discards.
	Log *log.Logger
}

// File is one published file.
type File struct {
	Name   string // e.g. distri-disk.img.zst
	Title  string
	Size   int64
	SHA256 string // lowercase hex
	// Uncompressed is the source's size for compressed files, else 0.
	Uncompressed int64
	// Data is the bytes of Src in data extents (compressed files).
	Data     int64
	Elapsed  time.Duration // time to compress or copy
	Torrent  string        // e.g. distri-disk.img.zst.torrent, or empty
	InfoHash string        // hex, or empty
	Magnet   string        // or empty
}

// Result lists what [Make] published.
type Result struct {
	Dir   string // Options.Dir/img
	Files []File // the artifacts, in Options.Artifacts' order
}

// Make writes the release into opts.Dir/img, replacing a previous one
// atomically.
func Make(opts Options) (*Result, error) {
	logf := func(string, ...any) {}
	if opts.Log != nil {
		logf = opts.Log.Printf
	}
	if err := check(&opts); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	stage, err := os.MkdirTemp(opts.Dir, ".img-new-")
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(stage)
		}
	}()
	if err := os.Chmod(stage, 0o755); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}

	res := &Result{Dir: filepath.Join(opts.Dir, ImgDir)}
	for _, a := range opts.Artifacts {
		f, err := publish(stage, a, opts.Compress)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w", a.Name, err)
		}
		if f.Uncompressed > 0 {
			logf("%s: %d bytes (%d in data extents) -> %d bytes in %v", f.Name, f.Uncompressed, f.Data, f.Size, f.Elapsed.Round(time.Millisecond))
		} else {
			logf("%s: %d bytes", f.Name, f.Size)
		}
		if a.Torrent {
			if err := makeTorrent(stage, &f, opts); err != nil {
				return nil, fmt.Errorf("release %s: %w", a.Name, err)
			}
			logf("%s: %s", f.Torrent, f.Magnet)
		}
		res.Files = append(res.Files, f)
	}

	page := pageData{URL: opts.URL, Files: res.Files, KeyID: opts.Key.ID.String()}
	readme, err := renderReadme(page)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	html, err := renderHTML(page)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	for name, b := range map[string][]byte{ReadmeFile: readme, HTMLFile: html} {
		if err := writeFile(filepath.Join(stage, name), b); err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
	}

	sums, err := checksums(stage)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := writeFile(filepath.Join(stage, SumsFile), sums); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	stamp := repo.Stamp{Signed: opts.Time, File: SumsFile}
	sig, err := minisign.Sign(opts.Key, bytes.NewReader(sums), stamp.String())
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := writeFile(filepath.Join(stage, SignatureFile), sig); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	if err := syncDir(stage); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}

	// Swap the new img/ in; the old one (if any) ends up in stage.
	err = unix.Renameat2(unix.AT_FDCWD, stage, unix.AT_FDCWD, res.Dir, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.ENOENT) {
		err = os.Rename(stage, res.Dir)
		committed = err == nil
	}
	if err != nil {
		return nil, fmt.Errorf("release: replace %s: %w", res.Dir, err)
	}
	if err := syncDir(opts.Dir); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return res, nil
}

// check validates opts and fills in defaults.
func check(opts *Options) error {
	if opts.Dir == "" {
		return errors.New("no release folder")
	}
	if len(opts.Artifacts) == 0 {
		return errors.New("nothing to publish")
	}
	if opts.Key.Key == nil {
		return errors.New("no key to sign with")
	}
	seen := map[string]bool{SumsFile: true, SignatureFile: true, ReadmeFile: true, HTMLFile: true}
	torrents := false
	var newest time.Time
	for i := range opts.Artifacts {
		a := &opts.Artifacts[i]
		fi, err := os.Stat(a.Src)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", a.Src)
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		if a.Name == "" {
			a.Name = filepath.Base(a.Src)
			if a.Compress {
				a.Name += ".zst"
			}
		}
		if strings.ContainsAny(a.Name, "/\x00\n\r\\") || strings.HasPrefix(a.Name, ".") || !isPrintable(a.Name) {
			return fmt.Errorf("%s: bad file name %q", a.Src, a.Name)
		}
		if seen[a.Name] || a.Torrent && seen[a.Name+".torrent"] {
			return fmt.Errorf("%s: file name %q used twice", a.Src, a.Name)
		}
		seen[a.Name] = true
		if a.Torrent {
			seen[a.Name+".torrent"] = true
			torrents = true
		}
	}
	if torrents {
		u, err := url.Parse(opts.URL)
		if err != nil || opts.URL == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("release URL %q: want an http:// or https:// URL of the release folder (torrents' web seeds point into it)", opts.URL)
		}
		if !strings.HasSuffix(opts.URL, "/") {
			opts.URL += "/"
		}
	}
	for _, tr := range opts.Trackers {
		if u, err := url.Parse(tr); err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("tracker %q: not an announce URL", tr)
		}
	}
	if opts.Time.IsZero() {
		opts.Time = newest
	}
	return nil
}

func isPrintable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// publish writes a's file into dir and returns its description.
func publish(dir string, a Artifact, copts CompressOptions) (File, error) {
	f := File{Name: a.Name, Title: a.Title}
	out, err := os.OpenFile(filepath.Join(dir, a.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return f, err
	}
	defer out.Close()
	h := sha256.New()
	w := io.MultiWriter(out, h)
	start := time.Now()
	if a.Compress {
		st, err := Compress(w, a.Src, copts)
		if err != nil {
			return f, err
		}
		f.Uncompressed, f.Data, f.Size = st.In, st.Data, st.Out
	} else {
		in, err := os.Open(a.Src)
		if err != nil {
			return f, err
		}
		defer in.Close()
		if f.Size, err = io.Copy(w, in); err != nil {
			return f, fmt.Errorf("copy %s: %w", a.Src, err)
		}
	}
	f.Elapsed = time.Since(start)
	if err := out.Sync(); err != nil {
		return f, err
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	return f, out.Close()
}

// makeTorrent writes f.Name.torrent into dir, hashing the published file.
func makeTorrent(dir string, f *File, opts Options) error {
	in, err := os.Open(filepath.Join(dir, f.Name))
	if err != nil {
		return err
	}
	defer in.Close()
	t, err := torrent.Make(in, f.Size, torrent.Options{
		Name:     f.Name,
		WebSeeds: []string{opts.URL + ImgDir + "/" + url.PathEscape(f.Name)},
		Trackers: opts.Trackers,
	})
	if err != nil {
		return err
	}
	f.Torrent = f.Name + ".torrent"
	f.InfoHash = hex.EncodeToString(t.InfoHash[:])
	f.Magnet = t.Magnet()
	return writeFile(filepath.Join(dir, f.Torrent), t.Metainfo)
}

// checksums returns SHA256SUMS for every file in dir, sorted by name.
func checksums(dir string) ([]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Name() != SumsFile && e.Name() != SignatureFile {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hash %s: %w", n, err)
		}
		fmt.Fprintf(&b, "%x  %s\n", h.Sum(nil), n)
	}
	return b.Bytes(), nil
}

func writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
