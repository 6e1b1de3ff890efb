// Package devicetest is a stand-in device backend for tests of the code
// above core/tensor: a tensor.Backend that is also a tensor.Memory, whose
// "device memory" is host memory the rest of the engine must not touch.
// Device tensors have nil slices and a fake address (far from any Go
// pointer), so code that reads .F32 of one on its hot path fails at once,
// and every op must go through the backend. Ops run on the CPU backend on
// views of that memory, so results are bit-identical to the CPU's; Stats
// counts what would cross the bus on a real device: copies each way, and
// host tensors handed to ops (each would be copied in for the op).
//
// The autograd tape, the optimizer and generation use it as they use the
// CUDA backend: tests train and decode with it and check both the numbers
// (against the CPU backend) and the traffic (only the loss, or the token
// ids, come back).
package devicetest

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"llmlab/core/tensor"
)

// base is the first fake address: above any user-space pointer on the
// platforms Go runs on, so a fake address never aliases real memory.
const base = uintptr(1) << 62

// Backend runs ops on the CPU backend over its own memory.
type Backend struct {
	Staged // the ops: the CPU's, on host views of their arguments (stage)
	cpu    *tensor.CPU

	mu    sync.Mutex
	next  uintptr
	bufs  []buffer // by address
	stats Stats
}

type buffer struct {
	addr uintptr
	data []float32
}

// Stats counts the traffic a real device would see.
type Stats struct {
	Uploads, Downloads         int
	UploadBytes, DownloadBytes int64
	// HostArgs counts float32 tensors on the host given to ops: a device
	// backend copies each in (and, for outputs, back out).
	HostArgs int
	// Live is the number of live allocations.
	Live int
}

var (
	_ tensor.Backend  = (*Backend)(nil)
	_ tensor.Memory   = (*Backend)(nil)
	_ tensor.ArgMaxer = (*Backend)(nil)
)

// New returns a backend computing with threads CPU threads (0: all).
func New(threads int) *Backend {
	b := &Backend{cpu: tensor.NewCPU(threads), next: base}
	b.Staged = Staged{Inner: b.cpu, Stage: b.stage}
	return b
}

// Name says what it is.
func (b *Backend) Name() string { return "devicetest (CPU ops on stand-in device memory)" }

// Stats returns the counts so far.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Alloc returns fake device memory, filled with NaN (as a real device's
// memory holds garbage: code that reads what it did not write shows it).
func (b *Backend) Alloc(bytes int) (uintptr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("devicetest: Alloc(%d)", bytes)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := (bytes + 3) / 4
	data := make([]float32, n)
	for i := range data {
		data[i] = nan
	}
	a := b.next
	b.next += uintptr((4*n + 255) / 256 * 256) // 256-byte aligned, never reused
	if n == 0 {
		b.next += 256
	}
	b.bufs = append(b.bufs, buffer{a, data}) // addresses only grow: still sorted
	b.stats.Live++
	return a, nil
}

var nan = float32(math.NaN())

// Free drops memory from Alloc.
func (b *Backend) Free(ptr uintptr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := sort.Search(len(b.bufs), func(i int) bool { return b.bufs[i].addr >= ptr })
	if i == len(b.bufs) || b.bufs[i].addr != ptr {
		panic(fmt.Sprintf("devicetest: Free of %#x, which Alloc did not return", ptr))
	}
	b.bufs = append(b.bufs[:i], b.bufs[i+1:]...)
	b.stats.Live--
}

