package earlyinit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemAvailable(t *testing.T) {
	for _, tt := range []struct {
		name, meminfo string
		want          uint64 // 0: an error
	}{
		{"kernel", "MemTotal:        1004356 kB\nMemFree:          871204 kB\nMemAvailable:     845612 kB\nBuffers:               0 kB\n", 845612},
		{"missing", "MemTotal:        1004356 kB\nMemFree:          871204 kB\n", 0},
		{"no unit", "MemAvailable:     845612\n", 0},
		{"garbage", "MemAvailable:     lots kB\n", 0},
		{"zero", "MemAvailable:     0 kB\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "meminfo")
			if err := os.WriteFile(p, []byte(tt.meminfo), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := memAvailable(p)
			if tt.want == 0 {
				if err == nil {
					t.Errorf("memAvailable(%q) = %d, want an error", tt.meminfo, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("memAvailable(%q) = %d, %v, want %d", tt.meminfo, got, err, tt.want)
			}
		})
	}
	if _, err := memAvailable("/proc/meminfo"); err != nil {
		t.Errorf("memAvailable of this machine: %v", err)
	}
}
