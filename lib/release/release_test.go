package release_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/release"
	"distri.dev/distri/lib/torrent"
)

// sparseImage writes a 64 MiB sparse file with data at the start, two
// extents separated by a hole shorter than release.MinHole, one in the
// middle, and a hole to the end.
func sparseImage(t *testing.T, path string, seed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 20); err != nil {
		t.Fatal(err)
	}
	text := bytes.Repeat([]byte("distri packages are SquashFS images mounted under /ro. "), 5000)
	for i, off := range []int64{0, 4 << 20, 4<<20 + 600<<10, 30<<20 + 12345} {
		if _, err := f.WriteAt(text, off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(distritest.Bytes(100<<10, seed+int64(i)), off+int64(len(text))); err != nil {
			t.Fatal(err)
		}
	}
}

func sha(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func shaFile(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return sha(t, f)
}

type fixture struct {
	key     minisign.PrivateKey
	pubPath string
	inputs  map[string]string // published name -> source
	arts    []release.Artifact
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	in := t.TempDir()
	k, err := minisign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := minisign.WriteKeyFiles(filepath.Join(in, "distri"), k, false)
	if err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(in, "distri-disk.img")
	serial := filepath.Join(in, "distri-qemu-serial.img")
	sparseImage(t, disk, 1)
	sparseImage(t, serial, 2)
	gce := filepath.Join(in, "distri-gce.tar.gz")
	if err := os.WriteFile(gce, distritest.Bytes(70<<10, 3), 0o644); err != nil {
		t.Fatal(err)
	}
	return &fixture{
		key: k, pubPath: pub,
		inputs: map[string]string{"distri-disk.img.zst": disk, "distri-qemu-serial.img.zst": serial, "distri-gce.tar.gz": gce},
		arts: []release.Artifact{
			{Src: disk, Compress: true, Torrent: true, Title: "UEFI disk image <default>"},
			{Src: serial, Compress: true, Torrent: true, Title: "console on ttyS0 only"},
			{Src: gce, Title: "Google Compute Engine image"},
		},
	}
}

// TestRelease makes a release of two sparse images and a tar and checks
// it with the real tools: minisign, sha256sum, zstd, aria2c downloading
// each image from its web seed alone, and chromium rendering index.html.
func TestRelease(t *testing.T) {
	for _, tool := range []string{"minisign", "sha256sum", "zstd", "aria2c"} {
		distritest.NeedTool(t, tool)
	}
	fx := newFixture(t)
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	base := srv.URL + "/"
	res, err := release.Make(release.Options{Dir: dir, URL: base, Artifacts: fx.arts, Key: fx.key})
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, release.ImgDir)
	if res.Dir != img {
		t.Errorf("Result.Dir = %q, want %q", res.Dir, img)
	}

	t.Run("minisign", func(t *testing.T) {
		out, err := exec.Command("minisign", "-V", "-p", fx.pubPath, "-m", filepath.Join(img, release.SumsFile)).CombinedOutput()
		if err != nil {
			t.Fatalf("minisign -V: %v\n%s", err, out)
		}
	})
	t.Run("sha256sum", func(t *testing.T) {
		cmd := exec.Command("sha256sum", "--strict", "-c", release.SumsFile)
		cmd.Dir = img
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, out)
		}
		ents, _ := os.ReadDir(img)
		for _, e := range ents {
			if n := e.Name(); n != release.SumsFile && n != release.SignatureFile && !strings.Contains(string(out), n+": OK") {
				t.Errorf("SHA256SUMS does not cover %s:\n%s", n, out)
			}
		}
	})
	t.Run("zstd", func(t *testing.T) {
		for name, src := range fx.inputs {
			if !strings.HasSuffix(name, ".zst") {
				if got, want := shaFile(t, filepath.Join(img, name)), shaFile(t, src); got != want {
					t.Errorf("%s: sha256 %s, want the input's %s", name, got, want)
				}
				continue
			}
			p := filepath.Join(img, name)
			if out, err := exec.Command("zstd", "-t", p).CombinedOutput(); err != nil {
				t.Errorf("zstd -t %s: %v\n%s", name, err, out)
			}
			cmd := exec.Command("zstd", "-d", "-c", p)
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			got := sha(t, stdout)
			if err := cmd.Wait(); err != nil {
				t.Errorf("%v: %v", cmd.Args, err)
			}
			if want := shaFile(t, src); got != want {
				t.Errorf("zstd -d %s: sha256 %s, want the input's %s", name, got, want)
			}
		}
	})
	t.Run("aria2c", func(t *testing.T) {
		for _, f := range res.Files {
			if f.Torrent == "" {
				continue
			}
			tb, err := os.ReadFile(filepath.Join(img, f.Torrent))
			if err != nil {
				t.Fatal(err)
			}
			tor, err := torrent.Parse(tb)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tor.WebSeeds, []string{base + "img/" + f.Name}; !slices.Equal(got, want) {
				t.Errorf("%s: url-list %q, want %q", f.Torrent, got, want)
			}
			m, err := url.Parse(f.Magnet)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := m.Query().Get("xt"), "urn:btih:"+hex.EncodeToString(tor.InfoHash[:]); got != want {
				t.Errorf("%s: magnet xt=%s, want the torrent's info hash %s", f.Name, got, want)
			}
			// aria2c's own reading of the info hash.
			show, err := exec.Command("aria2c", "-S", filepath.Join(img, f.Torrent)).CombinedOutput()
			if err != nil {
				t.Fatalf("aria2c -S: %v\n%s", err, show)
			}
			if want := "Info Hash: " + f.InfoHash; !strings.Contains(string(show), want) {
				t.Errorf("aria2c -S %s does not say %q:\n%s", f.Torrent, want, show)
			}
			dl := t.TempDir()
			cmd := exec.Command("aria2c", "--dir", dl, "--seed-time=0", "--enable-dht=false", "--enable-dht6=false",
				"--bt-enable-lpd=false", "--enable-peer-exchange=false", "--no-conf",
				"--console-log-level=warn", "--summary-interval=0", "--bt-stop-timeout=60", filepath.Join(img, f.Torrent))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			if got, want := shaFile(t, filepath.Join(dl, f.Name)), f.SHA256; got != want {
				t.Errorf("aria2c downloaded %s with sha256 %s, want %s", f.Name, got, want)
			}
		}
	})
	t.Run("readme", func(t *testing.T) {
		readme, err := os.ReadFile(filepath.Join(img, release.ReadmeFile))
		if err != nil {
			t.Fatal(err)
		}
		html, err := os.ReadFile(filepath.Join(img, release.HTMLFile))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Files {
			if f.Magnet == "" {
				continue
			}
			if !strings.Contains(string(readme), f.Magnet) {
				t.Errorf("README lacks %s's magnet %s", f.Name, f.Magnet)
			}
			if !strings.Contains(string(html), strings.ReplaceAll(f.Magnet, "&", "&amp;")) {
				t.Errorf("index.html lacks %s's magnet", f.Name)
			}
		}
		if strings.Contains(string(html), "<default>") {
			t.Errorf("index.html has the title unescaped")
		}
	})
	t.Run("chromium", func(t *testing.T) {
		dom := distritest.RenderPage(t, srv.URL+"/img/index.html", "</html>")
		for _, f := range res.Files {
			if !strings.Contains(dom, f.Name) {
				t.Errorf("rendered index.html does not show %s", f.Name)
			}
		}
		distritest.CheckLinks(t, srv.URL+"/img/", dom)
	})
}