// view returns the memory of a device tensor of this backend.
func (b *Backend) view(t *tensor.Tensor) []float32 {
	if t.Dev.Mem != tensor.Memory(b) {
		panic(fmt.Sprintf("devicetest: tensor %v is not in this backend's memory", t.Shape))
	}
	if t.DType != tensor.F32 {
		panic(fmt.Sprintf("devicetest: %v device tensor %v", t.DType, t.Shape))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := t.Dev.Ptr
	i := sort.Search(len(b.bufs), func(i int) bool { return b.bufs[i].addr > p }) - 1
	if i < 0 || (p-b.bufs[i].addr)%4 != 0 {
		panic(fmt.Sprintf("devicetest: tensor %v at %#x is in no allocation", t.Shape, p))
	}
	off, n := int(p-b.bufs[i].addr)/4, t.Numel()
	if off+n > len(b.bufs[i].data) {
		panic(fmt.Sprintf("devicetest: tensor %v at %#x overruns its allocation of %d floats", t.Shape, p, len(b.bufs[i].data)))
	}
	return b.bufs[i].data[off : off+n : off+n]
}

// Copy copies between host and this memory, or within it.
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	if dst.DType != tensor.F32 || src.DType != tensor.F32 || dst.Numel() != src.Numel() {
		panic(fmt.Sprintf("devicetest.Copy: %v %v to %v %v", src.DType, src.Shape, dst.DType, dst.Shape))
	}
	n := int64(4 * dst.Numel())
	switch {
	case dst.OnDevice() && src.OnDevice():
		copy(b.view(dst), b.view(src))
	case dst.OnDevice():
		copy(b.view(dst), src.F32)
		b.count(func(s *Stats) { s.Uploads++; s.UploadBytes += n })
	case src.OnDevice():
		copy(dst.F32, b.view(src))
		b.count(func(s *Stats) { s.Downloads++; s.DownloadBytes += n })
	default:
		copy(dst.F32, src.F32)
	}
}

func (b *Backend) count(f func(*Stats)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.stats)
}

// Fill sets every word of t to bits.
func (b *Backend) Fill(t *tensor.Tensor, bits uint32) {
	v := b.view(t)
	f := float32frombits(bits)
	for i := range v {
		v[i] = f
	}
}

// CopyCols copies a block of columns within this memory.
func (b *Backend) CopyCols(dst *tensor.Tensor, dOff int, src *tensor.Tensor, sOff, w int) {
	defer b.stage(dst, src)()
	tensor.CopyCols(dst, dOff, src, sOff, w)
}

// stage gives every device tensor among args a host view of its memory
// for a CPU op and returns the function that puts them back. Host float32
// tensors are counted: a device would copy each.
func (b *Backend) stage(args ...any) func() {
	type saved struct {
		t   *tensor.Tensor
		dev tensor.Device
	}
	var sv []saved
	one := func(t *tensor.Tensor) {
		if t == nil {
			return
		}
		for _, s := range sv {
			if s.t == t {
				return
			}
		}
		if !t.OnDevice() {
			if t.DType == tensor.F32 && t.Numel() > 0 {
				b.count(func(s *Stats) { s.HostArgs++ })
			}
			return
		}
		v := b.view(t)
		sv = append(sv, saved{t, t.Dev})
		t.F32, t.Dev = v, tensor.Device{}
	}
	for _, a := range args {
		switch x := a.(type) {
		case *tensor.Tensor:
			one(x)
		case []*tensor.Tensor:
			for _, t := range x {
				one(t)
			}
		case *tensor.AttentionOpts:
			one(x.PrefixK)
			one(x.PrefixV)
			one(x.DPrefixK)
			one(x.DPrefixV)
		}
	}
	return func() {
		for _, s := range sv {
			s.t.F32, s.t.Dev = nil, s.dev
		}
	}
}

// SumSquares returns Σx²: a read of the device, counted as a download.
func (b *Backend) SumSquares(x *tensor.Tensor) float64 {
	if x.OnDevice() {
		b.count(func(s *Stats) { s.Downloads++; s.DownloadBytes += 8 })
	}
	defer b.stage(x)()
	return b.cpu.SumSquares(x)
}

// ArgMax picks each row's first largest value; the ids are a download.
func (b *Backend) ArgMax(dst []int32, x *tensor.Tensor) {
	if x.OnDevice() {
		b.count(func(s *Stats) { s.Downloads++; s.DownloadBytes += int64(4 * len(dst)) })
	}
	defer b.stage(x)()
	tensor.ArgMaxRows(dst, x)
}

func float32frombits(u uint32) float32 { return math.Float32frombits(u) }

// ClipNorm clips the global norm of xs without a read (optim.NormClipper),
// as the CPU path of optim.ClipGradNorm computes it.
func (b *Backend) ClipNorm(norm *tensor.Tensor, xs []*tensor.Tensor, maxNorm float32) {
	defer b.stage(norm, xs)()
	var ss float64
	for _, x := range xs {
		ss += b.cpu.SumSquares(x)
	}
	nv := math.Sqrt(ss)
	norm.F32[0] = float32(nv)
	if maxNorm > 0 && nv > float64(maxNorm) {
		s := float32(float64(maxNorm) / (nv + 1e-6))
		for _, x := range xs {
			b.cpu.AddScaled(x, x, s-1)
		}
	}
}
