// Command probe is the step that sandbox tests run inside the sandbox. It is
// built statically, so it needs nothing from the host, and it prints what it
// finds.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// errnoName prints an error as its errno name, or "ok".
func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EROFS:
			return "EROFS"
		case syscall.ENOENT:
			return "ENOENT"
		case syscall.EACCES:
			return "EACCES"
		case syscall.ECONNREFUSED:
			return "ECONNREFUSED"
		case syscall.ENETUNREACH:
			return "ENETUNREACH"
		case syscall.EPERM:
			return "EPERM"
		case syscall.EINVAL:
			return "EINVAL"
		case syscall.ENOTTY:
			return "ENOTTY"
		case syscall.ENXIO:
			return "ENXIO"
		case syscall.ENOSYS:
			return "ENOSYS"
		case syscall.ENOEXEC:
			return "ENOEXEC"
		case syscall.EBUSY:
			return "EBUSY"
		}
		return errno.Error()
	}
	return err.Error()
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: probe CMD ARGS")
	}
	switch cmd, args := args[0], args[1:]; cmd {
	case "true":
		return nil
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case "write": // write PATH
		fmt.Println(errnoName(os.WriteFile(args[0], []byte("written inside\n"), 0o644)))
	case "read": // read PATH
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Println(errnoName(err))
			return nil
		}
		fmt.Print(string(b))
	case "readlink": // readlink PATH
		t, err := os.Readlink(args[0])
		if err != nil {
			fmt.Println(errnoName(err))
			return nil
		}
		fmt.Println(t)
	case "ls": // ls DIR
		ents, err := os.ReadDir(args[0])
		if err != nil {
			fmt.Println(errnoName(err))
			return nil
		}
		for _, e := range ents {
			fmt.Println(e.Name())
		}
	case "statfs": // statfs PATH: prints the file system magic
		var st syscall.Statfs_t
		if err := syscall.Statfs(args[0], &st); err != nil {
			return err
		}
		fmt.Printf("%#x\n", st.Type)
	case "hostname":
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		fmt.Println(h)
	case "getwd":
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		fmt.Println(wd)
	case "dial": // dial ADDR
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err == nil {
			c.Close()
		}
		fmt.Println(errnoName(err))
	case "ps": // ps: "<pid> <argv0>" for every process in /proc; own pid is "self"
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		var lines []string
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				return err
			}
			argv0, _, _ := strings.Cut(string(b), "\x00")
			pid := e.Name()
			if pid == strconv.Itoa(os.Getpid()) {
				pid = "self"
			}
			lines = append(lines, pid+" "+argv0)
		}
		sort.Strings(lines)
		fmt.Println(strings.Join(lines, "\n"))
	case "exit": // exit CODE
		code, err := strconv.Atoi(args[0])
		if err != nil {
			return err
		}
		os.Exit(code)
	case "background": // background LOCKFILE: flock LOCKFILE, leave a child holding it
		f, err := os.Create(args[0])
		if err != nil {
			return err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			return err
		}
		child := exec.Command(os.Args[0], "sleep")
		child.ExtraFiles = []*os.File{f}
		child.Stdout = os.Stdout // keeps the step's stdout open, too
		if err := child.Start(); err != nil {
			return err
		}
		fmt.Println("started", child.Process.Pid)
	case "cat":
		_, err := io.Copy(os.Stdout, os.Stdin)
		return err
	case "sleep":
		time.Sleep(time.Hour)
	case "attack": // attack MAJOR:MINOR (the host's disk)
		attack(args[0])
	case "foreign-abi": // a system call through another ABI's numbering
		foreignABI()
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}
