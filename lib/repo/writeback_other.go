//go:build !linux

package repo

import "os"

// startWriteback does nothing where sync_file_range(2) does not exist;
// the fsync does all the work.
func startWriteback(f *os.File, off, n int64) {}
