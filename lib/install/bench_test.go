package install_test

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/install"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/pb"
)

// BenchmarkIndexResolve5000 measures what an install of one package
// costs before any package byte moves: fetching, verifying and parsing
// the index of a repository of 5000 packages (each with 10 dependencies
// and 40 exchange paths) over loopback, resolving the name and its
// closure, and taking the store lock. The package is already installed,
// so nothing is downloaded.
func BenchmarkIndexResolve5000(b *testing.B) {
	const n = 5000
	idx := &pb.Index{}
	for i := range n {
		p := &pb.Package{
			Name:        proto.String(fmt.Sprintf("pkg%04d-amd64-1.0-%d", i, i%7+1)),
			ImageSize:   proto.Uint64(1 << 20),
			ImageSha256: proto.String(fmt.Sprintf("%064x", i)),
			MetaSize:    proto.Uint64(200),
			MetaSha256:  proto.String(fmt.Sprintf("%064x", i+n)),
		}
		for d := n - 10; d < n && i < n-10; d++ { // the last 10 are leaves
			p.RuntimeDep = append(p.RuntimeDep, fmt.Sprintf("pkg%04d-amd64-1.0-%d", d, d%7+1))
		}
		for f := range 40 {
			p.Provides = append(p.Provides, fmt.Sprintf("share/pkg%04d/file-%02d.txt", i, f))
		}
		idx.Package = append(idx.Package, p)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(idx)
	if err != nil {
		b.Fatal(err)
	}
	k, err := minisign.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := minisign.Sign(k, bytes.NewReader(raw), "") // minisign's default comment: a time stamp
	if err != nil {
		b.Fatal(err)
	}
	// As distri-mirror index writes it: with the decoded size in the
	// frame header.
	var zst bytes.Buffer
	enc, _ := zstd.NewWriter(&zst)
	enc.ResetContentSize(&zst, int64(len(raw)))
	enc.Write(raw)
	enc.Close()
	repo := b.TempDir()
	pub := filepath.Join(b.TempDir(), "k")
	if _, _, err := minisign.WriteKeyFiles(pub, k, false); err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{"pkg/index": raw, "pkg/index.zst": zst.Bytes(), "pkg/index.minisig": sig}
	root := b.TempDir()
	for _, i := range []int{0, 4990, 4991, 4992, 4993, 4994, 4995, 4996, 4997, 4998, 4999} {
		full := fmt.Sprintf("pkg%04d-amd64-1.0-%d", i, i%7+1)
		files["../root/roimg/"+full+".squashfs"] = nil
		files["../root/roimg/"+full+".meta.textproto"] = nil
	}
	for name, data := range files {
		p := filepath.Join(repo, name)
		if name[0] == '.' {
			p = filepath.Join(root, name[len("../root/"):])
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(mirror.Handler(repo))
	defer srv.Close()
	in, err := install.New(install.Options{Root: root, Repos: []string{srv.URL}, PubKeyFiles: []string{pub + ".pub"}, Arch: "amd64"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(raw)), "index-bytes")
	b.ResetTimer()
	for b.Loop() {
		got, err := in.Install(b.Context(), []string{"pkg0000"})
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != 0 {
			b.Fatalf("installed %v, want nothing new", got)
		}
	}
}
