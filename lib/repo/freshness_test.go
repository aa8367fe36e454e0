package repo_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"distri.dev/distri/lib/minisign"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
	"distri.dev/distri/lib/repo"
)

func TestParseStamp(t *testing.T) {
	signed, expires := time.Unix(1765000000, 0).UTC(), time.Unix(1765600000, 0).UTC()
	for _, tt := range []struct {
		name    string
		comment string
		want    repo.Stamp
		wantErr string
	}{
		{name: "minisign's", comment: "timestamp:1765000000\tfile:index\thashed", want: repo.Stamp{Signed: signed, File: "index"}},
		{name: "distri-mirror's", comment: "timestamp:1765000000\tfile:index\texpires:1765600000\trepo:distri", want: repo.Stamp{Signed: signed, Expires: expires, Repo: "distri", File: "index"}},
		{name: "unknown field", comment: "timestamp:1765000000\tmirror:x", want: repo.Stamp{Signed: signed}},
		{name: "none", comment: "hello", want: repo.Stamp{}},
		{name: "twice", comment: "timestamp:1765000000\ttimestamp:1", wantErr: "timestamp: given twice"},
		{name: "bad time", comment: "timestamp:1765000000\texpires:soon", wantErr: `expires: "soon" is not a time`},
		{name: "negative time", comment: "timestamp:-5", wantErr: `timestamp: "-5" is not a time`},
		{name: "year 10000", comment: "timestamp:253402300800", wantErr: `timestamp: "253402300800" is not a time`},
		{name: "bad name", comment: "timestamp:1765000000\trepo:../x", wantErr: `repository name "../x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := repo.ParseStamp(tt.comment)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseStamp(%q) = %v, %v; want an error saying %q", tt.comment, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseStamp(%q) mismatch (-want +got):\n%s", tt.comment, diff)
			}
			if again, err := repo.ParseStamp(got.String()); err != nil || !cmp.Equal(again, got) {
				t.Errorf("ParseStamp(%q.String()) = %v, %v; want %v", got, again, err, got)
			}
		})
	}
}

// signIndex replaces the signature of r's index with one by k carrying
// the trusted comment c.
func signIndex(t *testing.T, r *mirrortest.Repo, c string) {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(r.Dir, "pkg", repo.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := minisign.Sign(r.Key, bytes.NewReader(idx), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir, "pkg", repo.SignatureFile), sig, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTrust fetches validly signed indexes whose trusted comments a
// client must refuse, through Repo.Index.
func TestTrust(t *testing.T) {
	r := newRepo(t)
	now := time.Now()
	ts := func(t time.Time) int64 { return t.Unix() }
	errSeen := errors.New("seen says no")
	for _, tt := range []struct {
		name     string
		comment  string
		trust    repo.Trust
		wantErr  error  // errors.Is
		wantText string // substring of the error
		wantWarn string // substring of a warning
	}{
		{name: "no time stamp", comment: "file:index", wantText: "has no timestamp"},
		{name: "expired", comment: fmt.Sprintf("timestamp:%d\texpires:%d", ts(now.Add(-2*time.Hour)), ts(now.Add(-time.Hour))), wantErr: repo.ErrExpired, wantText: "--allow-expired"},
		{name: "expired allowed", comment: fmt.Sprintf("timestamp:%d\texpires:%d", ts(now.Add(-2*time.Hour)), ts(now.Add(-time.Hour))), trust: repo.Trust{AllowExpired: true}, wantWarn: "using an expired index"},
		{name: "expires later", comment: fmt.Sprintf("timestamp:%d\texpires:%d", ts(now), ts(now.Add(time.Hour)))},
		{name: "expired by the clock given", comment: fmt.Sprintf("timestamp:%d\texpires:%d", ts(now), ts(now.Add(time.Hour))), trust: repo.Trust{Now: func() time.Time { return now.Add(2 * time.Hour) }}, wantErr: repo.ErrExpired},
		{name: "other repository", comment: fmt.Sprintf("timestamp:%d\trepo:other", ts(now)), trust: repo.Trust{Name: "distri"}, wantErr: repo.ErrIdentity, wantText: `signed for repository "other"`},
		{name: "no repository", comment: fmt.Sprintf("timestamp:%d", ts(now)), trust: repo.Trust{Name: "distri"}, wantErr: repo.ErrIdentity, wantText: "--name distri"},
		{name: "its repository", comment: fmt.Sprintf("timestamp:%d\trepo:distri", ts(now)), trust: repo.Trust{Name: "distri"}},
		{name: "seen refuses", comment: fmt.Sprintf("timestamp:%d", ts(now)), trust: repo.Trust{Seen: func(repo.Stamp) error { return errSeen }}, wantErr: errSeen},
	} {
		t.Run(tt.name, func(t *testing.T) {
			signIndex(t, r, tt.comment)
			var warnings strings.Builder
			tt.trust.Warnf = func(f string, args ...any) { fmt.Fprintf(&warnings, f+"\n", args...) }
			c, err := repo.New(repo.Options{URL: r.Dir, Keys: []minisign.PublicKey{r.Pub()}, Trust: tt.trust})
			if err != nil {
				t.Fatal(err)
			}
			idx, err := c.Index(t.Context())
			if tt.wantErr == nil && tt.wantText == "" {
				if err != nil || len(idx.GetPackage()) != 2 {
					t.Errorf("Index = %v, %v; want the index", idx, err)
				}
			} else {
				if idx != nil || err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantText) {
					t.Errorf("Index = %v, %v; want an error (%v) saying %q", idx, err, tt.wantErr, tt.wantText)
				}
			}
			if !strings.Contains(warnings.String(), tt.wantWarn) || (tt.wantWarn == "" && warnings.Len() > 0) {
				t.Errorf("warnings %q, want %q", warnings.String(), tt.wantWarn)
			}
		})
	}
}

func TestCheckRollback(t *testing.T) {
	older, newer := repo.Stamp{Signed: time.Unix(1765000000, 0)}, repo.Stamp{Signed: time.Unix(1765000100, 0)}
	if err := repo.CheckRollback("distri", older, newer); err != nil {
		t.Errorf("CheckRollback(newer after older) = %v", err)
	}
	if err := repo.CheckRollback("distri", newer, newer); err != nil {
		t.Errorf("CheckRollback(the same again) = %v", err)
	}
	err := repo.CheckRollback("distri", newer, older)
	var rb *repo.RollbackError
	if !errors.As(err, &rb) || !strings.Contains(err.Error(), "2025-12-06T05:46:40Z is older than the one accepted before (signed 2025-12-06T05:48:20Z)") {
		t.Errorf("CheckRollback(older after newer) = %v, want a *RollbackError with both times", err)
	}
}

// TestMirrorStamp checks that what distri-mirror index signs is what the
// client reads.
func TestMirrorStamp(t *testing.T) {
	r := newRepo(t)
	now := time.Unix(time.Now().Unix(), 0).UTC()
	if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key, Now: now, ValidFor: 24 * time.Hour, Name: "distri"}); err != nil {
		t.Fatal(err)
	}
	var got repo.Stamp
	c, err := repo.New(repo.Options{URL: r.Dir, Keys: []minisign.PublicKey{r.Pub()}, Trust: repo.Trust{Name: "distri", Seen: func(s repo.Stamp) error { got = s; return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Summary(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := repo.Stamp{Signed: now, Expires: now.Add(24 * time.Hour), Repo: "distri", File: "index"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stamp of distri-mirror's index mismatch (-want +got):\n%s", diff)
	}
}

// FuzzParseStamp: what parses formats back to the same stamp.
func FuzzParseStamp(f *testing.F) {
	f.Add("timestamp:1765000000\tfile:index\texpires:1765604800\trepo:distri")
	f.Add("timestamp:1765000000\tfile:index\thashed")
	f.Fuzz(func(t *testing.T, comment string) {
		s, err := repo.ParseStamp(comment)
		if err != nil {
			return
		}
		again, err := repo.ParseStamp(s.String())
		if err != nil || !cmp.Equal(again, s) {
			t.Errorf("ParseStamp(%q) = %v; ParseStamp of its String %q = %v, %v", comment, s, s.String(), again, err)
		}
	})
}
