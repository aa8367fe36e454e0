package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"distri.dev/distri/lib/pb"
	"distri.dev/distri/lib/sandbox"
)

// CMakeBuilderDeps and MesonBuilderDeps are what cmakebuilder and
// mesonbuilder recipes build with on top of [CBuilderDeps].
var (
	CMakeBuilderDeps = []string{"cmake", "ninja-build"}
	MesonBuilderDeps = []string{"meson", "ninja-build", "python3"}
)

// BuilderDeps returns the implicit build dependencies of b's builder: the
// bootstrap toolchain for cbuilder, plus cmake and ninja for
// cmakebuilder, plus meson, ninja and python3 for mesonbuilder. A recipe
// with build_steps and no builder gets none (as in the original: declare
// "cbuilder: {}" next to build_steps to build with the toolchain). They
// enter the input digest like dep entries.
func BuilderDeps(b *pb.Build) []string {
	switch {
	case b.GetCbuilder() != nil:
		return slices.Clone(CBuilderDeps)
	case b.GetCmakebuilder() != nil:
		return slices.Concat(CBuilderDeps, CMakeBuilderDeps)
	case b.GetMesonbuilder() != nil:
		return slices.Concat(CBuilderDeps, MesonBuilderDeps)
	}
	return nil
}

// sandboxedBuilders are the builders [Builder.Build] runs in the sandbox.
var sandboxedBuilders = []string{"cbuilder", "cmakebuilder", "mesonbuilder", "build_step"}

// step is one build step.
type step struct {
	name string   // for progress, the log and errors, e.g. "configure"
	argv []string // run in the sandbox with /build as working directory
}

// shellStep runs script with /bin/sh -c; the step environment's
// variables (${DISTRI_PREFIX}, …) expand there.
func shellStep(name, script string) step {
	return step{name: name, argv: []string{"/bin/sh", "-c", script}}
}

// stepPaths are the sandbox paths of one build, the values of the
// ${DISTRI_…} variables.
type stepPaths struct {
	full      string // DISTRI_FULLNAME
	prefix    string // DISTRI_PREFIX, /ro/<full>/out
	sourceDir string // DISTRI_SOURCEDIR, /usr/src/<full> (read-only)
	buildDir  string // DISTRI_BUILDDIR, /build
	destDir   string // DISTRI_DESTDIR, /dest/tmp: installs go to $DESTDIR$DISTRI_PREFIX
	jobs      int    // DISTRI_JOBS
}

// env returns the variables every step gets, on top of the toolchain's.
func (p stepPaths) env(check bool) []string {
	env := []string{
		"DISTRI_SOURCEDIR=" + p.sourceDir,
		"DISTRI_BUILDDIR=" + p.buildDir,
		"DISTRI_DESTDIR=" + p.destDir,
		"DESTDIR=" + p.destDir,
		"DISTRI_PREFIX=" + p.prefix,
		"DISTRI_FULLNAME=" + p.full,
		"DISTRI_JOBS=" + fmt.Sprint(p.jobs),
	}
	if check {
		env = append(env, "DISTRI_CHECK=1")
	}
	return env
}

