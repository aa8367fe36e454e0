// Command login stands in for /bin/login in the VM test of the booted
// system: it reports what distri-init set up and exits, which ends the
// console session.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	host, _ := os.Hostname()
	var ro []string
	ents, err := os.ReadDir("/ro")
	for _, e := range ents {
		ro = append(ro, e.Name())
	}
	var mounts []string
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 2 {
				mounts = append(mounts, f[1]+":"+f[2])
			}
		}
	}
	sid, _ := unix.Getsid(0)
	fmt.Printf("LOGIN hostname=%s session-leader=%v ro=[%s] ro-err=%v\n", host, sid == os.Getpid(), strings.Join(ro, ","), err)
	fmt.Printf("LOGIN mounts=%s\n", strings.Join(mounts, " "))
	// TestBootSystem's /etc/fstab mounts a disk holding this marker and
	// swaps on another disk.
	marker, err := os.ReadFile("/mnt/data/marker")
	fmt.Printf("LOGIN fstab-marker=%q err=%v\n", marker, err)
	var swaps []string
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, l := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(l); len(f) > 0 {
				swaps = append(swaps, f[0])
			}
		}
	}
	fmt.Printf("LOGIN swaps=%s\n", strings.Join(swaps, " "))
	// It mounts a FAT file system on /boot too, which needs modules
	// that the kernel loaded with distri-init's modprobe.
	marker, err = os.ReadFile("/boot/marker")
	fmt.Printf("LOGIN boot-marker=%q err=%v\n", marker, err)
	helper, _ := os.ReadFile("/proc/sys/kernel/modprobe")
	var mods []string
	if b, err := os.ReadFile("/proc/modules"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				mods = append(mods, f[0])
			}
		}
	}
	fmt.Printf("LOGIN modprobe=%s modules=%s\n", strings.TrimSpace(string(helper)), strings.Join(mods, " "))
	start := time.Now()
	cmd := exec.Command("/run/distri/modprobe", "-q", "--", "fs-vfat")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	err = cmd.Run()
	took := time.Since(start)
	// The module index: made beforehand in /var/cache/distri/kmod with a
	// marker alias; a scan would have gone there or to /run/distri/kmod.
	entries := func(dir string) string {
		var names []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != ".lock" {
				names = append(names, e.Name())
			}
		}
		return strings.Join(names, " ")
	}
	marker, _ = exec.Command("/run/distri/modprobe", "-R", "distri-premade-marker").Output()
	fmt.Printf("LOGIN modprobe-by-hand=%v took=%v kmod-cache=%s kmod-run=%s premade-marker=%s\n", err, took.Round(time.Millisecond),
		entries("/var/cache/distri/kmod"), entries("/run/distri/kmod"), strings.TrimSpace(string(marker)))
	fetch()
	killFuse()
}

// fusePid returns the pid of the process whose argv[0] is @distri-fuse
// (as distri-init starts it), or 0.
func fusePid() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); strings.HasPrefix(string(b), "@distri-fuse\x00") {
			return pid
		}
	}
	return 0
}

// killFuse prints distri-fuse's oom_score_adj, kills it with SIGKILL and
// waits up to 10 s for /ro to be served again by a new one (distri-init
// restarts it). This program lives on the root, not in /ro, so it keeps
// running while /ro is gone.
func killFuse() {
	old := fusePid()
	oom, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", old))
	err := unix.Kill(old, unix.SIGKILL)
	start := time.Now()
	pid := 0
	for err == nil {
		if pid = fusePid(); pid != 0 && pid != old {
			if _, err = os.ReadDir("/ro"); err == nil {
				break
			}
		}
		if time.Since(start) > 10*time.Second {
			err = fmt.Errorf("/ro not back after 10s: %v", err)
			break
		}
		time.Sleep(20 * time.Millisecond)
		err = nil
	}
	newOOM, _ := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid))
	fmt.Printf("LOGIN fuse-oom=%s fuse-restarted=%v new-oom=%s after=%v err=%v\n", strings.TrimSpace(string(oom)), pid != 0 && pid != old,
		strings.TrimSpace(string(newOOM)), time.Since(start).Round(time.Millisecond), err)
}

// fetch gets the URL in /etc/http-url, a file that TestBootSystem serves
// on the host, retrying for up to 60 s: distri-init configures the
// network in the background, maybe after the login started. It prints
// the body and the nameserver lines of /etc/resolv.conf.
func fetch() {
	url, err := os.ReadFile("/etc/http-url")
	var body []byte
	start := time.Now()
	for err == nil {
		c := &http.Client{Timeout: 3 * time.Second}
		var resp *http.Response
		resp, err = c.Get(strings.TrimSpace(string(url)))
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("%s", resp.Status)
			}
			break
		}
		if time.Since(start) > 60*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
		err = nil
	}
	var ns []string
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	for l := range strings.SplitSeq(string(resolv), "\n") {
		if strings.HasPrefix(l, "nameserver") {
			ns = append(ns, l)
		}
	}
	fmt.Printf("LOGIN http=%q err=%v after=%v resolv=%s\n", body, err, time.Since(start).Round(time.Millisecond), strings.Join(ns, ","))
}
