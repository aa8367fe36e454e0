package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
)

func names(t *testing.T, s *Store) []string {
	t.Helper()
	pkgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range pkgs {
		out = append(out, n.String())
	}
	return out
}

// stage puts a package into txn staging, with the given runtime_dep.
func stage(t *testing.T, txn *Txn, full string, deps ...string) {
	t.Helper()
	if err := os.WriteFile(txn.ImagePath(full), []byte("image of "+full), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := pb.WriteMetaFile(txn.MetaPath(full), &pb.Meta{RuntimeDep: deps}); err != nil {
		t.Fatal(err)
	}
	txn.Add(full)
}

func lock(t *testing.T, s *Store) *Lock {
	t.Helper()
	l, err := s.Lock(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Unlock() })
	return l
}

func TestCommitAndList(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "roimg"))
	if err != nil {
		t.Fatal(err)
	}
	l := lock(t, s)
	txn, err := s.Begin(l)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, "hello-amd64-2.12-1", "glibc-amd64-2.36-9")
	stage(t, txn, "glibc-amd64-2.36-9")
	if got := names(t, s); len(got) != 0 {
		t.Errorf("before commit: List = %v, want nothing", got)
	}
	if err := txn.Commit(l); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"glibc-amd64-2.36-9", "hello-amd64-2.12-1"}, names(t, s)); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(txn.Dir()); !os.IsNotExist(err) {
		t.Errorf("staging %s still exists after commit (%v)", txn.Dir(), err)
	}

	// Not whole, not listed: an image without meta, a meta without image,
	// and files of other kinds.
	for _, f := range []string{"half-amd64-1-1.squashfs", "orphan-amd64-1-1.meta.textproto", "README", "bash-amd64.meta.textproto"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"glibc-amd64-2.36-9", "hello-amd64-2.12-1"}, names(t, s)); diff != "" {
		t.Errorf("List with strays mismatch (-want +got):\n%s", diff)
	}
	if s.Has("half-amd64-1-1") || s.Has("orphan-amd64-1-1") {
		t.Errorf("Has reports a half package")
	}

	// Committing over a half package completes it.
	txn, err = s.Begin(l)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, "half-amd64-1-1")
	if err := txn.Commit(l); err != nil {
		t.Fatal(err)
	}
	if !s.Has("half-amd64-1-1") {
		t.Errorf("half-amd64-1-1 not whole after commit")
	}

	if err := s.Remove(l, "hello-amd64-2.12-1", "not-there-amd64-1-1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"glibc-amd64-2.36-9", "half-amd64-1-1"}, names(t, s)); diff != "" {
		t.Errorf("List after Remove mismatch (-want +got):\n%s", diff)
	}
}

