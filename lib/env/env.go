// Package env reads the environment variables distri's binaries honour,
// once, in main. Libraries take these values through their Options and
// never read the environment themselves.
package env

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// Env is what the environment says.
type Env struct {
	// SourceDateEpoch is $SOURCE_DATE_EPOCH (reproducible builds): the
	// time stamp of images, and the newest mtime they may contain. Zero
	// when unset.
	SourceDateEpoch time.Time
}

// Load reads the environment. A malformed value is an error naming the
// variable.
func Load() (Env, error) {
	var e Env
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			return e, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a non-negative number of seconds since 1970", v)
		}
		e.SourceDateEpoch = time.Unix(secs, 0).UTC()
	}
	return e, nil
}
