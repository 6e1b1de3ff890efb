//go:build linux && !android

package cuda

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// ProfileEntry is the device time one kernel (or one kind of cuBLAS
// product) took since profiling started or was last read.
type ProfileEntry struct {
	Name  string
	Calls int
	Time  time.Duration
}

// profile times each launch and product: the stream is drained before and
// after it and the wall time between counts for its name. That serialises
// host and device, so a profiled step is slower than a plain one; the
// split between kernels is what it is for.
type profile struct {
	names map[uintptr]string
	acc   map[string]*ProfileEntry
}

// SetProfile turns the per-kernel profile on or off (off drops it).
func (b *Backend) SetProfile(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !on {
		b.prof = nil
		return
	}
	p := &profile{names: map[uintptr]string{}, acc: map[string]*ProfileEntry{}}
	for name, fn := range b.k.names() {
		p.names[*fn] = name
	}
	b.prof = p
}

// Profile returns the entries gathered since the last call, longest
// first, and starts a new gathering.
func (b *Backend) Profile() []ProfileEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.prof == nil {
		return nil
	}
	var out []ProfileEntry
	for _, e := range b.prof.acc {
		out = append(out, *e)
	}
	clear(b.prof.acc)
	slices.SortFunc(out, func(x, y ProfileEntry) int { return cmp.Compare(y.Time, x.Time) })
	return out
}

// timed runs f (which queues device work) and, when profiling, charges
// its device time to name. Called with b.mu held, the context current.
func (b *Backend) timed(name string, f func()) {
	if b.prof == nil {
		f()
		return
	}
	b.drv.cuStreamSynchronize(b.stream)
	t := time.Now()
	f()
	b.drv.cuStreamSynchronize(b.stream)
	d := time.Since(t)
	e := b.prof.acc[name]
	if e == nil {
		e = &ProfileEntry{Name: name}
		b.prof.acc[name] = e
	}
	e.Calls++
	e.Time += d
}

// kernelName is a launched function's name for the profile.
func (b *Backend) kernelName(fn uintptr) string {
	if n, ok := b.prof.names[fn]; ok {
		return n
	}
	return fmt.Sprintf("kernel %#x", fn)
}
