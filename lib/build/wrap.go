package build

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"distri.dev/distri/lib/sandbox"
)

// The bin/ wrappers. As in the original distri, every program in a
// package's out/bin and out/sbin gets an entry bin/X that is a small
// compiled program, not a script: it sets the environment the program
// needs and execs /ro/<full>/out/bin/X. Unlike the original it
//
//   - keeps argv[0] as the caller gave it (/ro/bin/hello, hello, -bash…),
//     so usage messages and login-shell detection see what was run, and
//     passes the real path to execve only;
//   - sets no PATH or LD_LIBRARY_PATH: programs find their libraries
//     through the lib/ farm (the rpath) and the pinned loader, so nothing
//     leaks into the environment of their children. It prepends only
//     interpreter search paths (PERL5LIB, PYTHONPATH) of the package and
//     its runtime dependencies, when there are any;
//   - needs no libc and no loader: it is freestanding (raw syscalls),
//     static, 13 KiB (mostly its 4 KiB configuration area and page
//     alignment), built once per build with the build's own gcc
//     and copied per program with the program's configuration written
//     into its .distri_wrapper section (the original's distrifilename
//     section: tools can read the real program from there).
//
// Because it execs, the program replaces the wrapper: same PID, signals
// reach the program directly and its exit status is the caller's.
//
// A recipe can ship its own wrapper as pkgs/<name>/wrappers/<X> (a script
// or any file), copied as bin/X with ${DISTRI_PREFIX} and
// ${DISTRI_FULLNAME} substituted.

// wrapperMarker starts the configuration area of the wrapper stub.
const wrapperMarker = "@@DISTRI_WRAPPER_CONFIG@@"

// wrapperConfigSize is the size of the configuration area.
const wrapperConfigSize = 4096

// wrapperSource is the wrapper stub. Its configuration is the program to
// exec, NUL-terminated, then NAME=value entries, each NUL-terminated, and
// an empty string: each value is prepended (with ":") to the variable's
// value in the caller's environment, or set if the variable is unset.
const wrapperSource = `/* distri bin/ wrapper (see lib/build/wrap.go). */
#define CONFIG_SIZE 4096
char distri_wrapper_config[CONFIG_SIZE] __attribute__((section(".distri_wrapper"))) = "` + wrapperMarker + `";

static long sys3(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}

static unsigned long len(const char *s) {
	unsigned long n = 0;
	while (s[n]) n++;
	return n;
}

static void say(const char *s) { sys3(1, 2, (long)s, (long)len(s)); }

/* prefixlen returns the length of "NAME=" if e is a NAME=... entry. */
static unsigned long namelen(const char *e) {
	unsigned long n = 0;
	while (e[n] && e[n] != '=') n++;
	return e[n] == '=' ? n + 1 : 0;
}

static int samename(const char *a, const char *b, unsigned long n) {
	for (unsigned long i = 0; i < n; i++)
		if (a[i] != b[i]) return 0;
	return 1;
}

__attribute__((used, noreturn)) void distri_wrapper_main(long *sp) {
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	const char *target = distri_wrapper_config;
	const char *sets = target + len(target) + 1;
	unsigned long nenv = 0, nsets = 0, need = 0;
	while (envp[nenv]) nenv++;
	for (const char *s = sets; *s; s += len(s) + 1) {
		nsets++;
		need += len(s) + 1;
		for (unsigned long i = 0; i < nenv; i++)
			if (samename(envp[i], s, namelen(s))) need += len(envp[i]) + 1;
	}
	char *newenv[nenv + nsets + 1];
	char buf[need + 1];
	char *p = buf;
	unsigned long n = 0;
	for (unsigned long i = 0; i < nenv; i++) {
		int replaced = 0;
		for (const char *s = sets; *s; s += len(s) + 1)
			if (namelen(s) && samename(envp[i], s, namelen(s))) replaced = 1;
		if (!replaced) newenv[n++] = envp[i];
	}
	for (const char *s = sets; *s; s += len(s) + 1) {
		unsigned long nl = namelen(s);
		const char *old = 0;
		for (unsigned long i = 0; i < nenv; i++)
			if (nl && samename(envp[i], s, nl)) old = envp[i] + nl;
		newenv[n++] = p;
		for (const char *c = s; *c; c++) *p++ = *c;
		if (old && *old) {
			*p++ = ':';
			for (const char *c = old; *c; c++) *p++ = *c;
		}
		*p++ = 0;
	}
	newenv[n] = 0;
	long err = sys3(59, (long)target, (long)argv, (long)newenv);
	say("distri wrapper: cannot execute ");
	say(target);
	say(err == -2 ? ": no such file\n" : ": execve failed\n");
	for (;;) sys3(231, 127, 0, 0);
}

__asm__(".text\n.global _start\n_start:\n\txor %rbp, %rbp\n\tmov %rsp, %rdi\n\tand $-16, %rsp\n\tcall distri_wrapper_main\n\thlt\n");
`

