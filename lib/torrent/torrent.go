// Package torrent writes BitTorrent v1 metainfo files (BEP 3) for a
// single file, with web seeds (BEP 19 url-list) and magnet links, and
// reads them back.
//
// A release offers each image both from its mirror and by BitTorrent:
// the torrent's url-list names the file's URL on the mirror, so a client
// downloads from the mirror alone when nobody seeds, and from the swarm
// when others do. The magnet link (xt=urn:btih:<info hash>) is what
// people paste; a client fetches the metainfo from peers.
//
// # Scope
//
// Single-file v1 torrents only: a release publishes one torrent per
// image. No v2 (BEP 52) merkle trees, no multi-file torrents, no DHT
// nodes; trackers are optional (announce-list, BEP 12).
//
// # Decisions
//
//   - Bencoding is written here (bencode.go), about 150 lines: none of
//     the libraries allowed in this project does it, and what a torrent
//     needs is small. The decoder is strict (canonical integers, sorted
//     keys), so a parsed info dictionary re-encodes to the bytes it was
//     hashed from.
//   - Output is deterministic: no creation date, no "created by" with a
//     version, keys sorted. The same file and options give the same
//     .torrent and so the same info hash across rebuilds.
//   - The piece length is chosen from the file size (a power of two
//     between 256 KiB and 16 MiB, aiming at about 1500 pieces), so the
//     metainfo stays small (20 bytes per piece) for an image of GiBs.
package torrent

