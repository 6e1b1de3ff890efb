//go:build linux && !android

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"unsafe"

	"llmlab/core/tensor"
)

// pool keeps freed device buffers by size class for reuse.
type pool struct {
	free  map[uintptr][]devptr
	bytes uintptr // allocated through the pool, in use or free
}

// sizeClass rounds n up to 256 bytes or to a quarter step of its power of
// two (at most 25% slack), so buffers of nearby sizes are shared.
func sizeClass(n uintptr) uintptr {
	if n <= 256 {
		return 256
	}
	p := uintptr(1) << (bits.Len64(uint64(n-1)) - 1) // largest power of two < n
	step := p / 4
	return (n + step - 1) / step * step
}

// drain frees every pooled buffer.
func (p *pool) drain(d *driverAPI) {
	for s, l := range p.free {
		for _, b := range l {
			d.cuMemFree(b)
			p.bytes -= s
		}
	}
	clear(p.free)
}

// alloc returns a device buffer of at least n bytes of class sizeClass(n).
// When the device is out of memory it frees the pooled buffers and the
// weight cache, then tries once more.
func (b *Backend) alloc(n uintptr) (devptr, uintptr, error) {
	s := sizeClass(n)
	if l := b.pool.free[s]; len(l) > 0 {
		p := l[len(l)-1]
		b.pool.free[s] = l[:len(l)-1]
		return p, s, nil
	}
	var p devptr
	r := b.drv.cuMemAlloc(&p, s)
	if r == cuErrOutOfMemory {
		b.drv.cuStreamSynchronize(b.stream)
		b.pool.drain(&b.drv)
		b.dropWeights()
		r = b.drv.cuMemAlloc(&p, s)
	}
	if r != cuSuccess {
		return 0, 0, fmt.Errorf("cuMemAlloc(%d bytes): %s", s, b.errName(r))
	}
	b.pool.bytes += s
	return p, s, nil
}

// put returns a buffer of class s to the pool.
func (b *Backend) put(p devptr, s uintptr) { b.pool.free[s] = append(b.pool.free[s], p) }

// weightKey identifies a storage-only weight by its data.
type weightKey struct {
	ptr  uintptr
	n    int
	dt   tensor.DType
	bf16 bool // the bfloat16 copy (SetBF16) rather than the float32 one
}

// weightEntry is the float32 device copy of a storage-only weight. keep
// holds the host data so its address is not reused while the entry lives.
type weightEntry struct {
	dev  devptr
	size uintptr
	keep any
}

func (b *Backend) dropWeights() {
	for k, e := range b.weights {
		b.drv.cuMemFree(e.dev)
		delete(b.weights, k)
	}
}

// mapping is one host array's device buffer within an op.
type mapping struct {
	host     unsafe.Pointer
	bytes    uintptr
	dev      devptr
	uploaded bool
	download bool
}

// errDeclined stops an op whose arguments the device path does not take
// (shapes beyond the kernels' limits, overlapping views): it runs on the
// CPU instead, and the device stays in use.
var errDeclined = errors.New("declined")

// op is the state of one Backend call: the device buffers it took, which
// host arrays they mirror, and the first error. Helpers do nothing once
// err is set, so an op's code reads straight through; finish then reports.
type op struct {
	b   *Backend
	err error
	// managedOut: an output lives in managed memory, where kernels write
	// it directly (so a failed op cannot be redone on the CPU safely once
	// a kernel has run); launched counts the kernels started.
	managedOut bool
	launched   int
	maps       []mapping
	bufs       []devptr
	sizes      []uintptr
}

func (o *op) reset(b *Backend) {
	o.release()
	o.b, o.err = b, nil
	o.maps = o.maps[:0]
	o.managedOut, o.launched = false, 0
}

// release returns the op's buffers to the pool.
func (o *op) release() {
	for i, p := range o.bufs {
		o.b.put(p, o.sizes[i])
	}
	o.bufs, o.sizes = o.bufs[:0], o.sizes[:0]
}

