package mirrortest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"distri.dev/distri/lib/distritest"
)

// NginxConfig returns the nginx configuration documented in
// docs/repository.md, so the tests run what the documentation says.
func NginxConfig(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	doc := filepath.Join(filepath.Dir(file), "../../../docs/repository.md")
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```nginx\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no ```nginx block", doc)
	}
	return string(m[1])
}

// Nginx serves repo with Debian's nginx on loopback, configured as
// docs/repository.md says, and returns its URL. nginx runs in the
// foreground with its prefix, pid file, logs and temp files in a temp
// dir; it is stopped in t.Cleanup.
func Nginx(t testing.TB, repo string) string {
	t.Helper()
	nginx := distritest.NeedTool(t, "nginx")
	prefix := t.TempDir()
	port := freePort(t)
	conf := NginxConfig(t)
	conf = strings.Replace(conf, "listen 7080;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1)
	conf = strings.Replace(conf, "root /srv/distri;", "root "+repo+";", 1)
	conf = strings.Replace(conf, "include mime.types;", "include /etc/nginx/mime.types;", 1)
	conf = strings.Replace(conf, "http {", fmt.Sprintf(`http {
    access_log off;
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;`, prefix), 1)
	conf = fmt.Sprintf("daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log %[1]s/error.log;\npid %[1]s/nginx.pid;\nevents { worker_connections 256; }\n%[2]s", prefix, conf)
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-p", prefix, "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Fatalf("nginx exited: %v\n%s", err, log)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
