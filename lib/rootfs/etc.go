package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"distri.dev/distri/lib/image"
	"distri.dev/distri/lib/store"
)

// RootPasswordHash is root's password "peace" (as the original distri's
// images have it) in SHA-512 crypt(3) form, made with
//
//	openssl passwd -6 -salt distri peace
//
// A fixed salt keeps the tree deterministic; the password is public
// anyway.
const RootPasswordHash = "$6$distri$zscKGJdCLHWqdi9AdzunPEcx93bpEAc0bO7rv7jPZapFRuNnD8qTBeg0R9nn3JT6ERE6seq2ps89A2DR79wIv1"

// osRelease follows os-release(5).
const osRelease = `NAME=distri
PRETTY_NAME=distri
ID=distri
HOME_URL="https://distr1.org/"
`

// writeEtc writes the tree's own /etc files.
func writeEtc(opts Options, st *store.Store) error {
	dir := opts.Dir
	shell := "/bin/sh"
	if pkgs, err := st.List(); err == nil {
		for _, n := range pkgs {
			if n.Pkg == "bash" {
				shell = "/bin/bash"
			}
		}
	}
	hostname := opts.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	repos := opts.ImageRepos
	if len(repos) == 0 {
		for _, r := range opts.Repos {
			if !strings.Contains(r, "://") {
				abs, err := filepath.Abs(r)
				if err != nil {
					return err
				}
				r = abs
			}
			repos = append(repos, r)
		}
	}
	files := []struct {
		name    string
		mode    os.FileMode
		content string
	}{
		{"etc/passwd", 0o644, "root:x:0:0:root:/root:" + shell + "\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", 0o644, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"},
		// Day 18262 is 2020-01-01, the tree's epoch.
		{"etc/shadow", 0o600, "root:" + RootPasswordHash + ":18262:0:99999:7:::\nnobody:!:18262::::::\n"},
		{"etc/hostname", 0o644, hostname + "\n"},
		{"etc/os-release", 0o644, osRelease},
		{"etc/fstab", 0o644, "# the root by label; distri-mkimage disk replaces this file with UUIDs\n" +
			"LABEL=" + image.RootLabel + " / ext4 defaults 0 1\n"},
		{"etc/distri/repos.d/distri.repo", 0o644, strings.Join(repos, "\n") + "\n"},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := store.WriteFileAtomic(p, []byte(f.content), f.mode); err != nil {
			return err
		}
	}
	keys := filepath.Join(dir, "etc/distri/keys")
	if err := os.MkdirAll(keys, 0o755); err != nil {
		return err
	}
	for _, k := range opts.PubKeyFiles {
		name := strings.TrimSuffix(filepath.Base(k), ".pub") + ".pub"
		if err := copyFile(k, filepath.Join(keys, name), 0o644); err != nil {
			return fmt.Errorf("copy public key: %w", err)
		}
	}
	return nil
}