func (o *op) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

// tmp returns a scratch device buffer of n bytes.
func (o *op) tmp(n uintptr) devptr {
	if o.err != nil {
		return 0
	}
	p, s, err := o.b.alloc(n)
	if err != nil {
		o.fail(err)
		return 0
	}
	o.bufs = append(o.bufs, p)
	o.sizes = append(o.sizes, s)
	return p
}

// find returns the op's mapping of host, adding one (with a fresh buffer)
// when there is none. Arrays are matched by address and length, so a
// tensor passed twice (dst == x) gets one buffer.
func (o *op) find(host unsafe.Pointer, bytes uintptr) *mapping {
	for i := range o.maps {
		m := &o.maps[i]
		if m.host == host {
			if m.bytes != bytes {
				// Two views of one array with different lengths: the
				// copies back could clobber each other, so the CPU does it.
				o.fail(errDeclined)
				return m
			}
			return m
		}
	}
	p := o.tmp(bytes)
	o.maps = append(o.maps, mapping{host: host, bytes: bytes, dev: p})
	return &o.maps[len(o.maps)-1]
}

// upload returns the device copy of a host array, copied up once per op;
// managed memory is used in place.
func (o *op) upload(host unsafe.Pointer, bytes uintptr) devptr {
	if o.err != nil || bytes == 0 {
		return 0
	}
	if p, ok := o.b.managedPtr(host, bytes); ok {
		o.b.stats.InPlace++
		return p
	}
	m := o.find(host, bytes)
	if o.err != nil {
		return 0
	}
	if !m.uploaded {
		if r := o.b.drv.cuMemcpyHtoDAsync(m.dev, host, bytes, o.b.stream); r != cuSuccess {
			o.fail(fmt.Errorf("cuMemcpyHtoD (%d bytes): %s", bytes, o.b.errName(r)))
			return 0
		}
		m.uploaded = true
		o.b.stats.Copied++
		o.b.stats.CopiedBytes += int64(bytes)
	}
	return m.dev
}

// result returns a device buffer whose contents are copied back to host
// at the end of the op (after any upload of the same array).
func (o *op) result(host unsafe.Pointer, bytes uintptr) devptr {
	if o.err != nil || bytes == 0 {
		return 0
	}
	if p, ok := o.b.managedPtr(host, bytes); ok {
		o.managedOut = true
		return p
	}
	m := o.find(host, bytes)
	if o.err != nil {
		return 0
	}
	m.download = true
	return m.dev
}

// f32 is the device copy of an F32 tensor (or nil: 0). in() also takes
// storage-only weights.
func (o *op) f32(t *tensor.Tensor) devptr {
	if t == nil {
		return 0
	}
	if t.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda: %v tensor %v where float32 is required", t.DType, t.Shape))
	}
	return o.upload(ptrOf(t.F32), uintptr(4*len(t.F32)))
}

// in is the device float32 view of an input: F32 tensors are uploaded,
// storage-only weights come from the weight cache. nil gives 0.
func (o *op) in(t *tensor.Tensor) devptr {
	if t == nil {
		return 0
	}
	if t.DType == tensor.F32 {
		return o.f32(t)
	}
	return o.weight(t)
}

// out is an output overwritten by the op.
func (o *op) out(t *tensor.Tensor) devptr {
	if t == nil {
		return 0
	}
	if t.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda: output %v tensor %v must be float32", t.DType, t.Shape))
	}
	return o.result(ptrOf(t.F32), uintptr(4*len(t.F32)))
}

// inout is an output the op adds into (or updates): uploaded, then copied
// back. nil gives 0.
func (o *op) inout(t *tensor.Tensor) devptr {
	if t == nil {
		return 0
	}
	p := o.f32(t)
	o.out(t)
	return p
}

