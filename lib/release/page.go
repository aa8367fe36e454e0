package release

import (
	"bytes"
	htmltemplate "html/template"
	"strconv"
	"text/template"
)

// pageData is what README and index.html show.
type pageData struct {
	URL   string // e.g. https://mirror.example/distri/ (may be empty)
	Files []File
	KeyID string // the signing key's ID, hex
}

var funcs = map[string]any{"size": humanSize}

// humanSize formats n bytes with a binary unit, e.g. 412.3 MiB.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

var readmeTmpl = template.Must(template.New("README").Funcs(funcs).Parse(`distri release
{{if .URL}}
This folder is served at {{.URL}}img/
{{end}}
Files:
{{range .Files}}
{{.Name}}{{if .Title}}: {{.Title}}{{end}}
  {{size .Size}}{{if .Uncompressed}} ({{size .Uncompressed}} uncompressed){{end}}
  sha256 {{.SHA256}}
{{- if .Torrent}}
  torrent {{.Torrent}}
  {{.Magnet}}
{{- end}}
{{end}}
With BitTorrent (if you can: the mirror may be far away), open the magnet
link or the .torrent file; the torrent lists the mirror as a web seed, so
it downloads even when nobody else seeds.

Verify (distri.pub is the repository's public key, key ID {{.KeyID}}):

  % minisign -V -p distri.pub -m SHA256SUMS
  % sha256sum -c --ignore-missing SHA256SUMS

Decompress an image (--sparse keeps its holes):

  % zstd -d --sparse distri-disk.img.zst

With all images, log in as root with the password peace.
`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("index.html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>distri release</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
code, pre { font-family: monospace; word-break: break-all; }
pre { background: #f4f4f4; padding: .5em; white-space: pre-wrap; }
section { border-top: 1px solid #ccc; padding: .5em 0; }
.size { color: #555; }
</style>
</head>
<body>
<h1>distri release</h1>
{{if .URL}}<p>This folder is served at <a href="{{.URL}}img/">{{.URL}}img/</a>.</p>{{end}}
<p>If you can, use BitTorrent: the mirror may be far away. Each torrent lists the mirror as a web seed, so it downloads even when nobody else seeds.</p>
{{range .Files}}<section id="{{.Name}}">
<h2><a href="{{.Name}}">{{.Name}}</a></h2>
{{if .Title}}<p>{{.Title}}</p>{{end}}
<p class="size">{{size .Size}}{{if .Uncompressed}} ({{size .Uncompressed}} uncompressed){{end}}, SHA-256 <code>{{.SHA256}}</code></p>
{{if .Torrent}}<p><a href="{{.Torrent}}">{{.Torrent}}</a></p>
<p><a href="{{.Magnet}}"><code>{{.Magnet}}</code></a></p>{{end}}
</section>
{{end}}<section>
<h2>Verify</h2>
<p><a href="SHA256SUMS">SHA256SUMS</a> is signed by the repository key (key ID <code>{{.KeyID}}</code>): <a href="SHA256SUMS.minisig">SHA256SUMS.minisig</a>. <a href="README">README</a> says the same as this page in plain text.</p>
<pre>% minisign -V -p distri.pub -m SHA256SUMS
% sha256sum -c --ignore-missing SHA256SUMS
% zstd -d --sparse distri-disk.img.zst</pre>
<p>With all images, log in as root with the password peace.</p>
</section>
</body>
</html>
`))

func renderReadme(p pageData) ([]byte, error) {
	var b bytes.Buffer
	err := readmeTmpl.Execute(&b, p)
	return b.Bytes(), err
}

func renderHTML(p pageData) ([]byte, error) {
	var b bytes.Buffer
	err := htmlTmpl.Execute(&b, p)
	return b.Bytes(), err
}