// TestDeterministic makes the same release twice, with different
// numbers of goroutines, and wants byte-identical folders.
func TestDeterministic(t *testing.T) {
	fx := newFixture(t)
	var dirs []string
	for _, jobs := range []int{1, 4} {
		dir := t.TempDir()
		if _, err := release.Make(release.Options{Dir: dir, URL: "https://mirror.example/distri/", Artifacts: fx.arts, Key: fx.key,
			Trackers: []string{"udp://tracker.example:1337/announce"}, Compress: release.CompressOptions{Concurrency: jobs}}); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, filepath.Join(dir, release.ImgDir))
	}
	ents, err := os.ReadDir(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	ents2, _ := os.ReadDir(dirs[1])
	if len(ents) != len(ents2) {
		t.Errorf("%d files, then %d", len(ents), len(ents2))
	}
	for _, e := range ents {
		if a, b := shaFile(t, filepath.Join(dirs[0], e.Name())), shaFile(t, filepath.Join(dirs[1], e.Name())); a != b {
			t.Errorf("%s differs between two runs", e.Name())
		}
	}
}

// TestReplaceAtomic attacks the promise that nothing half-written
// becomes visible: a release that fails after writing a file leaves the
// previous img/ as it was and no staging folder behind.
func TestReplaceAtomic(t *testing.T) {
	fx := newFixture(t)
	dir := t.TempDir()
	if _, err := release.Make(release.Options{Dir: dir, Artifacts: fx.arts[2:], Key: fx.key}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, release.ImgDir)
	before := shaFile(t, filepath.Join(img, release.SumsFile))
	// The tar is copied first; compressing the image then fails.
	arts := []release.Artifact{fx.arts[2], fx.arts[0]}
	_, err := release.Make(release.Options{Dir: dir, URL: "https://mirror.example/", Artifacts: arts, Key: fx.key,
		Compress: release.CompressOptions{Window: 3}})
	if err == nil {
		t.Fatal("Make with a bad window succeeded")
	}
	if got := shaFile(t, filepath.Join(img, release.SumsFile)); got != before {
		t.Errorf("SHA256SUMS changed by a failed release")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("release folder holds %q after a failed release, want only img", names)
	}
	// A successful release replaces img/ whole: the old files are gone.
	if _, err := release.Make(release.Options{Dir: dir, URL: "https://mirror.example/", Artifacts: fx.arts[:1], Key: fx.key}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(img, "distri-gce.tar.gz")); !os.IsNotExist(err) {
		t.Errorf("distri-gce.tar.gz of the previous release still there (err %v)", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("release folder holds %d entries, want only img", len(ents))
	}
}

func TestBadOptions(t *testing.T) {
	fx := newFixture(t)
	for _, tt := range []struct {
		name    string
		opts    release.Options
		wantErr string
	}{
		{"torrent without URL", release.Options{Artifacts: fx.arts[:1]}, "release URL"},
		{"URL not http", release.Options{URL: "file:///srv/", Artifacts: fx.arts[:1]}, "release URL"},
		{"name with slash", release.Options{Artifacts: []release.Artifact{{Src: fx.arts[2].Src, Name: "../x"}}}, "bad file name"},
		{"hidden name", release.Options{Artifacts: []release.Artifact{{Src: fx.arts[2].Src, Name: ".img-new-x"}}}, "bad file name"},
		{"name twice", release.Options{Artifacts: []release.Artifact{{Src: fx.arts[2].Src}, {Src: fx.arts[2].Src}}}, "used twice"},
		{"shadows SHA256SUMS", release.Options{Artifacts: []release.Artifact{{Src: fx.arts[2].Src, Name: "SHA256SUMS"}}}, "used twice"},
		{"source missing", release.Options{Artifacts: []release.Artifact{{Src: "/nonexistent/disk.img"}}}, "/nonexistent/disk.img"},
		{"source a folder", release.Options{Artifacts: []release.Artifact{{Src: t.TempDir()}}}, "not a regular file"},
		{"bad tracker", release.Options{URL: "http://m/", Trackers: []string{"tracker"}, Artifacts: fx.arts[:1]}, "tracker"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Dir = t.TempDir()
			tt.opts.Key = fx.key
			_, err := release.Make(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Make() = %v, want an error containing %q", err, tt.wantErr)
			}
			if ents, _ := os.ReadDir(tt.opts.Dir); len(ents) != 0 {
				t.Errorf("a refused release left %d entries", len(ents))
			}
		})
	}
}