// ints uploads an int32 array.
func (o *op) ints(s []int32) devptr {
	return o.upload(ptrOf(s), uintptr(4*len(s)))
}

// finish waits for the op's work, copies its results back and returns its
// buffers. A failure before the first copy back leaves every host output
// untouched (so the caller can redo the op on the CPU); a failure during
// the copies cannot be undone and panics.
func (o *op) finish() error {
	b := o.b
	defer o.release()
	if o.err != nil {
		b.drv.cuStreamSynchronize(b.stream)
		return o.err
	}
	if r := b.drv.cuStreamSynchronize(b.stream); r != cuSuccess {
		return fmt.Errorf("kernel failed: %s", b.errName(r))
	}
	for _, m := range o.maps {
		if !m.download {
			continue
		}
		if r := b.drv.cuMemcpyDtoHAsync(m.host, m.dev, m.bytes, b.stream); r != cuSuccess {
			panic(fmt.Sprintf("cuda: copying a result back failed: %s", b.errName(r)))
		}
		b.stats.Copied++
		b.stats.CopiedBytes += int64(m.bytes)
	}
	if r := b.drv.cuStreamSynchronize(b.stream); r != cuSuccess {
		panic(fmt.Sprintf("cuda: copying results back failed: %s", b.errName(r)))
	}
	return nil
}

// weight returns the cached float32 device copy of a storage-only weight,
// making it on first use: the raw storage is uploaded to scratch buffers
// and widened (F16, BF16) or dequantised (Q8, NF4) by a kernel.
func (o *op) weight(t *tensor.Tensor) devptr {
	if o.err != nil {
		return 0
	}
	b := o.b
	n := t.Numel()
	var key weightKey
	var keep any
	switch t.DType {
	case tensor.F16, tensor.BF16:
		if len(t.Half) != n {
			panic(fmt.Sprintf("cuda: %v tensor %v has %d values", t.DType, t.Shape, len(t.Half)))
		}
		key, keep = weightKey{uintptr(ptrOf(t.Half)), n, t.DType, false}, t.Half
	case tensor.Q8, tensor.NF4:
		key, keep = weightKey{uintptr(ptrOf(t.Q)), n, t.DType, false}, t.Q
	default:
		panic(fmt.Sprintf("cuda: unknown dtype %v", t.DType))
	}
	if n == 0 {
		return 0
	}
	if e, ok := b.weights[key]; ok {
		return e.dev
	}
	dst, size, err := b.alloc(uintptr(4 * n))
	if err != nil {
		o.fail(err)
		return 0
	}
	n64 := int64(n)
	switch t.DType {
	case tensor.F16:
		o.launch1(b.k.widenF16, n, dst, o.upload(ptrOf(t.Half), uintptr(2*n)), n64)
	case tensor.BF16:
		o.launch1(b.k.widenBF16, n, dst, o.upload(ptrOf(t.Half), uintptr(2*n)), n64)
	case tensor.Q8:
		if len(t.Q) != n || len(t.Scale) != t.Rows() {
			panic(fmt.Sprintf("cuda: Q8 tensor %v has %d codes and %d scales", t.Shape, len(t.Q), len(t.Scale)))
		}
		o.launch1(b.k.dequantQ8, n, dst, o.upload(ptrOf(t.Q), uintptr(n)), o.upload(ptrOf(t.Scale), uintptr(4*len(t.Scale))), n64, int32(t.Cols()))
	case tensor.NF4:
		if len(t.Q) != (n+1)/2 || len(t.Scale) != (n+tensor.NF4Block-1)/tensor.NF4Block {
			panic(fmt.Sprintf("cuda: NF4 tensor %v has %d bytes and %d scales", t.Shape, len(t.Q), len(t.Scale)))
		}
		o.launch1(b.k.dequantNF4, n, dst, o.upload(ptrOf(t.Q), uintptr(len(t.Q))), o.upload(ptrOf(t.Scale), uintptr(4*len(t.Scale))), n64)
	}
	if o.err != nil {
		b.put(dst, size)
		return 0
	}
	// The entry owns dst from here (dropWeights frees it). The scratch
	// uploads stay mapped until the op ends, which is after the kernel.
	b.weights[key] = &weightEntry{dev: dst, size: size, keep: keep}
	return dst
}

