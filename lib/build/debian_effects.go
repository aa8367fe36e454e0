package build

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"distri.dev/distri/lib/build/debian"
	"distri.dev/distri/lib/build/source"
	"distri.dev/distri/lib/pb"
)

// ImportMaintEffects reads the maintainer scripts of the .deb at debPath
// and writes what they would have done into dest, the package tree
// [ImportDebian] made for package pkg:
//
//   - alternatives: for each update-alternatives --install (and its
//     --slave links) whose target is in the package, a relative symlink
//     at the link's place (out/bin/awk → gawk) and, for out/bin, the
//     bin/ entry that feeds /ro/bin. Rule (per package, deterministic):
//     the package provides a link when its target is inside the package,
//     the package does not ship the link's path itself, and the
//     alternative has the highest priority among the package's own
//     alternatives of that name (the first on a tie); slaves follow their
//     master. Between packages, the exchange directories' rule decides
//     (the package whose name sorts first wins); docs/build.md.
//   - users and groups: out/lib/sysusers.d/<pkg>.conf (sysusers.d(5)),
//     which distri-install and distri-mkimage apply to /etc (package
//     lib/sysusers) and systemd-sysusers at boot;
//   - enabled units that the package ships:
//     out/lib/systemd/system-preset/50-<pkg>.preset.
//
// It returns the decisions for the meta and the log lines (including
// every "not reproduced: …"). Shipped tmpfiles.d files are listed there
// too: they need systemd-tmpfiles at boot.
func ImportMaintEffects(debPath, pkg, dest string) ([]*pb.Alternative, []string, error) {
	files, err := debian.ReadControl(debPath)
	if err != nil {
		return nil, nil, err
	}
	e := ScanMaintScripts(files)
	// Files written here get the package's newest time stamp, so that
	// importing twice gives the same bytes.
	epoch, err := source.NewestMtime(dest)
	if err != nil {
		return nil, nil, err
	}
	notes := slices.Clone(e.Notes)
	alts, altNotes, err := applyAlternatives(e.Alternatives, dest)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, altNotes...)
	if len(e.SysUsers) > 0 {
		conf := "# users and groups from the maintainer scripts of " + pkg + " (distri-build import)\n" +
			strings.Join(e.SysUsers, "\n") + "\n"
		if err := writeNew(dest, "out/lib/sysusers.d/"+pkg+".conf", conf, epoch); err != nil {
			return nil, nil, err
		}
		notes = append(notes, fmt.Sprintf("users and groups: out/lib/sysusers.d/%s.conf: %s", pkg, strings.Join(e.SysUsers, "; ")))
	}
	var presets []string
	for _, u := range e.Enable {
		found := false
		if strings.Contains(u, "/") || strings.HasPrefix(u, ".") {
			notes = append(notes, fmt.Sprintf("not reproduced: enable %q (not a unit name)", u))
			continue
		}
		for _, d := range []string{"out/lib/systemd/system", "etc/systemd/system"} {
			if _, err := os.Lstat(filepath.Join(dest, d, u)); err == nil {
				found = true
			}
		}
		if !found {
			notes = append(notes, fmt.Sprintf("not reproduced: enable %s (the package ships no such unit)", u))
			continue
		}
		presets = append(presets, "enable "+u)
	}
	if len(presets) > 0 {
		if err := writeNew(dest, "out/lib/systemd/system-preset/50-"+pkg+".preset", strings.Join(presets, "\n")+"\n", epoch); err != nil {
			return nil, nil, err
		}
		notes = append(notes, "enabled units: out/lib/systemd/system-preset/50-"+pkg+".preset: "+strings.Join(presets, "; "))
	}
	if ents, err := os.ReadDir(filepath.Join(dest, "out/lib/tmpfiles.d")); err == nil {
		for _, ent := range ents {
			notes = append(notes, "not reproduced: tmpfiles.d/"+ent.Name()+" (applied by systemd-tmpfiles at boot where systemd runs; distri-install creates no such files)")
		}
	}
	return alts, notes, nil
}

// applyAlternatives makes the links of alts in dest (see
// [ImportMaintEffects]) and returns the meta's record of each.
func applyAlternatives(alts []Alternative, dest string) ([]*pb.Alternative, []string, error) {
	var out []*pb.Alternative
	var notes []string
	best := map[string]int{} // name → index of the winning --install in alts
	for i, a := range alts {
		if j, ok := best[a.Name]; !ok || a.Priority > alts[j].Priority {
			best[a.Name] = i
		}
	}
	for i, a := range alts {
		reason := ""
		if best[a.Name] != i {
			reason = fmt.Sprintf("the package offers %s with a higher priority (%d)", alts[best[a.Name]].Path, alts[best[a.Name]].Priority)
		}
		for k, l := range append([]Alternative{a}, a.Slaves...) {
			rec := &pb.Alternative{Name: new(l.Name), Path: new(l.Path), Priority: new(int32(a.Priority))}
			why := reason
			if k > 0 && why == "" && !out[len(out)-k].GetProvided() {
				why = "its master is not provided"
			}
			link, ok := roPath(l.Link)
			rec.Link = new(link)
			if why == "" && !ok {
				why = "the link is outside the exchange directories"
			}
			if why == "" {
				why = makeAltLink(dest, l)
			}
			if why == "" {
				rec.Provided = new(true)
				notes = append(notes, fmt.Sprintf("alternative %s: provides %s → %s (priority %d)", l.Name, link, l.Path, a.Priority))
			} else {
				rec.Provided = new(false)
				rec.Reason = new(why)
				notes = append(notes, fmt.Sprintf("alternative %s: %s → %s not provided: %s", l.Name, l.Link, l.Path, why))
			}
			out = append(out, rec)
		}
	}
	return out, notes, nil
}

