package kmod

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestColdplug scans a fake sysfs: each modalias is handled once, those
// no module matches need nothing, and a driver that cannot be loaded (its
// file is missing, so nothing reaches finit_module) is reported with its
// modalias.
func TestColdplug(t *testing.T) {
	mods := t.TempDir()
	for name, s := range map[string]string{
		"modules.dep":   "kernel/drivers/net/ghost_net.ko:\n",
		"modules.alias": "alias virtio:d00000001v* ghost_net\n",
	} {
		if err := os.WriteFile(filepath.Join(mods, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x, err := ReadIndex(mods)
	if err != nil {
		t.Fatal(err)
	}
	sysfs := t.TempDir()
	for dev, alias := range map[string]string{
		"virtio/devices/virtio0":   "virtio:d00000001v00001AF4\n",
		"virtio/devices/virtio1":   "virtio:d00000001v00001AF4\n", // same driver: handled once
		"pci/devices/0000:00:01.0": "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00\n",
		"platform/devices/empty":   "",
	} {
		d := filepath.Join(sysfs, "bus", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	failed := map[string]string{}
	c := NewColdplug(NewLoader(x, nil), func(alias string, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed[alias] = err.Error()
	})
	if n := c.Scan(sysfs); n != 3 {
		t.Errorf("Scan found %d devices, want 3", n)
	}
	c.Wait()
	if len(failed) != 1 || !strings.Contains(failed["virtio:d00000001v00001AF4"], "ghost_net") {
		t.Errorf("failures %v, want one for virtio:d00000001v00001AF4 naming ghost_net", failed)
	}
	c.Modalias("virtio:d00000001v00001AF4") // seen: nothing happens
	c.Wait()
	if len(failed) != 1 {
		t.Errorf("failures %v after a repeated modalias", failed)
	}
}