// wrapperCFlags build the stub: freestanding, static, no loader, no
// build id (so the bytes depend on the source and compiler only), no
// calls gcc might add for loops (memcpy, memset).
var wrapperCFlags = []string{
	"-Os", "-static", "-nostdlib", "-nostartfiles", "-ffreestanding", "-fno-builtin",
	"-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-fno-tree-loop-distribute-patterns",
	"-fno-pie", "-no-pie", "-Wl,--build-id=none", "-Wl,-z,norelro", "-Wl,-z,noexecstack", "-s",
}

// compileWrapperStub compiles the wrapper stub with the build's gcc in
// the sandbox (opts: the build's sandbox options; dir: a host directory
// bound writable at /dest) and returns its bytes.
func compileWrapperStub(ctx context.Context, opts sandbox.Options, log io.Writer) ([]byte, error) {
	dir, err := os.MkdirTemp(opts.Dest, "wrapper-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "wrapper.c"), []byte(wrapperSource), 0o644); err != nil {
		return nil, err
	}
	in := "/dest/" + filepath.Base(dir)
	opts.Argv = append([]string{"gcc", "-o", in + "/wrapper"}, wrapperCFlags...)
	opts.Argv = append(opts.Argv, in+"/wrapper.c")
	opts.Dir = in
	opts.Stdout, opts.Stderr = log, log
	fmt.Fprintf(log, "### wrapper: %s\n", strings.Join(opts.Argv, " "))
	if err := sandbox.Run(ctx, opts); err != nil {
		return nil, fmt.Errorf("compiling the bin/ wrapper: %w", err)
	}
	return os.ReadFile(filepath.Join(dir, "wrapper"))
}

// wrapperBytes returns the stub configured to exec target with env (NAME=
// value entries, values prepended to the caller's).
func wrapperBytes(stub []byte, target string, env []string) ([]byte, error) {
	i := bytes.Index(stub, []byte(wrapperMarker))
	if i < 0 || bytes.Contains(stub[i+1:], []byte(wrapperMarker)) {
		return nil, fmt.Errorf("wrapper stub: configuration marker not found exactly once")
	}
	var cfg bytes.Buffer
	for _, s := range append([]string{target}, env...) {
		if s == "" || strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("wrapper for %s: bad entry %q", target, s)
		}
		cfg.WriteString(s)
		cfg.WriteByte(0)
	}
	cfg.WriteByte(0)
	if cfg.Len() > wrapperConfigSize || i+wrapperConfigSize > len(stub) {
		return nil, fmt.Errorf("wrapper for %s: configuration of %d bytes does not fit in %d", target, cfg.Len(), wrapperConfigSize)
	}
	out := slices.Clone(stub)
	copy(out[i:i+wrapperConfigSize], make([]byte, wrapperConfigSize))
	copy(out[i:], cfg.Bytes())
	return out, nil
}

// WrapperTarget returns the program the bin/ wrapper at path execs, read
// from its .distri_wrapper section, or "" if path is not such a wrapper.
func WrapperTarget(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", nil // not an ELF file: a script, a custom wrapper
	}
	defer f.Close()
	s := f.Section(".distri_wrapper")
	if s == nil {
		return "", nil
	}
	b, err := s.Data()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	target, _, _ := bytes.Cut(b, []byte{0})
	return string(target), nil
}

