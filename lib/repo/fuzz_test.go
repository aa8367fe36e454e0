package repo_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/repo"
)

// FuzzRepoIndex serves arbitrary index bytes, signed with a trusted key
// and an arbitrary trusted comment, from a local repository, and fetches
// them with Repo.Index and Repo.Summary as the installer does: a signing
// key vouches for who made an index, not for its being well formed (a
// third-party repository's key is trusted too). What Index returns must
// be exactly what the bytes decode to, and Summary must agree with it;
// the same bytes with a signature that does not verify must be refused.
func FuzzRepoIndex(f *testing.F) {
	key := minisign.PrivateKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))}
	copy(key.ID[:], "fuzzrepo")
	idx, err := proto.Marshal(&pb.Index{Package: []*pb.Package{
		{Name: proto.String("hello-amd64-2.12-1"), ImageSize: proto.Uint64(300 << 10), ImageSha256: proto.String(strings.Repeat("ab", 32)),
			RuntimeDep: []string{"libc-amd64-1-1"}, Provides: []string{"bin/hello"}},
		{Name: proto.String("libc-amd64-1-1")},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idx, "timestamp:1765000000\tfile:index\texpires:1765604800\trepo:distri")
	f.Add(idx, "timestamp:1765000000\tfile:index")
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00}, "timestamp:1\texpires:2\trepo:distri")
	dir := f.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "pkg"), 0o755); err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1765100000, 0)
	f.Fuzz(func(t *testing.T, index []byte, comment string) {
		if strings.ContainsAny(comment, "\r\n") {
			return // Sign refuses it; minisign files have no room for it
		}
		sig, err := minisign.Sign(key, bytes.NewReader(index), comment)
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{repo.IndexFile: index, repo.SignatureFile: sig} {
			if err := os.WriteFile(filepath.Join(dir, "pkg", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		r, err := repo.New(repo.Options{URL: dir, Keys: []minisign.PublicKey{key.Public()},
			Trust: repo.Trust{Name: "distri", AllowExpired: true, Now: func() time.Time { return now }}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Index(t.Context())
		var want pb.Index
		wantErr := proto.Unmarshal(index, &want)
		if err != nil {
			return // the bytes or the comment are refused
		}
		if wantErr != nil || !proto.Equal(got, &want) {
			t.Fatalf("Index = %v; the bytes decode to %v, %v", got, &want, wantErr)
		}
		sum, err := r.Summary(t.Context())
		if err != nil || len(sum.GetPackage()) != len(got.GetPackage()) {
			t.Fatalf("Index has %d packages; Summary = %v, %v", len(got.GetPackage()), sum, err)
		}
		for i, p := range got.GetPackage() {
			if q := sum.GetPackage()[i]; q.GetName() != p.GetName() || q.GetImageSha256() != p.GetImageSha256() || q.GetImageSize() != p.GetImageSize() {
				t.Errorf("package %d: Index %v, Summary %v", i, p, q)
			}
		}
		// The same index under a signature of other bytes is refused.
		other, err := minisign.Sign(key, strings.NewReader("other"), comment)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pkg", repo.SignatureFile), other, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Index(t.Context()); err == nil {
			t.Errorf("Index accepted a signature of other bytes: %v", got)
		}
	})
}
