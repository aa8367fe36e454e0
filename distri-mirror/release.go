package main

import (
	"fmt"
	"log"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"distri.dev/distri/lib/cli"
	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/release"
)

type releaseOptions struct {
	key      string
	url      string
	output   string
	images   []string
	tars     []string
	files    []string
	trackers []string
	level    string
	jobs     int
	verbose  bool
}

func (o *releaseOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.key, "key", "", "secret key to sign SHA256SUMS with, e.g. distri.key (required)")
	fs.StringVar(&o.url, "url", "", "URL at which the release folder is served, e.g. https://mirror.example/distri/ (required with --image)")
	fs.StringVarP(&o.output, "output", "o", "release", "release folder; the files go to its img/")
	fs.StringArrayVar(&o.images, "image", nil, "FILE[=TITLE]: publish FILE.zst and FILE.zst.torrent (repeatable)")
	fs.StringArrayVar(&o.tars, "compress", nil, "FILE[=TITLE]: publish FILE.zst, no torrent (repeatable), e.g. a container tar")
	fs.StringArrayVar(&o.files, "file", nil, "FILE[=TITLE]: publish FILE as it is (repeatable), e.g. distri-gce.tar.gz")
	fs.StringArrayVar(&o.trackers, "tracker", nil, "announce URL for torrents and magnet links (repeatable)")
	fs.StringVar(&o.level, "level", "default", "zstd level: fastest, default, better or best")
	fs.IntVarP(&o.jobs, "jobs", "j", 0, "goroutines compressing at once (0: one per CPU); the output does not depend on it")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "log each file written")
}

func newReleaseCmd(stdio cli.Stdio) *cobra.Command {
	var opts releaseOptions
	cmd := &cobra.Command{
		Use:   "release --key NAME.key --url URL [-o DIR] --image FILE[=TITLE]... [--compress FILE] [--file FILE]",
		Short: "publish compressed images, signed checksums and torrents",
		Long: `release writes DIR/img (default release/img): each --image compressed
with zstd (holes of sparse images cost nothing) and a BitTorrent
metainfo file for it whose web seed is URL/img/<file>, each --compress
file compressed, each --file as it is, a README and index.html listing
sizes, SHA-256 sums and magnet links, SHA256SUMS over all of them and
SHA256SUMS.minisig signed with the repository key. The old DIR/img is
replaced in one step. It prints the magnet links.

The same inputs give byte-identical files (the signature's time stamp is
the newest input's mtime), so torrents' info hashes are stable.
docs/release.md describes the layout and how to verify a release.

Examples:
  % distri-mirror release --key distri-repo-key.key --url https://mirror.example/distri/ \
      --image 'distri-disk.img=UEFI disk image' --image distri-qemu-serial.img \
      --compress distri-docker.tar --file distri-gce.tar.gz
  % minisign -V -p distri.pub -m release/img/SHA256SUMS
  % (cd release/img && sha256sum -c SHA256SUMS)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRelease(opts, stdio)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func runRelease(opts releaseOptions, stdio cli.Stdio) error {
	if opts.key == "" {
		return cli.Usagef("--key is required")
	}
	levels := map[string]zstd.EncoderLevel{"fastest": zstd.SpeedFastest, "default": zstd.SpeedDefault, "better": zstd.SpeedBetterCompression, "best": zstd.SpeedBestCompression}
	level, ok := levels[opts.level]
	if !ok {
		return cli.Usagef("--level %q: want fastest, default, better or best", opts.level)
	}
	var arts []release.Artifact
	for _, l := range []struct {
		specs             []string
		compress, torrent bool
	}{{opts.images, true, true}, {opts.tars, true, false}, {opts.files, false, false}} {
		for _, s := range l.specs {
			src, title, _ := strings.Cut(s, "=")
			arts = append(arts, release.Artifact{Src: src, Title: title, Compress: l.compress, Torrent: l.torrent})
		}
	}
	if len(arts) == 0 {
		return cli.Usagef("nothing to publish: give --image, --compress or --file")
	}
	key, err := minisign.ReadPrivateKeyFile(opts.key)
	if err != nil {
		return err
	}
	var logger *log.Logger
	if opts.verbose {
		logger = log.New(stdio.Err, "", 0)
	}
	res, err := release.Make(release.Options{
		Dir:       opts.output,
		URL:       opts.url,
		Artifacts: arts,
		Key:       key,
		Trackers:  opts.trackers,
		Compress:  release.CompressOptions{Level: level, Concurrency: opts.jobs},
		Log:       logger,
	})
	if err != nil {
		return err
	}
	for _, f := range res.Files {
		if f.Magnet != "" {
			fmt.Fprintf(stdio.Out, "%s:\n%s\n", f.Name, f.Magnet)
		}
	}
	fmt.Fprintln(stdio.Out, res.Dir)
	return nil
}
