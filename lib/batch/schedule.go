package batch

import (
	"context"
	"fmt"
	"io"
)

type state int

const (
	pending state = iota
	running
	succeeded
	failed
	skipped
)

type scheduler struct {
	opts    Options
	recipes map[string]*recipe
	waits   map[string][]string // name → names it waits for
	res     *Result
}

type outcome struct {
	name  string
	paths []string
	log   string
	err   error
}

// run builds the stale recipes in res.Stale order: one coordinator (this
// goroutine) starts up to Jobs builders, each a goroutine reporting its
// outcome, and starts a recipe once everything it waits for succeeded.
func (s *scheduler) run(ctx context.Context, stale map[string]bool) error {
	progress := s.opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	jobs := max(s.opts.Jobs, 1)
	st := make(map[string]state, len(s.res.Stale))
	for _, n := range s.res.Stale {
		st[n] = pending
	}
	ready := func(n string) bool {
		for _, d := range s.waits[n] {
			if stale[d] && st[d] != succeeded {
				return false
			}
		}
		return true
	}
	// dependents of a failed recipe can never start.
	var skip func(n string)
	skip = func(n string) {
		for _, m := range s.res.Stale {
			if st[m] != pending {
				continue
			}
			for _, d := range s.waits[m] {
				if d == n {
					st[m] = skipped
					skip(m)
					break
				}
			}
		}
	}
	results := make(chan outcome)
	var (
		active   int
		started  int
		stop     bool
		failures []Failure
	)
	for {
		for !stop && active < jobs && ctx.Err() == nil {
			next := ""
			for _, n := range s.res.Stale {
				if st[n] == pending && ready(n) {
					next = n
					break
				}
			}
			if next == "" {
				break
			}
			st[next] = running
			active++
			started++
			fmt.Fprintf(progress, "[%d/%d] building %s …\n", started, len(s.res.Stale), next)
			go func(n string) {
				paths, log, err := s.opts.Builder.Build(ctx, s.recipes[n].dir)
				results <- outcome{name: n, paths: paths, log: log, err: err}
			}(next)
		}
		if active == 0 {
			break
		}
		o := <-results
		active--
		if o.err != nil {
			st[o.name] = failed
			failures = append(failures, Failure{Name: o.name, Log: o.log, Err: o.err})
			fmt.Fprintf(progress, "%s failed (log: %s)\n", o.name, o.log)
			skip(o.name)
			stop = !s.opts.KeepGoing
			continue
		}
		st[o.name] = succeeded
		s.res.Paths = append(s.res.Paths, o.paths...)
	}
	be := &BuildError{Total: len(s.res.Stale)}
	for _, n := range s.res.Stale {
		switch st[n] {
		case failed:
			for _, f := range failures {
				if f.Name == n {
					be.Failed = append(be.Failed, f)
				}
			}
		case skipped:
			be.Skipped = append(be.Skipped, n)
		case pending:
			be.NotStarted = append(be.NotStarted, n)
		}
	}
	if len(failures) == 0 {
		if len(be.NotStarted) == 0 {
			return nil
		}
		return fmt.Errorf("batch: %w (not started: %v)", ctx.Err(), be.NotStarted)
	}
	return be
}
