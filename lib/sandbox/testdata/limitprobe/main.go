// Command limitprobe is the step that the sandbox's limits tests run: it
// attacks one limit (fork bomb, memory hog, endless sleep, filling a tmpfs)
// or reports what it sees. It is built statically, so it needs nothing
// from the host.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "limitprobe:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: limitprobe forkbomb | mem MiB | sleep DURATION | fill PATH BYTES | df PATH | cgroup-wait")
	}
	switch args[0] {
	case "forkbomb":
		// Every process starts copies of itself as fast as it can, and
		// keeps trying when the kernel refuses.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		for {
			if err := exec.Command(self, "forkbomb").Start(); err != nil {
				time.Sleep(time.Millisecond)
			}
		}
	case "mem":
		mib, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		// Touch every page, so the memory is really used.
		var keep [][]byte
		for range mib {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("survived with", len(keep), "MiB")
		return nil
	case "sleep":
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return err
		}
		time.Sleep(d)
		fmt.Println("woke up")
		return nil
	case "fill":
		n, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return err
		}
		f, err := os.Create(args[1])
		if err != nil {
			return err
		}
		buf := make([]byte, 64<<10)
		var werr error
		for written := int64(0); written < n && werr == nil; written += int64(len(buf)) {
			_, werr = f.Write(buf)
		}
		if werr == nil {
			werr = f.Sync()
		}
		f.Close()
		switch {
		case werr == nil:
			fmt.Println("ok")
		case errors.Is(werr, syscall.ENOSPC):
			fmt.Println("ENOSPC")
		default:
			return werr
		}
		return nil
	case "df":
		var st syscall.Statfs_t
		if err := syscall.Statfs(args[1], &st); err != nil {
			return err
		}
		fmt.Printf("size=%d inodes=%d\n", int64(st.Blocks)*st.Bsize, st.Files)
		return nil
	case "cgroup-wait":
		// Print this process's groups, then wait for stdin to close, so
		// the test can look at the group from the host.
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return err
		}
		os.Stdout.Write(b)
		fmt.Println("END")
		bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}
