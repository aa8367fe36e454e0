package torrent

import (
	"bytes"
	"crypto/sha1"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMakeParse(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 50000) // 800000 bytes: 3 pieces of 256 KiB and a short one
	opts := Options{
		Name:     "distri-disk.img.zst",
		WebSeeds: []string{"https://mirror.example/distri/img/distri-disk.img.zst"},
		Trackers: []string{"udp://tracker.example:1337/announce", "http://tracker2.example/announce"},
	}
	tor, err := Make(bytes.NewReader(content), int64(len(content)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(tor.Pieces), 4; got != want {
		t.Fatalf("%d pieces, want %d", got, want)
	}
	if got, want := tor.Pieces[3], sha1.Sum(content[3*256<<10:]); got != want {
		t.Errorf("last piece hash %x, want %x", got, want)
	}
	got, err := Parse(tor.Metainfo)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tor, got); diff != "" {
		t.Errorf("Parse(Make()) mismatch (-want +got):\n%s", diff)
	}
	// The info dictionary is exactly what the hash covers.
	i := bytes.Index(tor.Metainfo, []byte("4:infod"))
	if i < 0 {
		t.Fatal("no info dictionary in the metainfo")
	}
	_, rest, err := decode(tor.Metainfo[i+6:], 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sha1.Sum(tor.Metainfo[i+6:len(tor.Metainfo)-len(rest)]), tor.InfoHash; got != want {
		t.Errorf("sha1 of the info bytes %x, want InfoHash %x", got, want)
	}
	m := tor.Magnet()
	for _, want := range []string{"magnet:?xt=urn:btih:", "&dn=distri-disk.img.zst", "&xl=800000",
		"&tr=udp%3A%2F%2Ftracker.example%3A1337%2Fannounce", "&ws=https%3A%2F%2Fmirror.example"} {
		if !strings.Contains(m, want) {
			t.Errorf("Magnet() = %q, want it to contain %q", m, want)
		}
	}
	// Same input, same bytes.
	again, _ := Make(bytes.NewReader(content), int64(len(content)), opts)
	if !bytes.Equal(again.Metainfo, tor.Metainfo) {
		t.Errorf("two torrents of the same file differ")
	}
}

func TestPieceLengthFor(t *testing.T) {
	for _, tt := range []struct {
		size, want int64
	}{
		{0, 256 << 10},
		{100 << 20, 256 << 10},
		{400 << 20, 512 << 10},
		{8 << 30, 8 << 20},
		{1 << 40, 16 << 20},
	} {
		if got := PieceLengthFor(tt.size); got != tt.want {
			t.Errorf("PieceLengthFor(%d) = %d, want %d", tt.size, got, tt.want)
		}
	}
}

func TestMakeErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		size    int64
		opts    Options
		wantErr string
	}{
		{"name with slash", 1, Options{Name: "a/b"}, "bad file name"},
		{"empty name", 1, Options{}, "bad file name"},
		{"piece not power of two", 1, Options{Name: "x", PieceLength: 300000}, "power of two"},
		{"bad web seed", 1, Options{Name: "x", WebSeeds: []string{"mirror"}}, "bad URL"},
		{"short read", 10, Options{Name: "x"}, "read at 1 of 10 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Make(strings.NewReader("x"), tt.size, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Make() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestParseHostile feeds metainfo a hostile or broken file might hold.
func TestParseHostile(t *testing.T) {
	for _, tt := range []struct {
		name, in, wantErr string
	}{
		{"empty", "", "truncated"},
		{"not a dictionary", "i1e", "not a dictionary"},
		{"trailing bytes", "de" + "x", "bytes after"},
		{"keys unsorted", "d1:bi1e1:ai1ee", "out of order"},
		{"key twice", "d1:ai1e1:ai1ee", "out of order"},
		{"integer leading zero", "d1:ai01ee", "bad integer"},
		{"negative zero", "d1:ai-0ee", "bad integer"},
		{"string longer than input", "d1:a99:xe", "truncated"},
		{"string length leading zero", "d01:ai1ee", "bad string length"},
		{"deep nesting", "d1:a" + strings.Repeat("l", 100000) + strings.Repeat("e", 100000) + "e", "nested deeper"},
		{"no info", "d1:ai1ee", "no info"},
		{"pieces for another length", "d4:infod6:lengthi100000000e4:name1:x12:piece lengthi262144e6:pieces20:" + strings.Repeat("p", 20) + "ee", "pieces for"},
		{"negative length", "d4:infod6:lengthi-1e4:name1:x12:piece lengthi262144e6:pieces0:ee", "single file"},
		{"multi-file", "d4:infod5:filesle4:name1:x12:piece lengthi262144e6:pieces0:ee", "single file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%.40q) = %v, want an error containing %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	tor, _ := Make(strings.NewReader("hello"), 5, Options{Name: "x", WebSeeds: []string{"http://m/x"}})
	f.Add(tor.Metainfo)
	f.Fuzz(func(t *testing.T, b []byte) {
		tor, err := Parse(b)
		if err != nil {
			return
		}
		// What parses re-encodes to the info hash it reports.
		again, err := Parse(tor.Metainfo)
		if err != nil || again.InfoHash != tor.InfoHash {
			t.Errorf("Parse is not stable: %v", err)
		}
	})
}
