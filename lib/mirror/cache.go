package mirror

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// cache remembers, per file of <repo>/pkg, what [Index] learnt about it,
// so that a second run only reads new or changed files. It is JSON in
// <repo>/pkg/.index-cache; a missing or unreadable cache is empty.
type cache struct {
	path string
	mu   sync.Mutex
	// Files maps a file name to what is known about it.
	Files map[string]*fileInfo `json:"files"`
	// Pointers are the pointer metas the last run wrote.
	Pointers []string `json:"pointers"`
	seen     map[string]bool
}

// fileInfo is the cached state of one file.
type fileInfo struct {
	Size     int64    `json:"size"`
	MtimeNs  int64    `json:"mtime_ns"`
	SHA256   string   `json:"sha256"`
	Provides []string `json:"provides,omitempty"` // images only
}

func loadCache(path string) *cache {
	c := &cache{path: path, Files: map[string]*fileInfo{}, seen: map[string]bool{}}
	b, err := os.ReadFile(path)
	if err != nil {
		return c
	}
	if json.Unmarshal(b, c) != nil || c.Files == nil {
		c.Files = map[string]*fileInfo{}
		c.Pointers = nil
	}
	return c
}

// save writes the cache, leaving out files no run asked about.
func (c *cache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.Files {
		if !c.seen[name] {
			delete(c.Files, name)
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(c.path, b)
}

// file returns the size and sha256 of dir/name (and, for images, what
// they provide), from the cache when the file's size and mtime are
// unchanged, and makes sure its .zst and .gz siblings are current.
func (c *cache) file(dir, name string, image bool, logf func(string, ...any)) (*fileInfo, error) {
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.seen[name] = true
	info, ok := c.Files[name]
	c.mu.Unlock()
	fresh := ok && info.Size == fi.Size() && info.MtimeNs == fi.ModTime().UnixNano()
	if !fresh {
		logf("hash %s", name)
		info = &fileInfo{Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
		if info.SHA256, err = hashFile(p); err != nil {
			return nil, err
		}
		if image {
			if info.Provides, err = imageProvides(p); err != nil {
				return nil, err
			}
		}
		c.mu.Lock()
		c.Files[name] = info
		c.mu.Unlock()
	}
	if !fresh || !siblingsCurrent(p, fi.ModTime()) {
		logf("compress %s", name)
		if err := compressSiblings(p); err != nil {
			return nil, err
		}
	}
	return info, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// siblingsCurrent reports whether p.zst and p.gz exist with p's mtime.
func siblingsCurrent(p string, mtime time.Time) bool {
	for _, suf := range []string{".zst", ".gz"} {
		fi, err := os.Stat(p + suf)
		if err != nil || !fi.ModTime().Equal(mtime) {
			return false
		}
	}
	return true
}

// compressSiblings writes p.zst and p.gz and gives them p's mtime.
func compressSiblings(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	for _, s := range []struct {
		suffix string
		enc    func(io.Writer) (io.WriteCloser, error)
	}{
		{".zst", func(w io.Writer) (io.WriteCloser, error) {
			enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
			if err != nil {
				return nil, err
			}
			// The decoded size in the frame header lets a client size
			// its buffer (lib/repo reads the index into one) and the
			// encoder pick a window no larger than the file.
			enc.ResetContentSize(w, fi.Size())
			return enc, nil
		}},
		{".gz", func(w io.Writer) (io.WriteCloser, error) {
			return gzip.NewWriterLevel(w, gzip.DefaultCompression)
		}},
	} {
		err := writeAtomic(p+s.suffix, func(w io.Writer) error {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			enc, err := s.enc(w)
			if err != nil {
				return err
			}
			if _, err := io.Copy(enc, src); err != nil {
				return err
			}
			return enc.Close()
		})
		if err != nil {
			return fmt.Errorf("compress %s: %w", p, err)
		}
		if err := os.Chtimes(p+s.suffix, fi.ModTime(), fi.ModTime()); err != nil {
			return err
		}
	}
	return nil
}