// bf16 returns a bfloat16 device copy of t for a tensor-core product:
// converted for this op from float32 data, or, for a storage-only weight,
// made once and cached (BF16 storage is uploaded as it is).
func (o *op) bf16(t *tensor.Tensor) devptr {
	if o.err != nil {
		return 0
	}
	b := o.b
	n := t.Numel()
	if n == 0 {
		return 0
	}
	if t.DType == tensor.F32 {
		dst := o.tmp(uintptr(2 * n))
		o.launch1(b.k.toBF16, n, dst, o.f32(t), int64(n))
		return dst
	}
	var key weightKey
	var keep any
	if t.DType == tensor.F16 || t.DType == tensor.BF16 {
		key, keep = weightKey{uintptr(ptrOf(t.Half)), n, t.DType, true}, t.Half
	} else {
		key, keep = weightKey{uintptr(ptrOf(t.Q)), n, t.DType, true}, t.Q
	}
	if e, ok := b.weights[key]; ok {
		return e.dev
	}
	dst, size, err := b.alloc(uintptr(2 * n))
	if err != nil {
		o.fail(err)
		return 0
	}
	if t.DType == tensor.BF16 {
		if r := b.drv.cuMemcpyHtoDAsync(dst, ptrOf(t.Half), uintptr(2*n), b.stream); r != cuSuccess {
			o.fail(fmt.Errorf("cuMemcpyHtoD (%d bytes): %s", 2*n, b.errName(r)))
		}
	} else {
		o.launch1(b.k.toBF16, n, dst, o.weight(t), int64(n))
	}
	if o.err != nil {
		b.put(dst, size)
		return 0
	}
	b.weights[key] = &weightEntry{dev: dst, size: size, keep: keep}
	return dst
}

// grid returns the block count of a grid-stride launch over n items
// with 256 threads a block.
func grid(n int) uint32 {
	g := (n + 255) / 256
	return uint32(min(max(g, 1), 1<<16))
}

// launch1 launches an elementwise kernel over n items (nothing when n is 0).
func (o *op) launch1(fn uintptr, n int, args ...any) {
	if n == 0 {
		return
	}
	o.launch(fn, [3]uint32{grid(n), 1, 1}, 256, 0, args...)
}

// launch starts fn on the op's stream. Each argument is a devptr (a
// pointer parameter), int32 (int), int64 (long long) or float32 (float):
// the Go types must match the kernel's parameters, since cuLaunchKernel
// copies as many bytes from each address as the parameter's size.
func (o *op) launch(fn uintptr, g [3]uint32, block uint32, shmem int, args ...any) {
	if o.err != nil {
		return
	}
	b := o.b
	if b.checkArgs != nil {
		if err := b.checkArgs(fn, args); err != nil {
			panic(err)
		}
	}
	if len(args) > len(b.argVals) {
		panic(fmt.Sprintf("cuda: %d kernel arguments (at most %d)", len(args), len(b.argVals)))
	}
	for i, a := range args {
		switch v := a.(type) {
		case devptr:
			b.argVals[i] = uint64(v)
		case int32:
			b.argVals[i] = uint64(uint32(v))
		case int64:
			b.argVals[i] = uint64(v)
		case float32:
			b.argVals[i] = uint64(math.Float32bits(v))
		default:
			panic(fmt.Sprintf("cuda: kernel argument %d has type %T (want devptr, int32, int64 or float32)", i, a))
		}
		b.argPtrs[i] = uintptr(unsafe.Pointer(&b.argVals[i]))
	}
	if shmem > 48<<10 {
		if shmem > b.maxShm {
			o.fail(fmt.Errorf("kernel needs %d bytes of shared memory, the device allows %d", shmem, b.maxShm))
			return
		}
		if b.shmSet[fn] < shmem {
			if r := b.drv.cuFuncSetAttribute(fn, funcMaxDynamicShared, int32(shmem)); r != cuSuccess {
				o.fail(fmt.Errorf("cuFuncSetAttribute(max dynamic shared memory %d): %s", shmem, b.errName(r)))
				return
			}
			b.shmSet[fn] = shmem
		}
	}
	var params *uintptr
	if len(args) > 0 {
		params = &b.argPtrs[0]
	}
	if r := b.drv.cuLaunchKernel(fn, g[0], g[1], g[2], block, 1, 1, uint32(shmem), b.stream, params, nil); r != cuSuccess {
		o.fail(fmt.Errorf("cuLaunchKernel: %s", b.errName(r)))
		return
	}
	o.launched++
}

