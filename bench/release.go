package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"

	"distri.dev/distri/lib/release"
)

// benchRelease compares the compression `make release` does
// (release.Compress: klauspost zstd, parallel, holes as RLE frames) with
// the zstd CLI at `zstd -T0 -19 --long`, on a sparse disk image: an ext4
// file system made with mkfs.ext4 -d from the tree, in an 8 GiB file
// (the size of distri-disk.img), or the image $DISTRI_BENCH_RELEASE_IMG
// names (e.g. a distri-disk.img from make image). The note gives each
// output's size as a share of the image's data (SEEK_DATA extents).
func benchRelease(work, tree string, rounds int) ([]result, error) {
	img := os.Getenv("DISTRI_BENCH_RELEASE_IMG")
	if img == "" {
		img = filepath.Join(work, "release-disk.img")
		cmd := exec.Command("mkfs.ext4", "-q", "-F", "-d", tree, img, "8G")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
		}
		defer os.Remove(img)
	}
	if _, err := exec.LookPath("zstd"); err != nil {
		return nil, fmt.Errorf("zstd not in $PATH (make deps)")
	}
	out := filepath.Join(work, "release-out.zst")
	defer os.Remove(out)
	size := func() int64 {
		fi, err := os.Stat(out)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	var data int64
	ours := func(level zstd.EncoderLevel) func() error {
		return func() error {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := release.Compress(f, img, release.CompressOptions{Level: level})
			data = st.Data
			return err
		}
	}
	peer := func() error {
		cmd := exec.Command("zstd", "-q", "-f", "-T0", "-19", "--long", "-o", out, img)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v\n%s", cmd.Args, err, b)
		}
		return nil
	}
	// zstd -19 takes minutes for an image: it runs once per round, beside
	// the first level; the other levels compare with its median.
	var peerTimes []time.Duration
	var peerSize int64
	var results []result
	for i, l := range []struct {
		name  string
		level zstd.EncoderLevel
	}{{"default", zstd.SpeedDefault}, {"better", zstd.SpeedBetterCompression}, {"best", zstd.SpeedBestCompression}} {
		var times []time.Duration
		var oursSize int64
		for range rounds {
			start := time.Now()
			if err := ours(l.level)(); err != nil {
				return nil, err
			}
			times = append(times, time.Since(start))
			oursSize = size()
			if i == 0 {
				start := time.Now()
				if err := peer(); err != nil {
					return nil, err
				}
				peerTimes = append(peerTimes, time.Since(start))
				peerSize = size()
			}
		}
		pct := func(n int64) float64 { return 100 * float64(n) / float64(max(data, 1)) }
		results = append(results, result{
			name: "release zstd " + l.name, ours: median(times), peer: median(peerTimes), peerName: "zstd -T0 -19 --long",
			note: fmt.Sprintf("%d MiB data: ours %.1f MiB (%.1f%%), zstd %.1f MiB (%.1f%%)", data>>20,
				float64(oursSize)/(1<<20), pct(oursSize), float64(peerSize)/(1<<20), pct(peerSize)),
		})
	}
	return results, nil
}