import (
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Options says what to put into the metainfo besides the file's pieces.
type Options struct {
	// Name is the file's name in the torrent, what a client saves it
	// as, e.g. distri-disk.img.zst. It must not contain a slash.
	Name string
	// WebSeeds are URLs the file is served at (BEP 19 url-list), e.g.
	// https://mirror.example/distri/img/distri-disk.img.zst.
	WebSeeds []string
	// Trackers are announce URLs (BEP 12 announce-list, one tier
	// each), e.g. udp://tracker.opentrackr.org:1337/announce. Empty:
	// none, clients find peers through DHT or web seeds only.
	Trackers []string
	// PieceLength is the piece size in bytes, a power of two of at least
	// 16 KiB; 0 chooses one from the file size.
	PieceLength int64
	// Comment, if set, is the metainfo's comment.
	Comment string
}

// Torrent is a metainfo file made by [Make] or read by [Parse].
type Torrent struct {
	Name        string     // e.g. distri-disk.img.zst
	Length      int64      // the file's size in bytes
	PieceLength int64      // e.g. 262144
	Pieces      [][20]byte // SHA-1 of each piece
	WebSeeds    []string
	Trackers    []string
	InfoHash    [20]byte // SHA-1 of the bencoded info dictionary
	// Metainfo is the .torrent file's content.
	Metainfo []byte
}

// PieceLengthFor returns the piece length [Make] uses for a file of
// size bytes when Options.PieceLength is 0.
func PieceLengthFor(size int64) int64 {
	l := int64(256 << 10)
	for l < 16<<20 && size/l > 1500 {
		l *= 2
	}
	return l
}

// Make reads the file's content from r (size bytes) and returns its
// torrent.
func Make(r io.Reader, size int64, opts Options) (*Torrent, error) {
	if opts.Name == "" || strings.ContainsAny(opts.Name, "/\x00") || opts.Name == "." || opts.Name == ".." {
		return nil, fmt.Errorf("torrent: bad file name %q", opts.Name)
	}
	pl := opts.PieceLength
	if pl == 0 {
		pl = PieceLengthFor(size)
	}
	if pl < 16<<10 || pl&(pl-1) != 0 {
		return nil, fmt.Errorf("torrent %s: piece length %d is not a power of two of at least 16 KiB", opts.Name, pl)
	}
	for _, u := range append(append([]string(nil), opts.WebSeeds...), opts.Trackers...) {
		if _, err := url.Parse(u); err != nil || !strings.Contains(u, "://") {
			return nil, fmt.Errorf("torrent %s: bad URL %q", opts.Name, u)
		}
	}
	t := &Torrent{Name: opts.Name, Length: size, PieceLength: pl, WebSeeds: opts.WebSeeds, Trackers: opts.Trackers}
	buf := make([]byte, pl)
	var read int64
	for read < size {
		n, err := io.ReadFull(r, buf[:min(pl, size-read)])
		read += int64(n)
		if err != nil {
			return nil, fmt.Errorf("torrent %s: read at %d of %d bytes: %w", opts.Name, read, size, err)
		}
		t.Pieces = append(t.Pieces, sha1.Sum(buf[:n]))
	}
	pieces := make([]byte, 0, 20*len(t.Pieces))
	for _, p := range t.Pieces {
		pieces = append(pieces, p[:]...)
	}
	info := map[string]any{
		"name":         opts.Name,
		"length":       size,
		"piece length": pl,
		"pieces":       pieces,
	}
	infoB, err := encode(nil, info)
	if err != nil {
		return nil, err
	}
	t.InfoHash = sha1.Sum(infoB)
	meta := map[string]any{"info": info}
	if len(opts.Trackers) > 0 {
		meta["announce"] = opts.Trackers[0]
		var tiers []any
		for _, tr := range opts.Trackers {
			tiers = append(tiers, []any{tr})
		}
		meta["announce-list"] = tiers
	}
	if len(opts.WebSeeds) > 0 {
		var ws []any
		for _, u := range opts.WebSeeds {
			ws = append(ws, u)
		}
		meta["url-list"] = ws
	}
	if opts.Comment != "" {
		meta["comment"] = opts.Comment
	}
	if t.Metainfo, err = encode(nil, meta); err != nil {
		return nil, err
	}
	return t, nil
}

// Parse reads a single-file v1 metainfo file.
func Parse(b []byte) (*Torrent, error) {
	v, rest, err := decode(b, 0)
	if err != nil {
		return nil, fmt.Errorf("parse torrent: %w", err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("parse torrent: %d bytes after the metainfo", len(rest))
	}
	meta, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("parse torrent: not a dictionary")
	}
	info, ok := meta["info"].(map[string]any)
	if !ok {
		return nil, errors.New("parse torrent: no info dictionary")
	}
	infoB, err := encode(nil, info)
	if err != nil {
		return nil, fmt.Errorf("parse torrent: %w", err)
	}
	t := &Torrent{InfoHash: sha1.Sum(infoB), Metainfo: b}
	name, _ := info["name"].(string)
	length, lok := info["length"].(int64)
	pl, pok := info["piece length"].(int64)
	pieces, _ := info["pieces"].(string)
	if name == "" || !lok || !pok || length < 0 || pl <= 0 || len(pieces)%20 != 0 {
		return nil, errors.New("parse torrent: info is not a single file's (name, length, piece length, pieces)")
	}
	if want := (length + pl - 1) / pl; int64(len(pieces)/20) != want {
		return nil, fmt.Errorf("parse torrent: %d pieces for %d bytes in pieces of %d, want %d", len(pieces)/20, length, pl, want)
	}
	t.Name, t.Length, t.PieceLength = name, length, pl
	for i := 0; i < len(pieces); i += 20 {
		t.Pieces = append(t.Pieces, [20]byte([]byte(pieces[i:i+20])))
	}
	switch ws := meta["url-list"].(type) {
	case string:
		t.WebSeeds = []string{ws}
	case []any:
		for _, u := range ws {
			if s, ok := u.(string); ok {
				t.WebSeeds = append(t.WebSeeds, s)
			}
		}
	}
	if tiers, ok := meta["announce-list"].([]any); ok {
		for _, tier := range tiers {
			l, _ := tier.([]any)
			for _, u := range l {
				if s, ok := u.(string); ok {
					t.Trackers = append(t.Trackers, s)
				}
			}
		}
	} else if a, ok := meta["announce"].(string); ok {
		t.Trackers = []string{a}
	}
	return t, nil
}

// Magnet returns the torrent's magnet link: the info hash (xt), the
// file's name (dn) and size (xl), trackers (tr) and web seeds (ws).
func (t *Torrent) Magnet() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(hex.EncodeToString(t.InfoHash[:]))
	b.WriteString("&dn=" + url.QueryEscape(t.Name))
	fmt.Fprintf(&b, "&xl=%d", t.Length)
	for _, tr := range t.Trackers {
		b.WriteString("&tr=" + url.QueryEscape(tr))
	}
	for _, ws := range t.WebSeeds {
		b.WriteString("&ws=" + url.QueryEscape(ws))
	}
	return b.String()
}
