//go:build !linux

package repo

import "os"

// startWriteback does nothing where sync_file_range(2) does not exist;
// the fsync does all the work.
func startWriteback(f *os.File, off, n int64) {}

// preallocate does nothing where fallocate(2) does not exist.
func preallocate(f *os.File, n int64) error { return nil }
