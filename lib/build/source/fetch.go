// Package source fetches, verifies, caches and extracts the sources of
// recipes: http(s) URLs, local files next to the recipe, and Debian
// archive paths (debian:pool/… for binary packages, debian-src:pool/… for
// source packages) resolved against the machine's apt sources at run time.
//
// Downloads are verified by sha256 and kept in a content-addressed cache,
// <cache>/sha256/<hex>, written atomically (a temporary file renamed into
// place), so a failed or corrupt download leaves nothing behind.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
)

// Fetcher downloads sources into a content-addressed cache.
type Fetcher struct {
	// CacheDir holds sha256/<hex> files.
	CacheDir string
	// ArchiveURIs are the base URLs of the Debian archive (e.g. from
	// [debian.ArchiveURIs]), tried in order for debian: and debian-src:
	// locations.
	ArchiveURIs []string
	// Client is the HTTP client; nil means http.DefaultClient.
	Client *http.Client
}

// HashError says a fetched file does not have the sha256 the recipe wants.
type HashError struct {
	Recipe, URL, Want, Got string
}

func (e *HashError) Error() string {
	return fmt.Sprintf("%s: %s: sha256 mismatch: want %s, got %s", e.Recipe, e.URL, e.Want, e.Got)
}

// CachePath returns where the file with sha256 hash lives in the cache.
func (f *Fetcher) CachePath(hash string) string {
	return filepath.Join(f.CacheDir, "sha256", hash)
}

// Fetch makes sure the file with sha256 hash is in the cache, trying the
// locations in order (source first, then mirrors), and returns its path.
// recipe names the recipe in errors; dir is the recipe's directory, which
// relative local paths are resolved against. A cached file means no
// network access at all.
func (f *Fetcher) Fetch(ctx context.Context, recipe, dir, hash string, locations []string) (string, error) {
	if len(hash) != 64 {
		return "", fmt.Errorf("%s: hash %q: want a sha256 (64 hex digits)", recipe, hash)
	}
	dst := f.CachePath(hash)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if len(locations) == 0 {
		return "", fmt.Errorf("%s: no source location", recipe)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	var errs []error
	for _, loc := range locations {
		urls, err := f.resolve(dir, loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", loc, err))
			continue
		}
		for _, u := range urls {
			err := f.fetchOne(ctx, recipe, u, hash, dst)
			if err == nil {
				return dst, nil
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	return "", fmt.Errorf("%s: fetch source (sha256 %s): %w", recipe, hash, errors.Join(errs...))
}

// resolve turns a location into the URLs (or local paths) to try.
func (f *Fetcher) resolve(dir, loc string) ([]string, error) {
	switch {
	case strings.HasPrefix(loc, "http://"), strings.HasPrefix(loc, "https://"):
		return []string{loc}, nil
	case strings.HasPrefix(loc, "debian:"), strings.HasPrefix(loc, "debian-src:"):
		p := loc[strings.IndexByte(loc, ':')+1:]
		p = strings.TrimPrefix(p, "/")
		if p == "" || strings.Contains(p, "..") {
			return nil, fmt.Errorf("bad archive path %q", p)
		}
		if len(f.ArchiveURIs) == 0 {
			return nil, fmt.Errorf("no Debian archive configured (no apt sources found)")
		}
		var urls []string
		for _, base := range f.ArchiveURIs {
			urls = append(urls, strings.TrimSuffix(base, "/")+"/"+p)
		}
		return urls, nil
	case strings.HasPrefix(loc, "file://"):
		return []string{strings.TrimPrefix(loc, "file://")}, nil
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("unsupported scheme")
	default:
		if !filepath.IsAbs(loc) {
			loc = filepath.Join(dir, loc)
		}
		return []string{loc}, nil
	}
}

// fetchOne copies u into dst through a temporary file, verifying hash.
func (f *Fetcher) fetchOne(ctx context.Context, recipe, u, hash, dst string) (err error) {
	var r io.ReadCloser
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		c := f.Client
		if c == nil {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("%s: HTTP status %s", u, resp.Status)
		}
		r = resp.Body
	} else {
		fh, err := os.Open(u)
		if err != nil {
			return err
		}
		r = fh
	}
	defer r.Close()
	tmp, err := renameio.NewPendingFile(dst, renameio.WithTempDir(filepath.Dir(dst)), renameio.WithStaticPermissions(0o644))
	if err != nil {
		return err
	}
	defer tmp.Cleanup() // removes the temporary file unless it was renamed
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return &HashError{Recipe: recipe, URL: u, Want: hash, Got: got}
	}
	return tmp.CloseAtomicallyReplace()
}
