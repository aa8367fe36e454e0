package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotFound means no module provides a name or alias.
var ErrNotFound = errors.New("no such module")

// ErrNoDevice means a module refused to load because the hardware it
// drives is absent (finit_module said ENODEV), e.g. aesni_intel on a CPU
// without AES-NI. Callers usually ignore it.
var ErrNoDevice = errors.New("no device for module")

// Loader loads modules of one Index into the running kernel. Its
// methods are safe to call from many goroutines at once: each module is
// loaded once, and a goroutine that needs a module another is loading
// waits for it.
type Loader struct {
	index *Index
	// Loaded, if not nil, is called after each module this Loader
	// inserted, e.g. to log it.
	loaded func(name string)

	mu    sync.Mutex
	state map[string]*loadState
}

type loadState struct {
	done chan struct{}
	err  error
}

// NewLoader returns a Loader for x. loaded, if not nil, is called with
// the name of each module the Loader inserts.
func NewLoader(x *Index, loaded func(name string)) *Loader {
	return &Loader{index: x, loaded: loaded, state: map[string]*loadState{}}
}

// Index returns the index the loader loads from.
func (l *Loader) Index() *Index { return l.index }

// Load loads the modules that provide name (a module name or alias) and
// their dependencies. A builtin module needs nothing. It returns the
// names of the modules it resolved to.
func (l *Loader) Load(name string) ([]string, error) {
	mods, builtin := l.index.Resolve(name)
	if builtin {
		return nil, nil
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	var errs []error
	ok := false
	for _, m := range mods {
		if err := l.load(m); err != nil {
			errs = append(errs, err)
		} else {
			ok = true
		}
	}
	if ok {
		// One module of several with the alias suffices (e.g. "aes":
		// aesni_intel fails with ENODEV, aes_generic works).
		return mods, nil
	}
	return mods, errors.Join(errs...)
}

// LoadModalias loads every module whose alias matches modalias, as
// udev does for a device's MODALIAS. Modules without a device (ENODEV)
// are not an error. It returns the modules that matched.
func (l *Loader) LoadModalias(modalias string) ([]string, error) {
	mods := l.index.Match(modalias)
	var errs []error
	for _, m := range mods {
		if err := l.load(m); err != nil && !errors.Is(err, ErrNoDevice) {
			errs = append(errs, err)
		}
	}
	return mods, errors.Join(errs...)
}

func (l *Loader) load(name string) error {
	l.mu.Lock()
	if s, ok := l.state[name]; ok {
		l.mu.Unlock()
		<-s.done
		return s.err
	}
	s := &loadState{done: make(chan struct{})}
	l.state[name] = s
	l.mu.Unlock()
	s.err = l.insert(name)
	close(s.done)
	return s.err
}

func (l *Loader) insert(name string) error {
	for _, sd := range l.index.Softdeps[name] {
		l.Load(sd) // best effort, as modprobe does
	}
	for _, d := range l.index.Deps[name] {
		if err := l.load(d); err != nil {
			return fmt.Errorf("%s needs %w", name, err)
		}
	}
	rel, ok := l.index.Path[name]
	if !ok {
		if l.index.Builtin[name] {
			return nil
		}
		return fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	err := insertFile(filepath.Join(l.index.Dir, rel))
	switch {
	case err == nil:
		if l.loaded != nil {
			l.loaded(name)
		}
		return nil
	case errors.Is(err, unix.EEXIST):
		return nil // loaded already, e.g. by the kernel through modprobe
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("%s: %w", name, ErrNoDevice)
	}
	return fmt.Errorf("load %s: %w", name, err)
}

// Needs returns the modules [Loader.Load] inserts for name, in order:
// for each module name resolves to, the modules of its softdeps and its
// dependencies (recursively, each once), then the module itself. Built-in
// modules are left out; builtin is true if name itself is built in.
func (x *Index) Needs(name string) (mods []string, builtin bool, err error) {
	direct, builtin := x.Resolve(name)
	if builtin {
		return nil, true, nil
	}
	if len(direct) == 0 {
		return nil, false, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	seen := map[string]bool{}
	var visit func(n string) error
	visit = func(n string) error {
		if seen[n] {
			return nil
		}
		seen[n] = true
		for _, sd := range x.Softdeps[n] {
			sdm, _ := x.Resolve(sd)
			for _, m := range sdm {
				visit(m) // best effort, as Load
			}
		}
		for _, d := range x.Deps[n] {
			if err := visit(d); err != nil {
				return fmt.Errorf("%s needs %w", n, err)
			}
		}
		if _, ok := x.Path[n]; ok {
			mods = append(mods, n)
		} else if !x.Builtin[n] {
			return fmt.Errorf("%s: %w", n, ErrNotFound)
		}
		return nil
	}
	for _, m := range direct {
		if err := visit(m); err != nil {
			return mods, false, err
		}
	}
	return mods, false, nil
}

// insertFile loads the module file at path into the kernel. A
// compressed one (.ko.xz, .ko.zst, .ko.gz) is offered to the kernel as
// it is first (finit_module with MODULE_INIT_COMPRESSED_FILE), which
// keeps the file descriptor for LSMs such as LoadPin and IMA that judge
// where a module came from; a kernel built without
// CONFIG_MODULE_DECOMPRESS, or for another format, refuses that with
// EOPNOTSUPP or EINVAL, and then the module is decompressed here
// (ReadModuleFile) and loaded with init_module.
func insertFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !compressed(path) {
		return unix.FinitModule(int(f.Fd()), "", 0)
	}
	err = unix.FinitModule(int(f.Fd()), "", unix.MODULE_INIT_COMPRESSED_FILE)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	image, rerr := ReadModuleFile(path)
	if rerr != nil {
		return rerr
	}
	return unix.InitModule(image, "")
}

// compressed reports whether path names a compressed module file.
func compressed(path string) bool {
	return strings.HasSuffix(path, ".ko.xz") || strings.HasSuffix(path, ".ko.zst") || strings.HasSuffix(path, ".ko.gz")
}
