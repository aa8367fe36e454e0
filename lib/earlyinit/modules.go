package earlyinit

import (
	"errors"
	"sync"

	"distri.dev/distri/lib/kmod"
)

// modules loads kernel modules: the explicit list at start, and the
// drivers of every device that exists (coldplug) or appears (uevents).
type modules struct {
	b      *booter
	loader *kmod.Loader
	plug   *kmod.Coldplug
}

func newModules(b *booter, x *kmod.Index) *modules {
	m := &modules{b: b}
	m.loader, m.plug = kmod.NewLogged(x, b.log.Printf)
	return m
}

// group is a set of modules loaded in the background once asked for.
type group struct {
	once sync.Once
	wg   sync.WaitGroup
}

// Start loads names in parallel in the background, the first time it
// is called.
func (g *group) Start(m *modules, names []string) {
	g.once.Do(func() {
		for _, n := range names {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				if _, err := m.loader.Load(n); err != nil && !errors.Is(err, kmod.ErrNoDevice) {
					m.b.log.Printf("module %s: %v", n, err)
				}
			}()
		}
	})
}

// Wait waits until the modules are loaded (or failed to).
func (g *group) Wait() { g.wg.Wait() }

// Modalias loads the drivers for one device's modalias, in the
// background, once per modalias.
func (m *modules) Modalias(alias string) { m.plug.Modalias(alias) }

// Coldplug loads the drivers of the devices that exist already: every
// /sys/bus/*/devices/*/modalias. Devices that appear later arrive as
// uevents.
func (m *modules) Coldplug() int { return m.plug.Scan("/sys") }