// TestCompressHoles checks the zero frames against klauspost's decoder
// for hole sizes around the 128 KiB block limit and MinHole, and that a
// sparse file's holes are not read.
func TestCompressHoles(t *testing.T) {
	for _, tt := range []struct {
		name     string
		size     int64
		data     []int64 // offsets of 4 KiB of data
		wantData int64   // bytes read from the file, at most
	}{
		{"empty", 0, nil, 0},
		{"all hole", 3<<20 + 1, nil, 0},
		{"one byte hole", 1, nil, 1},
		{"hole of one block", 128 << 10, nil, 128 << 10},
		{"data then long hole", 40 << 20, []int64{0}, 1 << 20},
		{"hole then data at end", 40 << 20, []int64{40<<20 - 4096}, 1 << 20},
		{"data, short hole, data", 40 << 20, []int64{8 << 20, 8<<20 + 512<<10}, 2 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "img")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(tt.size); err != nil {
				t.Fatal(err)
			}
			for i, off := range tt.data {
				if _, err := f.WriteAt(distritest.Bytes(4096, int64(i)), off); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			var buf bytes.Buffer
			st, err := release.Compress(&buf, p, release.CompressOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.In != tt.size || st.Out != int64(buf.Len()) {
				t.Errorf("Compress stats In %d Out %d, want %d and %d", st.In, st.Out, tt.size, buf.Len())
			}
			if st.Data > tt.wantData+4096 {
				t.Errorf("Compress read %d bytes of data, want at most %d: holes were read", st.Data, tt.wantData+4096)
			}
			dec, err := zstd.NewReader(&buf, zstd.WithDecoderMaxWindow(8<<20))
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			got := sha(t, dec)
			if want := shaFile(t, p); got != want {
				t.Errorf("decompressed sha256 %s, want the input's %s", got, want)
			}
		})
	}
}

// TestCompressDeterministic compresses a 40 MiB data run (more than one
// of klauspost's 32 MiB sections) with 1, 2 and 3 goroutines and wants
// the same bytes: with concurrency 1 klauspost's stream encoder used to
// take another path and write other bytes.
func TestCompressDeterministic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "img")
	text := bytes.Repeat([]byte("SquashFS images under /ro, one per package. "), 10000)
	var data []byte
	for i := int64(0); len(data) < 40<<20; i++ {
		data = append(data, text...)
		data = append(data, distritest.Bytes(200<<10, i)...)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var want string
	for _, c := range []int{1, 2, 3} {
		h := sha256.New()
		if _, err := release.Compress(h, p, release.CompressOptions{Concurrency: c}); err != nil {
			t.Fatal(err)
		}
		got := hex.EncodeToString(h.Sum(nil))
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("Compress with %d goroutines: sha256 %s, with 1: %s", c, got, want)
		}
	}
}
