package squashfs

import (
	"container/list"
	"sync"
)

// lruCache is a small concurrency-safe LRU cache bounded by the summed
// cost of its entries (bytes, roughly). Concurrent loads of one key are
// coalesced: when eight extract workers need the same fragment block,
// it is read and inflated once.
type lruCache[K comparable, V any] struct {
	mu      sync.Mutex
	maxCost int
	cost    int
	order   list.List // of *lruEntry[K, V], most recently used first
	items   map[K]*list.Element
	loading map[K]*lruLoad[V]
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	cost int
}

type lruLoad[V any] struct {
	done chan struct{}
	val  V
	err  error
}

func newLRUCache[K comparable, V any](maxCost int) *lruCache[K, V] {
	return &lruCache[K, V]{
		maxCost: maxCost,
		items:   make(map[K]*list.Element),
		loading: make(map[K]*lruLoad[V]),
	}
}

// get returns the cached value for key, or calls load, caches and returns
// its result. Errors are not cached. An entry costlier than the whole
// cache is returned but not kept.
func (c *lruCache[K, V]) get(key K, load func() (V, int, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		v := e.Value.(*lruEntry[K, V]).val
		c.mu.Unlock()
		return v, nil
	}
	if l, ok := c.loading[key]; ok {
		c.mu.Unlock()
		<-l.done
		return l.val, l.err
	}
	l := &lruLoad[V]{done: make(chan struct{})}
	c.loading[key] = l
	c.mu.Unlock()

	var cost int
	l.val, cost, l.err = load()

	c.mu.Lock()
	delete(c.loading, key)
	if l.err == nil && cost <= c.maxCost {
		c.items[key] = c.order.PushFront(&lruEntry[K, V]{key: key, val: l.val, cost: cost})
		c.cost += cost
		for c.cost > c.maxCost {
			e := c.order.Back()
			ent := e.Value.(*lruEntry[K, V])
			c.order.Remove(e)
			delete(c.items, ent.key)
			c.cost -= ent.cost
		}
	}
	c.mu.Unlock()
	close(l.done)
	return l.val, l.err
}
