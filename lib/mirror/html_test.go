package mirror_test

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"distri.dev/distri/lib/distritest"
	"distri.dev/distri/lib/mirror"
	"distri.dev/distri/lib/mirror/mirrortest"
)

// hostile is a file name a package builder chose to break the page.
const hostile = `out/share/x/<script>document.title="owned"</script><a href="javascript:x">`

var htmlPkgs = []mirrortest.Package{
	{Name: "libbar-amd64-1.0-1"},
	{Name: "libfoo-amd64-2.0-3", Deps: []string{"libbar-amd64-1.0-1", "libgone-amd64-1-1"}, Files: map[string]string{
		"out/lib/libfoo.so.2": "ELF",
		hostile:               "x",
	}, Symlinks: map[string]string{"out/lib/libfoo.so": "libfoo.so.2"}},
}

func TestHTML(t *testing.T) {
	r := mirrortest.NewRepo(t, htmlPkgs...)
	pkgDir := filepath.Join(r.Dir, "pkg")
	list, err := os.ReadFile(filepath.Join(pkgDir, mirror.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`href="libbar-amd64-1.0-1.html"`, `href="libfoo-amd64-2.0-3.html"`, ">2.0-3<"} {
		if !bytes.Contains(list, []byte(want)) {
			t.Errorf("index.html lacks %s", want)
		}
	}
	page, err := os.ReadFile(filepath.Join(pkgDir, "libfoo-amd64-2.0-3.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<a href="libbar-amd64-1.0-1.html">libbar-amd64-1.0-1</a>`, // dependency in the repository: linked
		`libgone-amd64-1-1 (not in this repository)`,               // not: named, not linked
		`<li>out/lib/libfoo.so -&gt; libfoo.so.2</li>`,
		`<code>lib/libfoo.so.2</code>`, // provides
		`&lt;script&gt;document.title=&#34;owned&#34;&lt;/script&gt;`,
		`href="libfoo-amd64-2.0-3.squashfs"`,
	} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("libfoo's page lacks %s", want)
		}
	}
	if bytes.Contains(page, []byte("<script")) || bytes.Contains(page, []byte(`href="javascript`)) {
		t.Errorf("a file name's markup reached the page unescaped")
	}
	if bytes.Contains(page, []byte(`href="libgone`)) {
		t.Errorf("a dependency missing from the repository is linked")
	}

	// Unchanged pages are not rewritten; a removed package's page goes.
	fi, _ := os.Stat(filepath.Join(pkgDir, "libbar-amd64-1.0-1.html"))
	for _, suf := range []string{".squashfs", ".meta.textproto"} {
		if err := os.Remove(filepath.Join(pkgDir, "libfoo-amd64-2.0-3"+suf)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mirror.Index(mirror.IndexOptions{Repo: r.Dir, Key: r.Key}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pkgDir, "libfoo-amd64-2.0-3.html")); !os.IsNotExist(err) {
		t.Errorf("page of a removed package still there (err %v)", err)
	}
	if fi2, _ := os.Stat(filepath.Join(pkgDir, "libbar-amd64-1.0-1.html")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("an unchanged page was rewritten")
	}
}

// TestHTMLBrowser renders the pages in headless chromium through the
// mirror's own handler: they render, a hostile file name makes no
// element, and every link resolves.
func TestHTMLBrowser(t *testing.T) {
	distritest.NeedTool(t, "chromium")
	r := mirrortest.NewRepo(t, htmlPkgs...)
	srv := httptest.NewServer(mirror.Handler(r.Dir))
	defer srv.Close()
	for _, tt := range []struct {
		name, path string
		want       []string
	}{
		{"listing", "/pkg/", []string{"libbar", "libfoo", "2 packages"}},
		{"package", "/pkg/libfoo-amd64-2.0-3.html", []string{"libfoo-amd64-2.0-3", "lib/libfoo.so.2", `document.title="owned"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dom := distritest.RenderPage(t, srv.URL+tt.path, "</table>")
			for _, w := range tt.want {
				if !strings.Contains(dom, strings.ReplaceAll(w, `"`, "&quot;")) && !strings.Contains(dom, w) {
					t.Errorf("rendered %s lacks %q", tt.path, w)
				}
			}
			if strings.Contains(dom, "<script") || strings.Contains(dom, "<title>owned") {
				t.Errorf("the hostile file name became markup:\n%s", dom)
			}
			distritest.CheckLinks(t, srv.URL+tt.path, dom)
		})
	}
}
