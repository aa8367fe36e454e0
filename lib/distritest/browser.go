package distritest

import (
	"bytes"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// RenderPage renders u in headless chromium (Debian's, `make deps`) and
// returns the DOM it built; it fails the test unless the DOM holds
// marker (e.g. "</html>").
func RenderPage(t testing.TB, u, marker string) string {
	t.Helper()
	chromium := NeedTool(t, "chromium")
	// The flags keep chromium off the network (this machine's is closed)
	// and out of anyone's profile.
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", u)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.Bytes())
	}
	if !strings.Contains(string(out), marker) {
		t.Fatalf("chromium rendered no page:\n%s\n%s", out, stderr.Bytes())
	}
	return string(out)
}

var hrefRE = regexp.MustCompile(`<a [^>]*href="([^"]*)"`)

// CheckLinks fetches every link of a rendered dom, relative to base,
// and fails the test on any status but 200, or when there is no link.
// Links of other schemes than http (magnet:) are not fetched.
func CheckLinks(t testing.TB, base, dom string) {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range hrefRE.FindAllStringSubmatch(dom, -1) {
		ref, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
		if err != nil {
			t.Errorf("link %q: %v", m[1], err)
			continue
		}
		u := b.ResolveReference(ref)
		if u.Scheme != "http" && u.Scheme != "https" {
			continue
		}
		u.Fragment = ""
		resp, err := http.Get(u.String())
		if err != nil {
			t.Errorf("link %s: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("link %s: %s", u, resp.Status)
		}
		n++
	}
	if n == 0 {
		t.Errorf("no links in the rendered page")
	}
}
