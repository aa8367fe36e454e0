package install

// The newest index time stamp accepted from each repository, kept in the
// root so that an older, validly signed index replayed later (a rollback
// to revisions with known holes) is refused (repo.CheckRollback).
//
//	<root>/var/lib/distri/repos/<name>.json           a named repository (repos.d name=)
//	<root>/var/lib/distri/repos/by-url/<hash>.json    an unnamed one: the first 16 hex digits of its URL's sha256
//	<root>/var/lib/distri/repos/.lock                 flock(2)ed while a file is read and replaced
//
// Each file is replaced atomically (renameio). A file that does not
// parse is an error naming it, not a reason to start over: starting over
// would accept any old index.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"
	"golang.org/x/sys/unix"

	"distri.dev/distri/lib/repo"
)

// stateDir is where, under the root, the newest index time stamps are.
const stateDir = "var/lib/distri/repos"

// repoState reads and writes the files in dir.
type repoState struct {
	dir string
}

// repoRecord is one repository's file.
type repoRecord struct {
	Repository string    `json:"repository"` // name or URL
	URL        string    `json:"url"`        // the URL the index came from last
	Timestamp  int64     `json:"timestamp"`  // of the newest index accepted, seconds since 1970
	Signed     time.Time `json:"signed"`     // the same, for people
}

// path returns the file of the repository id (a name if named, else its URL).
func (s *repoState) path(id string, named bool) string {
	if named {
		return filepath.Join(s.dir, id+".json")
	}
	h := sha256.Sum256([]byte(id))
	return filepath.Join(s.dir, "by-url", hex.EncodeToString(h[:8])+".json")
}

// seen refuses st if it is older than the newest stamp recorded for the
// repository id, and records it if it is newer. Where the state cannot
// be written for lack of permission (a user listing what is available,
// a read-only root), st is still checked against what is recorded, and
// warnf says that it is not remembered.
func (s *repoState) seen(id string, named bool, url string, st repo.Stamp, warnf func(string, ...any)) error {
	p := s.path(id, named)
	unlock, err := s.lock(filepath.Dir(p))
	if err != nil {
		if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("remember index time stamp: %w", err)
		}
		if _, err := check(p, id, st); err != nil {
			return err
		}
		warnf("repository %s: the time stamp of its index is not remembered: %v", id, err)
		return nil
	}
	defer unlock()
	oldTime, err := check(p, id, st)
	if err != nil || oldTime >= st.Signed.Unix() {
		return err
	}
	rec := repoRecord{Repository: id, URL: url, Timestamp: st.Signed.Unix(), Signed: st.Signed.UTC()}
	out, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	if err := renameio.WriteFile(p, append(out, '\n'), 0o644); err != nil {
		return fmt.Errorf("remember index time stamp: %w", err)
	}
	return nil
}

// lock creates dir (and s.dir) and takes the lock of s.dir.
func (s *repoState) lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// check refuses st if the file p records a newer stamp for id, and
// returns the recorded time stamp (0: none).
func check(p, id string, st repo.Stamp) (int64, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("check index time stamp: %w", err)
	}
	var old repoRecord
	if err := json.Unmarshal(b, &old); err != nil || old.Timestamp <= 0 {
		return 0, fmt.Errorf("%s: not a repository state file (%v): remove it to accept any index of %s once", p, err, id)
	}
	return old.Timestamp, repo.CheckRollback(id, repo.Stamp{Signed: time.Unix(old.Timestamp, 0)}, st)
}
