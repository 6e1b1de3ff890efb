package tensor

import (
	"fmt"
	"math"
	"slices"
)

// Device is where a tensor's storage lives when it is not on the host:
// memory owned by a backend (Mem) at the address Ptr of its first element,
// in Mem's address space. The zero Device means host storage.
//
// A device tensor holds its elements in the DType's own layout: 4 bytes a
// value for F32, 2 for F16 and BF16; quantized types keep their raw block
// bytes (the host's Q) followed by their scales. Only F32 device storage is
// made by the engine today; frozen weights of other types stay on the
// host, where a device backend caches its own copy of them.
type Device struct {
	Mem Memory
	Ptr uintptr
}

// Memory is the optional part of a Backend with memory of its own that the
// host cannot address (a discrete GPU). A backend that implements it gets
// tensors whose storage is its memory: the autograd arena takes its slab
// from Alloc, parameters move there on their first use by a tape, and the
// optimizer's moments are made there, so a step runs without copies. Data
// crosses only through Copy (loading weights, reading a loss or a token
// id, checkpoints). Backends whose memory the host can map implement
// Allocator instead (or nothing: the CPU backend).
//
// Work a Memory queues (copies into device memory, fills, kernels) runs in
// order; Copy to the host waits for everything queued before it.
type Memory interface {
	// Alloc returns bytes of device memory, contents unspecified.
	Alloc(bytes int) (uintptr, error)
	// Free returns memory from Alloc, after the work that uses it.
	Free(ptr uintptr)
	// Copy copies src into dst (same DType and number of elements). Each
	// is on the host or in this memory; at least one is in this memory.
	Copy(dst, src *Tensor)
	// Fill sets every 32-bit word of t (in this memory) to bits.
	Fill(t *Tensor, bits uint32)
	// CopyCols copies columns: with dst viewed as (N, dC) and src as
	// (N, sC), both F32 in this memory, dst[:, dOff:dOff+w] = src[:, sOff:sOff+w].
	CopyCols(dst *Tensor, dOff int, src *Tensor, sOff, w int)
}

// MemoryOf returns b's own memory when tensors should live there: b
// implements Memory and, if it also has a Resident method, that reports
// true. A device backend can so be run with host tensors only (every op
// copying in and out), for code that still reads .F32 on its hot path.
// nil otherwise.
func MemoryOf(b Backend) Memory {
	m, ok := b.(Memory)
	if !ok {
		return nil
	}
	if r, ok := b.(interface{ Resident() bool }); ok && !r.Resident() {
		return nil
	}
	return m
}

// OnDevice reports whether t's storage is a backend's device memory.
func (t *Tensor) OnDevice() bool { return t.Dev.Mem != nil }

// NewOn returns an F32 tensor of the given shape in m's memory, zeroed.
func NewOn(m Memory, shape ...int) (*Tensor, error) {
	s := Shape(append([]int(nil), shape...))
	p, err := m.Alloc(4 * s.Numel())
	if err != nil {
		return nil, fmt.Errorf("tensor %v: %w", s, err)
	}
	t := &Tensor{Shape: s, DType: F32, Dev: Device{Mem: m, Ptr: p}}
	m.Fill(t, 0)
	return t, nil
}

// ToDevice moves t's storage into m: the host data is copied up and
// dropped, and t (the same header) is on the device from then on. Only F32
// tensors move; others, and tensors already on a device, are left alone
// (false). Headers made earlier by Reshape keep the host storage.
func ToDevice(m Memory, t *Tensor) (bool, error) {
	if t.OnDevice() || t.DType != F32 || len(t.F32) == 0 {
		return false, nil
	}
	p, err := m.Alloc(4 * len(t.F32))
	if err != nil {
		return false, fmt.Errorf("tensor %v: %w", t.Shape, err)
	}
	d := &Tensor{Shape: t.Shape, DType: F32, Dev: Device{Mem: m, Ptr: p}}
	m.Copy(d, t)
	t.F32, t.Dev = nil, d.Dev
	return true, nil
}

// ToHost moves a device tensor's storage back to the host and frees the
// device memory (a no-op for host tensors).
func ToHost(t *Tensor) {
	if !t.OnDevice() {
		return
	}
	h := t.Host()
	m := t.Dev.Mem
	m.Free(t.Dev.Ptr)
	t.F32, t.Half, t.Q, t.Scale, t.Dev = h.F32, h.Half, h.Q, h.Scale, Device{}
}

// Free releases a device tensor's memory (from NewOn or ToDevice); t must
// not be used afterwards. Host tensors are left to the collector.
func Free(t *Tensor) {
	if t.OnDevice() {
		t.Dev.Mem.Free(t.Dev.Ptr)
		t.Dev = Device{}
	}
}

// Host returns t's data on the host: t itself when it is there, else a
// new host tensor with a copy (which waits for the device's queued work).
func (t *Tensor) Host() *Tensor {
	if !t.OnDevice() {
		return t
	}
	if t.DType != F32 {
		panic(fmt.Sprintf("tensor: %v device storage is not supported", t.DType))
	}
	h := New(t.Shape...)
	t.Dev.Mem.Copy(h, t)
	return h
}