// substitute replaces the original's ${DISTRI_…} variables in a
// build_step argument; ${DISTRI_RESOLVE:pkg} becomes the full name of the
// build dependency pkg.
func (p stepPaths) substitute(s string, deps []*Recipe) (string, error) {
	s = strings.NewReplacer(
		"${DISTRI_DESTDIR}", p.destDir,
		"${DISTRI_PREFIX}", p.prefix,
		"${DISTRI_BUILDDIR}", p.buildDir,
		"${DISTRI_SOURCEDIR}", p.sourceDir,
		"${DISTRI_FULLNAME}", p.full,
		"${DISTRI_JOBS}", fmt.Sprint(p.jobs),
	).Replace(s)
	for {
		i := strings.Index(s, "${DISTRI_RESOLVE:")
		if i < 0 {
			return s, nil
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unterminated ${DISTRI_RESOLVE: in %q", s)
		}
		name := s[i+len("${DISTRI_RESOLVE:") : i+j]
		full := ""
		for _, d := range deps {
			if d.Name == depName(name) {
				full = d.FullName()
			}
		}
		if full == "" {
			return "", fmt.Errorf("${DISTRI_RESOLVE:%s}: %s is not a build dependency", name, name)
		}
		s = s[:i] + full + s[i+j+1:]
	}
}

// buildSteps returns the recipe's steps: its build_steps if it has any
// (they replace the builder's), else its builder's. check adds the
// builder's test step (make check, ctest, meson test) before installing;
// build_steps see DISTRI_CHECK=1 instead and run their tests themselves.
func buildSteps(r *Recipe, p stepPaths, deps []*Recipe, check bool) ([]step, error) {
	if bs := r.GetBuildStep(); len(bs) > 0 {
		var steps []step
		for i, s := range bs {
			if len(s.GetArgv()) == 0 {
				return nil, fmt.Errorf("%s: build_step %d has no argv", r.File, i+1)
			}
			argv := make([]string, len(s.GetArgv()))
			for j, a := range s.GetArgv() {
				var err error
				if argv[j], err = p.substitute(a, deps); err != nil {
					return nil, fmt.Errorf("%s: build_step %d: %w", r.File, i+1, err)
				}
			}
			name := strings.Join(s.GetArgv(), " ")
			if len(name) > 72 {
				name = name[:69] + "..."
			}
			steps = append(steps, step{name: fmt.Sprintf("build_step %d (%s)", i+1, name), argv: argv})
		}
		return steps, nil
	}
	var steps []step
	add := func(name, script string) { steps = append(steps, shellStep(name, script)) }
	switch {
	case r.GetCbuilder() != nil:
		cb := r.GetCbuilder()
		if cb.GetAutoreconf() {
			return nil, fmt.Errorf("%s: cbuilder: autoreconf is not supported yet", r.File)
		}
		configure := "./configure --prefix=${DISTRI_PREFIX} --sysconfdir=/etc --disable-dependency-tracking" + quoteAll(cb.GetExtraConfigureFlag())
		if ld := cb.GetExtraLdflag(); len(ld) > 0 {
			// After the environment's LDFLAGS, which pin the rpath and
			// the loader (farm.go).
			configure += ` LDFLAGS="${LDFLAGS} "` + shellQuote(strings.Join(ld, " "))
		}
		makeFlags := quoteAll(cb.GetExtraMakeFlag())
		// Many autotools packages (hello 2.10 among them) do not build out
		// of tree: their Makefiles write into subdirectories that only
		// exist in the source tree. The source stays read-only; the build
		// works on a copy in the build directory.
		add("copy source", `cp -a ${DISTRI_SOURCEDIR}/. /build/`)
		add("configure", configure)
		add("make", "make -j${DISTRI_JOBS} V=1"+makeFlags)
		if check {
			add("make check", "make -j${DISTRI_JOBS} check"+makeFlags)
		}
		add("make install", "make install DESTDIR=${DISTRI_DESTDIR}"+makeFlags)
	case r.GetCmakebuilder() != nil:
		// Debian's cmake finds its modules relative to the real path of
		// its executable (../share/cmake-3.25), but they are in another
		// package, cmake-data. Each step runs copies of cmake and ctest
		// from /tmp/cmake/bin, beside a share → /ro/share link (the
		// build files name /tmp/cmake/bin/cmake, so every step needs it).
		bin := ""
		for _, d := range deps {
			if d.Name == "cmake" {
				bin = "/ro/" + d.FullName() + "/out/bin"
			}
		}
		cm := "mkdir -p /tmp/cmake/bin && cp " + bin + "/cmake " + bin + "/ctest /tmp/cmake/bin/ &&" +
			" ln -s /ro/share /tmp/cmake/share && PATH=/tmp/cmake/bin:$PATH && "
		// Out of tree (the source is read-only), with Ninja; etc/ goes to
		// /etc (DESTDIR/etc), apart from the prefix.
		add("cmake", cm+"cmake ${DISTRI_SOURCEDIR} -G Ninja -DCMAKE_INSTALL_PREFIX:PATH=${DISTRI_PREFIX}"+
			" -DCMAKE_INSTALL_SYSCONFDIR:PATH=/etc -DCMAKE_INSTALL_LIBDIR:PATH=lib"+
			" -DCMAKE_BUILD_TYPE=Release -DCMAKE_VERBOSE_MAKEFILE:BOOL=ON"+quoteAll(r.GetCmakebuilder().GetExtraCmakeFlag()))
		// An explicit -j: ninja's default comes from the CPU count it
		// sees, which is right here, but the original passed it too.
		add("ninja", cm+"ninja -v -j ${DISTRI_JOBS}")
		if check {
			add("ctest", cm+"ctest --output-on-failure -j ${DISTRI_JOBS}")
		}
		add("ninja install", cm+"ninja -v install")
	case r.GetMesonbuilder() != nil:
		add("meson setup", "meson setup --prefix=${DISTRI_PREFIX} --sysconfdir=/etc --localstatedir=/var --libdir=lib"+
			" --buildtype=release --wrap-mode=nodownload"+quoteAll(r.GetMesonbuilder().GetExtraMesonFlag())+" . ${DISTRI_SOURCEDIR}")
		add("ninja", "ninja -v -j ${DISTRI_JOBS}")
		if check {
			add("meson test", "meson test --no-rebuild --print-errorlogs --num-processes ${DISTRI_JOBS}")
		}
		add("meson install", "meson install --no-rebuild")
	default:
		return nil, fmt.Errorf("%w: %s (builder %s)", ErrNeedsSandbox, r.File, r.BuilderName())
	}
	return steps, nil
}

// quoteAll returns each flag shell-quoted, each preceded by a space.
func quoteAll(flags []string) string {
	var b strings.Builder
	for _, f := range flags {
		b.WriteString(" " + shellQuote(f))
	}
	return b.String()
}

// StepTiming is how long one build step took, sandbox set-up included.
type StepTiming struct {
	Name string
	Took time.Duration
}

// runSteps runs the steps one after another in the sandbox base
// describes (Argv is set per step), logging each to log. A failing step
// is an error naming the recipe, the step and the log file.
func (b *Builder) runSteps(ctx context.Context, r *Recipe, steps []step, base sandbox.Options, log io.Writer, logPath string) ([]StepTiming, error) {
	var times []StepTiming
	for _, s := range steps {
		b.logf("%s: %s", r.Name, s.name)
		fmt.Fprintf(log, "### %s: %s\n", s.name, strings.Join(s.argv, " "))
		o := base
		o.Argv = s.argv
		o.Stdout, o.Stderr = log, log
		if b.opts.StepOutput != nil {
			w := io.MultiWriter(log, b.opts.StepOutput)
			o.Stdout, o.Stderr = w, w
		}
		start := time.Now()
		err := sandbox.Run(ctx, o)
		took := time.Since(start)
		fmt.Fprintf(log, "### %s: took %v\n", s.name, took.Round(time.Millisecond))
		times = append(times, StepTiming{Name: s.name, Took: took})
		if err != nil {
			// configure scripts say why they failed in config.log.
			if cl, rerr := os.ReadFile(filepath.Join(base.BuildDir, "config.log")); rerr == nil {
				fmt.Fprintf(log, "### config.log\n%s", cl)
			}
			return times, &StepError{Recipe: r.File, Step: s.name, Log: logPath, Err: err}
		}
	}
	return times, nil
}

// StepError is a failed build: the recipe, the step (a build step, or
// "source", "dependencies", "dependency <name>", "/ro" before them) and
// the log with the details.
type StepError struct {
	Recipe string // e.g. pkgs/hello/build.textproto
	Step   string // e.g. configure
	Log    string // e.g. repo/log/hello-amd64-2.10-1.log
	Err    error
}

func (e *StepError) Error() string {
	// Errors from below often start with the recipe already.
	msg := strings.TrimPrefix(e.Err.Error(), e.Recipe+": ")
	return fmt.Sprintf("%s: step %q failed: %s (log: %s)", e.Recipe, e.Step, msg, e.Log)
}

func (e *StepError) Unwrap() error { return e.Err }
