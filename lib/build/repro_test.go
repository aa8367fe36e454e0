package build

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/sandbox"
)

// testReproducible builds GNU hello (pkgs/hello in helloDir) a second
// time with b, which built it into img already, from another temporary
// directory, and wants byte-identical image and meta files. Then it runs
// the built hello in a root holding nothing but /ro (no /lib64, no
// /usr): the pinned loader, the lib/ farm and the bin/ wrapper make it
// work from /ro/bin and from /ro/<full>/bin.
//
// A subtest of TestBuildHelloSandbox, whose repository (the imported
// toolchain) it shares. Cost: one hello build (about 10 s).
func testReproducible(t *testing.T, b *Builder, helloDir, img string) {
	hello, err := ReadRecipe(helloDir)
	if err != nil {
		t.Fatal(err)
	}
	metaPath := strings.TrimSuffix(img, ".squashfs") + ".meta.textproto"
	first := map[string][]byte{}
	for _, p := range []string{img, metaPath} {
		if first[p], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	b.opts.TempDir = t.TempDir() // another build path
	img2, err := b.Build(t.Context(), helloDir)
	if err != nil {
		t.Fatal(err)
	}
	if img2 != img {
		t.Fatalf("second build wrote %s, first %s", img2, img)
	}
	for _, p := range []string{img, metaPath} {
		second, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first[p], second) {
			i := 0
			for i < len(second) && i < len(first[p]) && second[i] == first[p][i] {
				i++
			}
			t.Errorf("%s differs between two builds (%d and %d bytes, first difference at byte %d)", filepath.Base(p), len(first[p]), len(second), i)
		}
	}

	meta, err := pb.ReadMetaFile(metaPath)
	if err != nil {
		t.Fatal(err)
	}
	ro := runtimeRO(t, b, meta.GetRuntimeDep(), []*Recipe{hello}, map[string]string{hello.FullName(): img})
	for _, argv0 := range []string{"/ro/bin/hello", "/ro/" + hello.FullName() + "/bin/hello"} {
		var stdout, stderr bytes.Buffer
		err := sandbox.Run(t.Context(), sandbox.Options{
			RO:     ro.dir,
			Env:    []string{"PATH=/ro/bin"},
			Argv:   []string{argv0, "--greeting=hi"},
			Stdout: &stdout,
			Stderr: &stderr,
		})
		if err != nil || stdout.String() != "hi\n" {
			t.Errorf("%s in a root of only /ro: %v, printed %q (stderr %q), want \"hi\\n\"", argv0, err, stdout.String(), stderr.String())
		}
	}
}