// roPath maps a Debian path (/usr/bin/awk) to its place under /ro
// (bin/awk), ok false if no exchange directory holds it.
func roPath(p string) (string, bool) {
	m := debianPath(p)
	switch {
	case strings.HasPrefix(m, "out/bin/"):
		return "bin/" + strings.TrimPrefix(m, "out/bin/"), true
	case strings.HasPrefix(m, "out/"):
		for _, d := range []string{"sbin", "lib", "lib64", "libexec", "include", "share"} {
			if strings.HasPrefix(m, "out/"+d+"/") {
				return strings.TrimPrefix(m, "out/"), true
			}
		}
	}
	return m, false
}

// debianPath maps an absolute Debian path to the imported tree, as
// ImportDebian lays it out: /usr/X and /X to out/X, /etc/X to etc/X.
func debianPath(p string) string {
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	switch {
	case rel == "etc" || strings.HasPrefix(rel, "etc/"):
		return rel
	case strings.HasPrefix(rel, "usr/"):
		return "out/" + strings.TrimPrefix(rel, "usr/")
	}
	return "out/" + rel
}

// makeAltLink makes the symlink of alternative l in dest, or says why not.
// Every access goes through an [os.Root] of dest: a symlink of the
// package on the link's path (out/lib/x → /etc) cannot make the import
// write outside the package, it only makes the link fail.
func makeAltLink(dest string, l Alternative) string {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err.Error()
	}
	defer root.Close()
	link, target := debianPath(l.Link), debianPath(l.Path)
	if _, err := root.Stat(target); err != nil {
		return "its target is not in the package"
	}
	if _, err := root.Lstat(link); err == nil {
		return "the package ships " + l.Link + " itself"
	}
	rel, err := filepath.Rel(path.Dir(link), target)
	if err != nil {
		return err.Error()
	}
	if err := root.MkdirAll(path.Dir(link), 0o755); err != nil {
		return err.Error()
	}
	if err := root.Symlink(rel, link); err != nil {
		return err.Error()
	}
	if name, ok := strings.CutPrefix(link, "out/bin/"); ok && !strings.Contains(name, "/") {
		entry := path.Join("bin", name)
		if _, err := root.Lstat(entry); err == nil {
			return "the package has bin/" + name + " already"
		}
		if err := root.MkdirAll("bin", 0o755); err != nil {
			return err.Error()
		}
		if err := root.Symlink("../"+link, entry); err != nil {
			return err.Error()
		}
	}
	return ""
}

// writeNew writes the new file name (relative to dest, 0644) of the
// imported tree through an [os.Root] of dest, with the time stamp
// epoch. One that exists is an error (the package ships it: not
// overwritten).
func writeNew(dest, name, content string, epoch time.Time) error {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Lstat(name); err == nil {
		return fmt.Errorf("import: %s: the package ships it already", name)
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("import: %s: %w", name, err)
	}
	if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("import: %s: %w", name, err)
	}
	if err := root.WriteFile(name, []byte(content), 0o644); err != nil {
		return fmt.Errorf("import: %s: %w", name, err)
	}
	return root.Chtimes(name, epoch, epoch)
}

// importMaintEffects runs [ImportMaintEffects] for the Debian import r
// (its .deb is in the fetcher's cache) and writes its lines to the build
// log, R/log/<full>.log, and the progress log.
func (b *Builder) importMaintEffects(r *Recipe, dest string) ([]*pb.Alternative, error) {
	alts, notes, err := ImportMaintEffects(b.opts.Fetcher.CachePath(r.GetHash()), r.Name, dest)
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(b.opts.RepoDir, "log")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	var lb strings.Builder
	fmt.Fprintf(&lb, "%s: Debian import of %s; maintainer scripts:\n", r.FullName(), r.GetSource())
	for _, n := range notes {
		b.logf("%s: %s", r.Name, n)
		lb.WriteString(n + "\n")
	}
	if len(notes) == 0 {
		lb.WriteString("nothing to reproduce\n")
	}
	if err := os.WriteFile(filepath.Join(logDir, r.FullName()+".log"), []byte(lb.String()), 0o644); err != nil {
		return nil, err
	}
	return alts, nil
}

// importRevision is mixed into the input digest of Debian imports: the
// same .deb imports differently since the maintainer scripts are read
// (alternatives, sysusers.d, presets), so packages imported before are
// stale.
func importRevision(r *Recipe) string {
	if r.BuilderName() == "debian-import" {
		return " maintscripts-1"
	}
	return ""
}
