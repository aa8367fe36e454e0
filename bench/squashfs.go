package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"distri.dev/distri/lib/squashfs"
)

// benchSquashfs compares lib/squashfs with squashfs-tools on the same
// tree: writing uncompressed and with zstd against mksquashfs, and
// extracting everything against unsquashfs.
func benchSquashfs(work, tree string, rounds int) ([]result, error) {
	for _, tool := range []string{"mksquashfs", "unsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not in $PATH (make deps installs squashfs-tools)", tool)
		}
	}
	var results []result
	for _, c := range []struct {
		name     string
		comp     squashfs.Compression
		peerArgs []string
	}{
		{"write uncompressed", squashfs.None, []string{"-noI", "-noD", "-noF", "-noX"}},
		{"write zstd", squashfs.Zstd, []string{"-comp", "zstd"}},
	} {
		ours := filepath.Join(work, "ours.sqfs")
		peer := filepath.Join(work, "peer.sqfs")
		o, p, err := measure(rounds, func() error {
			f, err := os.Create(ours)
			if err != nil {
				return err
			}
			defer f.Close()
			return squashfs.WriteDir(f, tree, squashfs.WriterOptions{Compression: c.comp})
		}, func() error {
			args := append([]string{tree, peer, "-noappend", "-quiet", "-no-progress"}, c.peerArgs...)
			return run("mksquashfs", args...)
		})
		if err != nil {
			return nil, err
		}
		results = append(results, result{
			name: c.name, ours: o, peer: p, peerName: "mksquashfs " + fmt.Sprint(c.peerArgs),
			note: fmt.Sprintf("size ours %s, peer %s", size(ours), size(peer)),
		})

		// Extract the peer's image with both, so the reader is measured on
		// a standard image.
		outOurs := filepath.Join(work, "x-ours")
		outPeer := filepath.Join(work, "x-peer")
		o, p, err = measure(rounds, func() error {
			os.RemoveAll(outOurs)
			r, err := squashfs.Open(peer)
			if err != nil {
				return err
			}
			defer r.Close()
			return r.Extract(outOurs, squashfs.ExtractOptions{})
		}, func() error {
			os.RemoveAll(outPeer)
			return run("unsquashfs", "-q", "-no-progress", "-d", outPeer, peer)
		})
		if err != nil {
			return nil, err
		}
		label := "extract (uncompressed image)"
		if c.comp != squashfs.None {
			label = "extract (" + c.comp.String() + " image)"
		}
		results = append(results, result{name: label, ours: o, peer: p, peerName: "unsquashfs -d"})
		os.RemoveAll(outOurs)
		os.RemoveAll(outPeer)
	}
	return results, nil
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %w: %s", cmd.Args, err, out)
	}
	return nil
}

func size(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(fi.Size())/(1<<20))
}