// Copy copies src into dst (same DType and number of elements), wherever
// each lives: on the host, or in a Memory (then through it).
func Copy(dst, src *Tensor) {
	if dst.DType != src.DType || dst.Numel() != src.Numel() {
		panic(fmt.Sprintf("tensor.Copy: %v %v to %v %v", src.DType, src.Shape, dst.DType, dst.Shape))
	}
	switch {
	case dst.OnDevice():
		if src.OnDevice() && src.Dev.Mem != dst.Dev.Mem {
			src = src.Host()
		}
		dst.Dev.Mem.Copy(dst, src)
	case src.OnDevice():
		src.Dev.Mem.Copy(dst, src)
	default:
		copy(dst.F32, src.F32)
		copy(dst.Half, src.Half)
		copy(dst.Q, src.Q)
		copy(dst.Scale, src.Scale)
	}
}

// Fill sets every element of an F32 tensor to v, on the host or on the
// device.
func Fill(t *Tensor, v float32) {
	if t.DType != F32 {
		panic(fmt.Sprintf("tensor.Fill: %v tensor", t.DType))
	}
	if t.OnDevice() {
		t.Dev.Mem.Fill(t, math.Float32bits(v))
		return
	}
	for i := range t.F32 {
		t.F32[i] = v
	}
}

// CopyCols copies a block of columns: with dst viewed as (N, dC) and src
// as (N, sC), both F32, dst[:, dOff:dOff+w] = src[:, sOff:sOff+w]. Both
// live on the host, or both in one Memory.
func CopyCols(dst *Tensor, dOff int, src *Tensor, sOff, w int) {
	N, dC, sC := dst.Rows(), dst.Cols(), src.Cols()
	if src.Rows() != N || dOff < 0 || sOff < 0 || dOff+w > dC || sOff+w > sC || dst.DType != F32 || src.DType != F32 {
		panic(fmt.Sprintf("tensor.CopyCols: %d columns from %d of %v to %d of %v", w, sOff, src.Shape, dOff, dst.Shape))
	}
	if dst.OnDevice() || src.OnDevice() {
		if dst.Dev.Mem != src.Dev.Mem {
			panic(fmt.Sprintf("tensor.CopyCols: %v and %v are in different memories", src.Shape, dst.Shape))
		}
		dst.Dev.Mem.CopyCols(dst, dOff, src, sOff, w)
		return
	}
	for r := 0; r < N; r++ {
		copy(dst.F32[r*dC+dOff:r*dC+dOff+w], src.F32[r*sC+sOff:r*sC+sOff+w])
	}
}

// Offset returns a header for the n elements of an F32 tensor t from flat
// element off on, with the given shape, sharing t's storage.
func (t *Tensor) Offset(off int, shape ...int) *Tensor {
	s := Shape(append([]int(nil), shape...))
	n := s.Numel()
	if t.DType != F32 || off < 0 || off+n > t.Numel() {
		panic(fmt.Sprintf("tensor.Offset: %v at %d of %v %v", s, off, t.DType, t.Shape))
	}
	if t.OnDevice() {
		return &Tensor{Shape: s, DType: F32, Dev: Device{Mem: t.Dev.Mem, Ptr: t.Dev.Ptr + uintptr(4*off)}}
	}
	return &Tensor{Shape: s, DType: F32, F32: t.F32[off : off+n : off+n]}
}

// OnHostArgs is OnHost for an op's argument list, as a device backend's
// CPU fallback has it: the device tensors among args (tensors, slices of
// tensors, and an AttentionOpts' prefixes and their gradients; anything
// else is ignored) get host storage for f.
func OnHostArgs(f func(), args ...any) {
	var ts []*Tensor
	add := func(t *Tensor) {
		if t != nil && t.OnDevice() && !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	for _, a := range args {
		switch v := a.(type) {
		case *Tensor:
			add(v)
		case []*Tensor:
			for _, t := range v {
				add(t)
			}
		case *AttentionOpts:
			add(v.PrefixK)
			add(v.PrefixV)
			add(v.DPrefixK)
			add(v.DPrefixV)
		}
	}
	OnHost(f, ts...)
}

// OnHost runs f with the data of every tensor in ts on the host: each
// device tensor gets a host copy as its storage for the call (F32 set, Dev
// cleared), and afterwards the copies f changed go back to the device and
// every tensor gets its device storage back. Host tensors and nil are
// passed through; a tensor listed twice is staged once (two headers over
// the same device memory are not: list one). It is the slow path for code
// written for host slices (custom autograd ops, a backend's CPU fallback):
// correct on any backend, at the price of copies and waits.
func OnHost(f func(), ts ...*Tensor) {
	type staged struct {
		t    *Tensor
		dev  Device
		orig []float32
	}
	var st []staged
outer:
	for _, t := range ts {
		if t == nil || !t.OnDevice() {
			continue
		}
		for _, s := range st {
			if s.t == t {
				continue outer
			}
		}
		h := t.Host()
		st = append(st, staged{t, t.Dev, append([]float32(nil), h.F32...)})
		t.F32, t.Dev = h.F32, Device{}
	}
	defer func() {
		for _, s := range st {
			h := s.t.F32
			s.t.F32, s.t.Dev = nil, s.dev
			for i, v := range h {
				if math.Float32bits(v) != math.Float32bits(s.orig[i]) {
					s.dev.Mem.Copy(s.t, FromF32(h, s.t.Shape...))
					break
				}
			}
		}
	}()
	f()
}
