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

// pamCommon are the /etc/pam.d/common-* files Debian's login and other
// PAM programs include. On Debian, pam-auth-update writes them in
// libpam-runtime's postinst; distri packages run no scripts, so the tree
// has them: Unix passwords (pam_unix) only, as pam-auth-update's
// defaults without other modules.
var pamCommon = map[string]string{
	"common-auth": "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n" +
		"auth\trequisite\tpam_deny.so\nauth\trequired\tpam_permit.so\n",
	"common-account": "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\n" +
		"account\trequisite\tpam_deny.so\naccount\trequired\tpam_permit.so\n",
	"common-password": "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n" +
		"password\trequisite\tpam_deny.so\npassword\trequired\tpam_permit.so\n",
	"common-session": "session\t[default=1]\tpam_permit.so\nsession\trequisite\tpam_deny.so\n" +
		"session\trequired\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
	"common-session-noninteractive": "session\t[default=1]\tpam_permit.so\nsession\trequisite\tpam_deny.so\n" +
		"session\trequired\tpam_permit.so\nsession\trequired\tpam_unix.so\n",
}

// profile is /etc/profile (Debian's base-files copies its own in a
// maintainer script). GCC_EXEC_PREFIX: gcc run from /ro/<gcc>/out/bin
// looks for cc1 and its libraries relative to that package only, while
// they are spread over several packages (cpp-12, libgcc-12-dev) that the
// /usr/lib/gcc exchange directory merges.
const profile = `PATH=/bin
export PATH
export GCC_EXEC_PREFIX=/usr/lib/gcc/
if [ "$(id -u)" -eq 0 ]; then PS1='\h:\w# '; else PS1='\h:\w$ '; fi
for f in /etc/profile.d/*.sh; do [ -r "$f" ] && . "$f"; done
unset f
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
		{"etc/profile", 0o644, profile},
	}
	for name, content := range pamCommon {
		files = append(files, struct {
			name    string
			mode    os.FileMode
			content string
		}{"etc/pam.d/" + name, 0o644, content})
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
