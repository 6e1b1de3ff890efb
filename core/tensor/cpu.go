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

	once  sync.Once
	tasks chan task // served by Threads-1 long-lived workers

	act lastAct // the last activation row quantized for GGML weights (gemv.go)
}

// task is one chunk of a parallel loop, or a helper of a GEMM step
// (step set), sent by value (no allocation).
type task struct {
	fn     func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup

	step   *gemmStep
	stepFn func(st *gemmStep, s *gemmScratch, task int)
	gen    uint64 // the step's call this helper was sent for
}

func (c *CPU) start() {
	c.tasks = make(chan task, 64)
	for range c.threads() - 1 {
		go func() {
			for t := range c.tasks {
				if t.step != nil {
					t.step.help(t.stepFn, t.gen)
					continue
				}
				t.fn(t.lo, t.hi)
				t.wg.Done()
			}
		}()
	}
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
	c.once.Do(c.start)
	var wg sync.WaitGroup
	chunk := (n + t - 1) / t
	// The caller runs the first chunk itself; workers take the rest.
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		c.tasks <- task{fn: fn, lo: lo, hi: min(lo+chunk, n), wg: &wg}
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