func TestLockSerialises(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A killed holder's staging is cleaned by the next holder.
	txn, err := s.Begin(l)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, "a-amd64-1-1")
	txn.own.Close() // as if its process was killed: the flock is gone, the folder stays
	// A download in progress (Stage, without the lock) survives the
	// cleaning; a temporary file left by a killed WriteFile does not.
	live, err := s.Stage()
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	stage(t, live, "b-amd64-1-1")
	tmp := filepath.Join(s.Dir(), StagingDir, "..etc-sums123456")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// A second lock (another open file description, as another process
	// would have) waits, and gives up when its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := s.Lock(ctx, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Errorf("Lock while held = %v (waited %v), want a deadline error after waiting", err, waited)
	}

	var wg sync.WaitGroup
	got := make(chan *Lock, 1)
	wg.Go(func() {
		l2, err := s.Lock(t.Context(), nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- l2
	})
	select {
	case <-got:
		t.Fatal("second Lock succeeded while the first is held")
	case <-time.After(50 * time.Millisecond):
	}
	l.Unlock()
	wg.Wait()
	l2 := <-got
	defer l2.Unlock()
	if _, err := os.Stat(txn.Dir()); !os.IsNotExist(err) {
		t.Errorf("stale staging %s survived the next Lock (%v)", txn.Dir(), err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("stale temporary file %s survived the next Lock (%v)", tmp, err)
	}
	if _, err := os.Stat(live.ImagePath("b-amd64-1-1")); err != nil {
		t.Errorf("the next Lock deleted a live transaction's staging: %v", err)
	}
	// It commits under the lock, not without.
	live.Add("b-amd64-1-1")
	if err := live.Commit(nil); err == nil {
		t.Errorf("Commit(nil) = nil, want an error: committing needs the lock")
	}
}

// TestWriteFileLeavesNoTemp: the store's own files are written through
// staging, so no temporary sibling (..etc-sums*, .installed*) is ever
// created in the store folder itself, where a kill would leave it.
func TestWriteFileLeavesNoTemp(t *testing.T) {
	s := At(filepath.Join(t.TempDir(), "roimg"))
	l := lock(t, s)
	if err := s.SetInstalled(l, []string{"hello-amd64"}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteFile(l, ".etc-sums", []byte("x  etc/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var got []string
	ents, _ := os.ReadDir(s.Dir())
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if diff := cmp.Diff([]string{".etc-sums", ".lock", ".staging", "installed"}, got); diff != "" {
		t.Errorf("store folder mismatch (-want +got):\n%s", diff)
	}
	if err := s.SetInstalled(l, []string{"evil\nbash-amd64"}); !errors.Is(err, pkgname.ErrBadName) {
		t.Errorf("SetInstalled with a newline = %v, want ErrBadName", err)
	}
	if err := s.WriteFile(nil, "installed", nil, 0o644); err == nil {
		t.Errorf("WriteFile without the lock = nil, want an error")
	}
}

// TestAtCreatesNothing: a store that does not exist lists nothing and
// is not created by reading it.
func TestAtCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "roimg")
	s := At(dir)
	if got, err := s.List(); err != nil || len(got) != 0 {
		t.Errorf("List of a missing store = %v, %v, want nothing", got, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("reading created %s (%v)", dir, err)
	}
}

func TestInstalledAndGC(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := lock(t, s)
	if _, err := s.Installed(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Installed of a new store = %v, want ErrNotExist", err)
	}
	txn, err := s.Begin(l)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, "hello-amd64-2.12-1", "libc-amd64-1-1")
	stage(t, txn, "hello-amd64-2.12-2", "libc-amd64-1-2")
	stage(t, txn, "libc-amd64-1-1")
	stage(t, txn, "libc-amd64-1-2")
	stage(t, txn, "pinned-amd64-1-1")
	stage(t, txn, "pinned-amd64-1-2")
	stage(t, txn, "unwanted-amd64-1-1")
	stage(t, txn, "broken-amd64-1-1")
	if err := txn.Commit(l); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInstalled(l, []string{"hello-amd64", "pinned-amd64-1-1", "broken-amd64", "hello-amd64", "gone-amd64"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Installed()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"broken-amd64", "gone-amd64", "hello-amd64", "pinned-amd64-1-1"}, got); diff != "" {
		t.Errorf("Installed mismatch (-want +got):\n%s", diff)
	}
	// A meta that does not parse: gc keeps the package and says so.
	if err := os.WriteFile(s.MetaPath("broken-amd64-1-1"), []byte("runtime_dep: {"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Strays gc must tolerate: a half-installed image, an unknown file.
	for _, f := range []string{"half-amd64-1-1.squashfs", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keep, problems, err := s.Needed()
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 {
		t.Errorf("Needed problems = %v, want one about broken-amd64-1-1", problems)
	}
	removed, err := s.GC(l, keep)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"hello-amd64-2.12-1", "libc-amd64-1-1", "pinned-amd64-1-2", "unwanted-amd64-1-1", "half-amd64-1-1.squashfs"}, removed); diff != "" {
		t.Errorf("GC removed mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"broken-amd64-1-1", "hello-amd64-2.12-2", "libc-amd64-1-2", "pinned-amd64-1-1"}, names(t, s)); diff != "" {
		t.Errorf("after GC mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "notes.txt")); err != nil {
		t.Errorf("GC removed an unknown file: %v", err)
	}
}

func TestUnlocked(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(nil); err == nil {
		t.Errorf("Begin without lock = nil, want an error")
	}
	if err := s.Remove(nil, "a-amd64-1-1"); err == nil {
		t.Errorf("Remove without lock = nil, want an error")
	}
}

// TestNeededRefusesBadDeps: a runtime_dep that is not a full package
// name (a path, a newline) is reported, not followed.
func TestNeededRefusesBadDeps(t *testing.T) {
	s := At(filepath.Join(t.TempDir(), "roimg"))
	l := lock(t, s)
	txn, err := s.Begin(l)
	if err != nil {
		t.Fatal(err)
	}
	stage(t, txn, "hello-amd64-1-1", "../../etc/passwd", "libc-amd64-1-1\nx")
	if err := txn.Commit(l); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInstalled(l, []string{"hello-amd64"}); err != nil {
		t.Fatal(err)
	}
	keep, problems, err := s.Needed()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]bool{"hello-amd64-1-1": true}, keep); diff != "" {
		t.Errorf("Needed mismatch (-want +got):\n%s", diff)
	}
	if len(problems) != 2 {
		t.Errorf("problems = %v, want the two bad runtime_deps", problems)
	}
}
