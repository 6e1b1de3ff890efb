package tensor

import (
	"runtime"
	"sync"
)

// CPU is the always-available backend. Threads bounds the goroutines a
// kernel uses; work is cut into pieces whose boundaries do not depend on
// Threads, so results are bit-identical for any thread count.
type CPU struct {
	Threads int
}

var _ Backend = (*CPU)(nil)

// NewCPU returns a CPU backend using n threads (n <= 0: all cores).
func NewCPU(n int) *CPU {
	if n <= 0 {
		n = runtime.NumCPU()
	}
	return &CPU{Threads: n}
}

func (c *CPU) Name() string { return "cpu" }

func (c *CPU) threads() int {
	if c == nil || c.Threads <= 0 {
		return runtime.NumCPU()
	}
	return c.Threads
}

// parallel runs fn over [0, n) cut into chunks of at least grain items,
// on up to Threads goroutines. fn must only write to data owned by its
// range, so the split never changes a result.
func (c *CPU) parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	t := c.threads()
	if t > (n+grain-1)/grain {
		t = (n + grain - 1) / grain
	}
	if t <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + t - 1) / t
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}
