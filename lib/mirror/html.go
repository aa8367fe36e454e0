package mirror

// The browsable repository: static HTML pages [Index] writes next to the
// index, the original distri's repobrowser done as files any mirror
// serves.
//
//	<repo>/pkg/index.html        every package: name, version, size, recipe, dependencies
//	<repo>/pkg/<full>.html       one package: downloads, runtime dependencies (linked),
//	                             what it provides in the exchange directories, its files
//
// Plain HTML and CSS, no JavaScript: the files list is a <details>
// element the browser opens on demand. Everything shown comes from
// packages (file names inside images are chosen by whoever built them),
// so pages are rendered with html/template, which escapes by context.
// Package metas carry no description; the page names the recipe
// (source_pkg) instead. Pages are rewritten only when their content
// changes, and pages of packages no longer in the repository are removed.

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/pkgname"
	"distri.dev/distri/lib/squashfs"
)

// HTMLFile is the name of the repository's browsable listing in <repo>/pkg.
const HTMLFile = "index.html"

// maxListedFiles bounds the files listed on a package's page, so that a
// package of a hundred thousand files does not make a page of megabytes.
const maxListedFiles = 20000

type htmlPackage struct {
	Name     string // full name
	Pkg      string
	Version  string
	Arch     string
	Size     uint64
	SHA256   string
	Source   string
	Deps     []htmlDep
	Provides []string
	Files    []string
	More     int // files not listed (beyond maxListedFiles)
	FilesErr string
}

type htmlDep struct {
	Name string
	Have bool // in this repository: linked
}

var htmlFuncs = template.FuncMap{"size": func(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}}

const htmlHead = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{block "title" .}}{{end}}</title>
<style>
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
code, .files li { font-family: monospace; word-break: break-all; }
ul.files, ul.provides { columns: 2 20em; }
summary { cursor: pointer; font-weight: bold; }
.missing { color: #777; }
</style>
</head>
<body>
`

var listTmpl = template.Must(template.New("list").Funcs(htmlFuncs).Parse(htmlHead +
	`{{define "title"}}distri packages{{end}}<h1>distri packages</h1>
<p>{{len .}} packages. Install with <code>distri install NAME</code>; the signed index is <a href="index">index</a> (<a href="index.minisig">signature</a>).</p>
<table>
<thead><tr><th>package</th><th>version</th><th>size</th><th>recipe</th><th>runtime dependencies</th></tr></thead>
<tbody>
{{range .}}<tr id="{{.Name}}"><td><a href="{{.Name}}.html">{{.Pkg}}</a></td><td>{{.Version}}</td><td class="num">{{size .Size}}</td><td>{{.Source}}</td><td class="num">{{len .Deps}}</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`))

var pkgTmpl = template.Must(template.New("pkg").Funcs(htmlFuncs).Parse(htmlHead +
	`{{define "title"}}{{.Name}}{{end}}<p><a href="index.html#{{.Name}}">all packages</a></p>
<h1>{{.Name}}</h1>
<table>
<tr><th>package</th><td>{{.Pkg}}</td></tr>
<tr><th>version</th><td>{{.Version}}</td></tr>
<tr><th>architecture</th><td>{{.Arch}}</td></tr>
{{if .Source}}<tr><th>recipe</th><td>{{.Source}}</td></tr>{{end}}
<tr><th>image</th><td><a href="{{.Name}}.squashfs">{{.Name}}.squashfs</a>, {{size .Size}}, SHA-256 <code>{{.SHA256}}</code></td></tr>
<tr><th>meta</th><td><a href="{{.Name}}.meta.textproto">{{.Name}}.meta.textproto</a></td></tr>
</table>
<h2>Runtime dependencies ({{len .Deps}})</h2>
{{if .Deps}}<ul>
{{range .Deps}}<li>{{if .Have}}<a href="{{.Name}}.html">{{.Name}}</a>{{else}}<span class="missing">{{.Name}} (not in this repository)</span>{{end}}</li>
{{end}}</ul>{{else}}<p>none</p>{{end}}
<details><summary>Provides in /ro ({{len .Provides}})</summary>
<ul class="provides">
{{range .Provides}}<li><code>{{.}}</code></li>
{{end}}</ul>
</details>
<details><summary>Files ({{len .Files}}{{if .More}} listed, {{.More}} more not listed{{end}})</summary>
{{if .FilesErr}}<p>cannot list: {{.FilesErr}}</p>{{end}}
<ul class="files">
{{range .Files}}<li>{{.}}</li>
{{end}}</ul>
</details>
</body>
</html>
`))

// writeHTML writes pkg/index.html and a page per package, and removes
// pages of packages that are gone.
func writeHTML(pkgDir string, entries []*pb.Package, metas []*pb.Meta) error {
	have := map[string]bool{}
	for _, e := range entries {
		have[e.GetName()] = true
	}
	pkgs := make([]htmlPackage, len(entries))
	for i, e := range entries {
		n, err := pkgname.Parse(e.GetName())
		if err != nil {
			return err
		}
		p := htmlPackage{
			Name: e.GetName(), Pkg: n.Pkg, Version: n.Version(), Arch: n.Arch,
			Size: e.GetImageSize(), SHA256: e.GetImageSha256(), Source: metas[i].GetSourcePkg(),
			Provides: e.GetProvides(),
		}
		for _, d := range e.GetRuntimeDep() {
			p.Deps = append(p.Deps, htmlDep{Name: d, Have: have[d]})
		}
		p.Files, p.More, err = listFiles(filepath.Join(pkgDir, p.Name+".squashfs"))
		if err != nil {
			p.FilesErr = err.Error()
		}
		pkgs[i] = p
		var b bytes.Buffer
		if err := pkgTmpl.Execute(&b, p); err != nil {
			return fmt.Errorf("page of %s: %w", p.Name, err)
		}
		if err := writeIfChanged(filepath.Join(pkgDir, p.Name+".html"), b.Bytes()); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := listTmpl.Execute(&b, pkgs); err != nil {
		return fmt.Errorf("%s: %w", HTMLFile, err)
	}
	if err := writeIfChanged(filepath.Join(pkgDir, HTMLFile), b.Bytes()); err != nil {
		return err
	}
	ents, err := os.ReadDir(pkgDir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".html")
		if !ok || have[base] || !pkgname.IsFull(base) {
			continue
		}
		if err := os.Remove(filepath.Join(pkgDir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// listFiles returns the paths in the image (directories with a trailing
// slash, symlinks as "path -> target"), at most maxListedFiles, and how
// many more there are.
func listFiles(image string) ([]string, int, error) {
	r, err := squashfs.Open(image)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	fsys := r.FS()
	var files []string
	more := 0
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if len(files) >= maxListedFiles {
			more++
			return nil
		}
		switch {
		case d.IsDir():
			p += "/"
		case d.Type()&fs.ModeSymlink != 0:
			if t, err := fs.ReadLink(fsys, p); err == nil {
				p += " -> " + t
			}
		}
		files = append(files, p)
		return nil
	})
	return files, more, err
}

func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return writeFileAtomic(path, b)
}