// writeWrappers makes bin/X for every program X in out/bin and out/sbin
// of the package tree pkgDir (whose image is mounted at /ro/<full>):
// the recipe's own wrappers/X if it has one, else the stub configured to
// exec /ro/<full>/out/{bin,sbin}/X with env, or without a stub (a build
// without gcc) a symlink to it.
func writeWrappers(pkgDir, full string, r *Recipe, stub []byte, env []string) error {
	return eachProgram(pkgDir, func(rel, at string) error {
		name := filepath.Base(rel)
		var data []byte
		if custom, err := os.ReadFile(filepath.Join(r.Dir, "wrappers", name)); err == nil {
			data = []byte(strings.NewReplacer(
				"${DISTRI_PREFIX}", "/ro/"+full+"/out",
				"${DISTRI_FULLNAME}", full,
			).Replace(string(custom)))
		} else if !os.IsNotExist(err) {
			return err
		} else if stub == nil {
			// No compiler in the build (build_steps without a
			// builder): a plain link, no environment.
			return os.Symlink("../"+rel, at)
		} else if data, err = wrapperBytes(stub, "/ro/"+full+"/"+rel, env); err != nil {
			return err
		}
		if err := os.WriteFile(at, data, 0o755); err != nil {
			return err
		}
		return os.Chmod(at, 0o755) // whatever the umask
	})
}

// eachProgram calls fn for every program of the package tree pkgDir
// that gets a bin/ entry: each non-directory in out/bin, then those of
// out/sbin whose name out/bin does not have. rel is the program's path
// relative to pkgDir (out/bin/X), at the entry to make (pkgDir/bin/X);
// bin/ exists when fn runs.
func eachProgram(pkgDir string, fn func(rel, at string) error) error {
	for _, dir := range []string{"out/bin", "out/sbin"} {
		entries, err := os.ReadDir(filepath.Join(pkgDir, dir))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		if err := mkdir755(filepath.Join(pkgDir, "bin")); err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			at := filepath.Join(pkgDir, "bin", e.Name())
			if _, err := os.Lstat(at); err == nil {
				continue // out/bin/X wins over out/sbin/X
			}
			if err := fn(dir+"/"+e.Name(), at); err != nil {
				return err
			}
		}
	}
	return nil
}

// wrapperEnv returns the variables the wrappers of output o prepend:
// the interpreter search paths (PERL5LIB, PYTHONPATH) of o and of the
// packages of its runtime closure that have them.
func wrapperEnv(o *output, closure []string, res *resolver) ([]string, error) {
	vars := map[string][]string{}
	for _, full := range append([]string{o.full}, closure...) {
		dir := o.dir
		if full != o.full {
			p := res.byFull[full]
			if p == nil || p.dir == "" {
				continue // not mounted in the build: a declared runtime dep only
			}
			dir = p.dir
		}
		for _, v := range []struct{ name, glob string }{
			{"PERL5LIB", "out/lib/perl5"},
			{"PERL5LIB", "out/share/perl5"},
			{"PYTHONPATH", "out/lib/python3*/site-packages"},
		} {
			matches, err := filepath.Glob(filepath.Join(dir, v.glob))
			if err != nil {
				return nil, err
			}
			for _, m := range matches {
				rel, err := filepath.Rel(dir, m)
				if err != nil {
					return nil, err
				}
				vars[v.name] = append(vars[v.name], "/ro/"+full+"/"+filepath.ToSlash(rel))
			}
		}
	}
	var env []string
	for _, name := range []string{"PERL5LIB", "PYTHONPATH"} {
		if len(vars[name]) > 0 {
			env = append(env, name+"="+strings.Join(vars[name], ":"))
		}
	}
	return env, nil
}

// mkdir755 makes the directory dir with mode 0755 whatever the umask, so
// that the image does not depend on who built it.
func mkdir755(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}