// run does one op under the lock with the context current on this thread,
// and reports whether it ran on the device. false means the caller must
// compute the op on the CPU: the device failed (the error is kept and the
// device is not used again) or the op declined the shapes.
func (b *Backend) run(f func(o *op)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil || b.closed {
		return false
	}
	runtime.LockOSThread() // the context is current per OS thread
	defer runtime.UnlockOSThread()
	o := &b.op
	o.reset(b)
	if r := b.drv.cuCtxSetCurrent(b.ctx); r != cuSuccess {
		b.err = fmt.Errorf("cuda: cuCtxSetCurrent: %s", b.errName(r))
		return false
	}
	f(o)
	if err := o.finish(); err != nil {
		if o.managedOut && o.launched > 0 {
			// Kernels may have written part of an output in place: the
			// CPU cannot redo the op from its inputs.
			panic(fmt.Sprintf("cuda: the device failed during an op whose outputs are in managed memory: %v", err))
		}
		if errors.Is(err, errDeclined) {
			return false
		}
		b.err = fmt.Errorf("cuda: %w (this op and all later ones run on the CPU)", err)
		return false
	}
	return true
}

// AllocF32 returns n floats of managed memory, zeroed: the host reads and
// writes it as an ordinary slice and kernels use it in place, the driver
// moving pages to whichever side touches them. The autograd arena, the
// parameter gradients, the optimizer state and the trainable weights live
// there when the backend is a tensor.Allocator, so a training step moves
// no activations over the bus. nil when the device has no managed memory
// or the allocation fails.
func (b *Backend) AllocF32(n int) []float32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.managed || b.closed || b.err != nil || n <= 0 {
		return nil
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if b.drv.cuCtxSetCurrent(b.ctx) != cuSuccess {
		return nil
	}
	var p unsafe.Pointer
	if b.drv.cuMemAllocManaged(&p, uintptr(4*n), 1 /* CU_MEM_ATTACH_GLOBAL */) != cuSuccess || p == nil {
		return nil
	}
	x := unsafe.Slice((*float32)(p), n)
	clear(x)
	b.regions.Add(uintptr(p), uintptr(4*n), struct{}{})
	return x
}

// FreeF32 frees memory from AllocF32.
func (b *Backend) FreeF32(x []float32) {
	if len(x) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := uintptr(unsafe.Pointer(&x[0]))
	if _, ok := b.regions.Remove(p); !ok {
		panic("cuda: FreeF32 of memory it did not allocate")
	}
	if b.closed {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	b.drv.cuStreamSynchronize(b.stream)
	b.drv.cuMemFree(devptr(p))
}

// managedPtr returns the device address of host memory that lies in an
// AllocF32 region (the same address), or false.
func (b *Backend) managedPtr(host unsafe.Pointer, bytes uintptr) (devptr, bool) {
	if _, _, ok := b.regions.Find(uintptr(host), bytes); !ok {
		return 0, false
	}
	return devptr(uintptr(host)), true
}
