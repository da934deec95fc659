// Seed 004 in small: a Go service whose slab arena keeps every slab it hands out, beside a
// bounded cache that fills and then holds. It serves Go's pprof on -addr, so
//
//	memsleuth record --heap-profile http://127.0.0.1:6060/debug/pprof/heap -- ./arena
//
// reads its heap profiles as it runs. What memsleuth should say:
//
//	./arena              leak: allocations at main.(*SlabArena).Alloc grow, nearly all of it
//	./arena -leak 0      plateau: the cache fills to -cache entries, then holds
//	./arena -release     stable: the arena gives its slabs back (Release), memory holds
//	./arena -leak 0 -stuck 2
//	                     task-leak: 2 goroutines a tick wait forever for a reply, each
//	                     holding its request; goroutines waiting in main.stuck
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"
)

// SlabArena hands out slabs for vectors and keeps them all: seed 004's 87.56% of the heap.
type SlabArena struct {
	slabs [][]byte
}

func (a *SlabArena) Alloc(n int) []byte {
	slab := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		slab[i] = 1 // touched: resident, as a slab written with vectors is
	}
	a.slabs = append(a.slabs, slab)
	return slab
}

// Release gives the arena's slabs back (what the seed's fix does).
func (a *SlabArena) Release() {
	a.slabs = nil
}

// cache holds at most max entries of 64 KiB, dropping the oldest: bounded.
type cache struct {
	max     int
	entries map[int][]byte
	next    int
}

func (c *cache) put() {
	entry := make([]byte, 64<<10)
	for i := 0; i < len(entry); i += 4096 {
		entry[i] = 1
	}
	c.entries[c.next] = entry
	delete(c.entries, c.next-c.max)
	c.next++
}

// handle stands for a request's work: garbage the collector takes back, allocated far faster
// than anything is kept, as in a service (so collections run every few seconds, and each heap
// profile, which Go takes as of its last collection, is recent).
func handle(n int) int {
	buf := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		buf[i] = 2
	}
	return len(buf)
}

// stuck waits for a reply that never comes, holding its request (seed 004's goroutine leak).
func stuck(reply chan []byte, request []byte) {
	r := <-reply
	copy(r, request)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6060", "where to serve /debug/pprof")
	leak := flag.Int("leak", 256<<10, "bytes the arena keeps each tick")
	size := flag.Int("cache", 200, "entries the cache holds at most")
	release := flag.Bool("release", false, "release the arena's slabs every 20 ticks")
	stuckPerTick := flag.Int("stuck", 0, "goroutines a tick that wait forever")
	garbage := flag.Int("garbage", 2<<20, "bytes of garbage each tick (requests handled)")
	tick := flag.Duration("tick", 50*time.Millisecond, "")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("pprof on http://%s/debug/pprof/heap\n", ln.Addr())
	go http.Serve(ln, nil)
	arena := &SlabArena{}
	c := &cache{max: *size, entries: map[int][]byte{}}
	for n := 1; ; n++ {
		if *leak > 0 {
			arena.Alloc(*leak)
		}
		c.put()
		handle(*garbage)
		for i := 0; i < *stuckPerTick; i++ {
			go stuck(make(chan []byte), make([]byte, 16<<10))
		}
		if *release && n%20 == 0 {
			arena.Release()
		}
		time.Sleep(*tick)
	}
}
