package fusefs

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/exchange"
	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

const (
	imageSuffix = ".squashfs"
	metaSuffix  = ".meta.textproto"
)

// metaInfo is what the daemon keeps of a meta file.
type metaInfo struct {
	id       fileID // of the meta file
	imageID  fileID // of the image, when provides were computed from it
	provides []string
	unions   []unionTarget
}

// scanStore lists the store and returns its packages, reusing prev's
// image objects for unchanged images and the meta cache for unchanged
// metas. It reads only the directory listing and new or changed meta
// files; an image is opened only when its meta lacks provides (an image
// made by mksquashfs, or a meta older than provides).
//
// Callers hold s.rescanMu, which guards s.metas.
func (s *Server) scanStore(ctx context.Context, prev *tree) ([]pkgInput, error) {
	dir, err := os.Open(s.opts.Store)
	if err != nil {
		return nil, fmt.Errorf("scan store: %w", err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("scan store %s: %w", s.opts.Store, err)
	}
	images := map[string]bool{}
	for _, n := range names {
		if full, ok := strings.CutSuffix(n, imageSuffix); ok {
			images[full] = true
		}
	}
	// A package is in the store exactly when its meta file is (the meta
	// is the commit point, see lib/store), and its image must be there.
	var pkgs []pkgInput
	dfd := int(dir.Fd())
	for _, n := range names {
		full, ok := strings.CutSuffix(n, metaSuffix)
		if !ok || !images[full] {
			continue
		}
		name, err := pkgname.Parse(full)
		if err != nil || name.String() != full {
			continue // e.g. bash-amd64.meta.textproto, a repository's alias
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, full+imageSuffix, &st, 0); err != nil {
			continue // removed while we looked
		}
		id := statID(&st)
		var img *image
		if prev != nil {
			if old := prev.pkgs[full]; old != nil && old.id == id {
				img = old
			}
		}
		if img == nil {
			img = &image{
				srv:  s,
				full: full,
				path: filepath.Join(s.opts.Store, full+imageSuffix),
				size: st.Size,
				id:   id,
				gen:  s.gens.Add(1),
			}
		}
		pkgs = append(pkgs, pkgInput{name: name, img: img})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Metas: the cached ones are only stat'ed, new ones read in
	// parallel. Workers only read s.metas; it is written after they are
	// done.
	infos := make([]*metaInfo, len(pkgs))
	var wg sync.WaitGroup
	work := make(chan int)
	for range max(2, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for i := range work {
				infos[i] = s.readMeta(dfd, &pkgs[i])
			}
		})
	}
	for i := range pkgs {
		work <- i
	}
	close(work)
	wg.Wait()
	clear(s.metas)
	for i := range pkgs {
		p, mi := &pkgs[i], infos[i]
		p.provides, p.unions = mi.provides, mi.unions
		s.metas[p.img.full] = mi
	}
	return pkgs, nil
}

func statID(st *unix.Stat_t) fileID {
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
}

// readMeta returns the meta info of p, from the cache when its meta file
// (and, for computed provides, its image) did not change.
func (s *Server) readMeta(dfd int, p *pkgInput) *metaInfo {
	full := p.img.full
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, full+metaSuffix, &st, 0); err != nil {
		s.logf("package %s: meta: %v", full, err)
		return &metaInfo{}
	}
	id := statID(&st)
	cached := s.metas[full]
	if cached != nil && cached.id == id && (cached.imageID == fileID{} || cached.imageID == p.img.id) {
		return cached
	}
	mi := &metaInfo{id: id}
	meta, err := pb.ReadMetaFile(filepath.Join(s.opts.Store, full+metaSuffix))
	if err != nil {
		s.logf("package %s: %v (serving it without exchange entries)", full, err)
		return mi
	}
	for _, rel := range meta.GetProvides() {
		// A provides entry becomes the symlink /ro/<rel> →
		// ../<full>/<image path>: one with .. or a newline would point
		// out of the package, or out of /ro.
		if err := exchange.CheckPath(rel); err != nil {
			s.logf("package %s: meta: %v (entry ignored)", full, err)
			continue
		}
		mi.provides = append(mi.provides, rel)
	}
	for _, u := range meta.GetRuntimeUnion() {
		dir := path.Clean(strings.TrimPrefix(u.GetDir(), "/"))
		if !strings.HasPrefix(dir, "out/") {
			// The original's dir is relative to out/ (lib/irssi/modules).
			dir = path.Join("out", dir)
		}
		if !strings.HasPrefix(dir, "out/") {
			s.logf("package %s: runtime_union %q: not a folder below out/", full, u.GetDir())
			continue
		}
		if !pkgname.IsFull(u.GetPkg()) {
			s.logf("package %s: runtime_union %q: host %q is not a full package name", full, u.GetDir(), u.GetPkg())
			continue
		}
		mi.unions = append(mi.unions, unionTarget{dir: dir, host: u.GetPkg()})
	}
	if len(meta.GetProvides()) == 0 {
		// No provides: an image from elsewhere (mksquashfs) or an old
		// meta. Walk the image's exchange directories once; the result
		// is cached for as long as meta and image stay the same.
		mi.imageID = p.img.id
		r, errno := p.img.acquire()
		if errno != 0 {
			return mi // acquire logged why
		}
		mi.provides, err = exchange.Paths(r.FS())
		p.img.release()
		if err != nil {
			p.img.fail("list exchange paths", err)
			mi.provides = nil
		}
	}
	return mi
}
