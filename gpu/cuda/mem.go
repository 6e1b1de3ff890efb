//go:build linux && !android

package cuda

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"runtime"
	"slices"
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
		b.stats.LiveBytes -= int64(e.size)
		delete(b.weights, k)
	}
}

// putWeight adds a weight cache entry; its memory counts as live device
// memory (Stats), like a device tensor's.
func (b *Backend) putWeight(key weightKey, e *weightEntry) {
	b.weights[key] = e
	b.stats.LiveBytes += int64(e.size)
	b.stats.PeakBytes = max(b.stats.PeakBytes, b.stats.LiveBytes)
}

// DropWeights frees the device copies of storage-only weights (BF16, F16
// and quantized host tensors) made so far: for a caller done with a model
// that goes on using the backend. Later ops make them again as needed.
func (b *Backend) DropWeights() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	// Work queued before may still read the copies.
	if r := b.drv.cuStreamSynchronize(b.stream); r != cuSuccess {
		return
	}
	b.dropWeights()
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
	// devOut: an output lives in device memory, where kernels write it
	// directly (so a failed op cannot be redone on the CPU safely once a
	// kernel has run); launched counts the kernels started.
	devOut   bool
	launched int
	maps     []mapping
	bufs     []devptr
	sizes    []uintptr
}

func (o *op) reset(b *Backend) {
	o.release()
	o.b, o.err = b, nil
	o.maps = o.maps[:0]
	o.devOut, o.launched = false, 0
}

// release returns the op's buffers to the pool.
func (o *op) release() {
	for i, p := range o.bufs {
		o.b.put(p, o.sizes[i])
		o.b.stats.LiveBytes -= int64(o.sizes[i])
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
	// An op's scratch counts as live device memory while the op holds
	// it, so peaks include it (dense attention's score buffers, bf16
	// copies of the operands).
	o.b.stats.LiveBytes += int64(s)
	o.b.stats.PeakBytes = max(o.b.stats.PeakBytes, o.b.stats.LiveBytes)
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

// upload returns the device copy of a host array, copied up once per op.
func (o *op) upload(host unsafe.Pointer, bytes uintptr) devptr {
	if o.err != nil || bytes == 0 {
		return 0
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
		o.b.stats.Uploads++
		o.b.stats.UploadBytes += int64(bytes)
	}
	return m.dev
}

// result returns a device buffer whose contents are copied back to host
// at the end of the op (after any upload of the same array).
func (o *op) result(host unsafe.Pointer, bytes uintptr) devptr {
	if o.err != nil || bytes == 0 {
		return 0
	}
	m := o.find(host, bytes)
	if o.err != nil {
		return 0
	}
	m.download = true
	return m.dev
}

// resident returns the address of a device tensor of this backend.
func (o *op) resident(t *tensor.Tensor) devptr {
	if t.Dev.Mem != tensor.Memory(o.b) {
		panic(fmt.Sprintf("cuda: tensor %v lives in another backend's memory", t.Shape))
	}
	return devptr(t.Dev.Ptr)
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
	if t.OnDevice() {
		if o.err != nil {
			return 0
		}
		o.b.stats.Resident++
		return o.resident(t)
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
	if t.OnDevice() {
		if o.err != nil {
			return 0
		}
		o.devOut = true
		return o.resident(t)
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

// ints returns the device copy of an int32 array (token ids, positions,
// targets, segment ids). A step passes the same few arrays to many ops,
// and often arrays of the same contents made afresh (positions, the rows
// that have a target), so copies are cached by contents: a hash finds the
// entry and a comparison with its host copy (cheap next to an op) makes
// sure. A step then uploads each distinct array once.
func (o *op) ints(s []int32) devptr {
	if o.err != nil || len(s) == 0 {
		return 0
	}
	b := o.b
	raw := unsafe.Slice((*byte)(ptrOf(s)), 4*len(s))
	key := intsKey{maphash.Bytes(b.intsSeed, raw), len(s)}
	if e, ok := b.intsCache[key]; ok && slices.Equal(e.host, s) {
		return e.dev
	}
	if len(b.intsCache) >= maxIntsCache {
		b.dropInts()
	}
	dev, size, err := b.alloc(uintptr(4 * len(s)))
	if err != nil {
		o.fail(err)
		return 0
	}
	// The entry's host copy is what the device copy is made from: the
	// caller's array may change as soon as the op returns.
	e := &intsEntry{host: slices.Clone(s), dev: dev, size: size}
	if r := b.drv.cuMemcpyHtoDAsync(dev, ptrOf(e.host), uintptr(4*len(s)), b.stream); r != cuSuccess {
		b.put(dev, size)
		o.fail(fmt.Errorf("cuMemcpyHtoD (%d bytes): %s", 4*len(s), b.errName(r)))
		return 0
	}
	b.stats.Uploads++
	b.stats.UploadBytes += int64(4 * len(s))
	if old, ok := b.intsCache[key]; ok { // a hash collision: the newer stays
		b.put(old.dev, old.size)
	}
	b.intsCache[key] = e
	return dev
}

// maxIntsCache bounds the int array cache; it is emptied when full.
const maxIntsCache = 64

// intsKey and intsEntry: the int array cache (see op.ints).
type intsKey struct {
	hash uint64
	n    int
}

type intsEntry struct {
	host []int32 // the contents the device copy holds
	dev  devptr
	size uintptr
}

// dropInts empties the int array cache. The buffers go back to the pool,
// which is stream-ordered: a kernel queued before still reads them first.
func (b *Backend) dropInts() {
	for k, e := range b.intsCache {
		b.put(e.dev, e.size)
		delete(b.intsCache, k)
	}
}

// constF32 returns the device copy of a float32 array that is immutable by
// contract (a RoPE table), made once and kept with the weights.
func (o *op) constF32(x []float32) devptr {
	if o.err != nil || len(x) == 0 {
		return 0
	}
	b := o.b
	key := weightKey{uintptr(ptrOf(x)), len(x), tensor.F32, false}
	if e, ok := b.weights[key]; ok {
		return e.dev
	}
	dst, size, err := b.alloc(uintptr(4 * len(x)))
	if err != nil {
		o.fail(err)
		return 0
	}
	if r := b.drv.cuMemcpyHtoDAsync(dst, ptrOf(x), uintptr(4*len(x)), b.stream); r != cuSuccess {
		b.put(dst, size)
		o.fail(fmt.Errorf("cuMemcpyHtoD (%d bytes): %s", 4*len(x), b.errName(r)))
		return 0
	}
	b.stats.Uploads++
	b.stats.UploadBytes += int64(4 * len(x))
	b.putWeight(key, &weightEntry{dev: dst, size: size, keep: x})
	return dst
}

// finish ends the op: when it has host outputs, it waits for the stream
// and copies them back; otherwise it returns at once, its kernels queued
// (ops on device tensors never wait). It returns its scratch buffers to
// the pool, which is safe without waiting: every later use of them is
// queued on the same stream. A failure before the first copy back leaves
// every host output untouched (so the caller can redo the op on the CPU);
// a failure during the copies cannot be undone and panics.
func (o *op) finish() error {
	b := o.b
	defer o.release()
	if o.err != nil {
		return o.err
	}
	download := false
	for _, m := range o.maps {
		download = download || m.download
	}
	if !download {
		return nil
	}
	b.stats.Syncs++
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
		b.stats.Downloads++
		b.stats.DownloadBytes += int64(m.bytes)
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
		if _, ok := t.DType.GGML(); !ok {
			panic(fmt.Sprintf("cuda: unknown dtype %v", t.DType))
		}
		key, keep = weightKey{uintptr(ptrOf(t.Q)), n, t.DType, false}, t.Q
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
	default:
		// GGML blocks (Q4_K, Q8_0, ...): no kernel yet; dequantised on the
		// host once and uploaded, then cached like the others.
		host := t.Float32s()
		if r := b.drv.cuMemcpyHtoDAsync(dst, ptrOf(host), uintptr(4*n), b.stream); r != cuSuccess {
			o.fail(fmt.Errorf("cuMemcpyHtoD (%d bytes): %s", 4*n, b.errName(r)))
		}
		b.stats.Uploads++
		b.stats.UploadBytes += int64(4 * n)
	}
	if o.err != nil {
		b.put(dst, size)
		return 0
	}
	// The entry owns dst from here (dropWeights frees it). The scratch
	// uploads stay mapped until the op ends, which is after the kernel.
	b.putWeight(key, &weightEntry{dev: dst, size: size, keep: keep})
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
		b.stats.Uploads++
		b.stats.UploadBytes += int64(2 * n)
	} else {
		o.launch1(b.k.toBF16, n, dst, o.weight(t), int64(n))
	}
	if o.err != nil {
		b.put(dst, size)
		return 0
	}
	b.putWeight(key, &weightEntry{dev: dst, size: size, keep: keep})
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
	var r cuResult
	if b.prof != nil {
		var pr cuResult // declared here: only a profiled launch captures it
		b.timed(b.kernelName(fn), func() {
			pr = b.drv.cuLaunchKernel(fn, g[0], g[1], g[2], block, 1, 1, uint32(shmem), b.stream, params, nil)
		})
		r = pr
	} else {
		r = b.drv.cuLaunchKernel(fn, g[0], g[1], g[2], block, 1, 1, uint32(shmem), b.stream, params, nil)
	}
	if r != cuSuccess {
		o.fail(fmt.Errorf("cuLaunchKernel: %s", b.errName(r)))
		return
	}
	o.launched++
}

// run does one op under the lock with the context current on this thread,
// and reports whether it ran on the device. false means the caller must
// compute the op on the CPU (through b.host): the device failed (the error
// is kept and the device is not used again for ops) or the op declined the
// shapes.
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
		if o.devOut && o.launched > 0 {
			// Kernels may have written part of an output in place: the
			// CPU cannot redo the op from its inputs.
			panic(fmt.Sprintf("cuda: the device failed during an op whose outputs are in device memory: %v", err))
		}
		if errors.Is(err, errDeclined) {
			return false
		}
		b.err = fmt.Errorf("cuda: %w (this op and all later ones run on the CPU)", err)
		return false
	}
	return true
}

// host runs f, a CPU backend op, on the given arguments when some live in
// device memory: each device tensor among args (also inside slices of
// tensors and AttentionOpts) gets host storage holding its data for the
// call, and what f changed goes back to the device after it. This is the
// slow path for shapes the kernels decline and for a failed device; ops
// on host tensors run f directly.
func (b *Backend) host(f func(), args ...any) {
	b.mu.Lock()
	b.stats.CPUOps++
	b.mu.Unlock()
	tensor.OnHostArgs(f, args...)
}

// ---- tensor.Memory ----

// Alloc returns device memory from the caching pool (cuMemAlloc, never
// managed memory: nothing here migrates between host and device).
func (b *Backend) Alloc(bytes int) (uintptr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("cuda: backend closed")
	}
	if b.err != nil {
		return 0, b.err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	p, s, err := b.alloc(uintptr(max(bytes, 1)))
	if err != nil {
		return 0, fmt.Errorf("cuda: %w", err)
	}
	b.live[p] = s
	b.stats.LiveBytes += int64(s)
	b.stats.PeakBytes = max(b.stats.PeakBytes, b.stats.LiveBytes)
	return uintptr(p), nil
}

// Free returns memory from Alloc to the pool (reused by later work on the
// stream, so it need not wait for the work queued now).
func (b *Backend) Free(ptr uintptr) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.live[devptr(ptr)]
	if !ok {
		panic(fmt.Sprintf("cuda: Free of %#x, which Alloc did not return", ptr))
	}
	delete(b.live, devptr(ptr))
	b.stats.LiveBytes -= int64(s)
	if b.closed {
		return
	}
	b.put(devptr(ptr), s)
}

// Copy copies src to dst: host to device, device to host (waiting for the
// stream: this is where the host reads results) or device to device.
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	if dst.DType != src.DType || dst.Numel() != src.Numel() || dst.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda.Copy: %v %v to %v %v", src.DType, src.Shape, dst.DType, dst.Shape))
	}
	n := uintptr(4 * dst.Numel())
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		panic("cuda: Copy on a closed backend")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	var r cuResult
	switch {
	case dst.OnDevice() && src.OnDevice():
		r = b.drv.cuMemcpyDtoDAsync(devptr(dst.Dev.Ptr), devptr(src.Dev.Ptr), n, b.stream)
	case dst.OnDevice():
		if len(src.F32) != dst.Numel() {
			panic(fmt.Sprintf("cuda.Copy: host tensor %v has %d values", src.Shape, len(src.F32)))
		}
		b.stats.Uploads++
		b.stats.UploadBytes += int64(n)
		r = b.drv.cuMemcpyHtoDAsync(devptr(dst.Dev.Ptr), ptrOf(src.F32), n, b.stream)
	case src.OnDevice():
		if len(dst.F32) != src.Numel() {
			panic(fmt.Sprintf("cuda.Copy: host tensor %v has %d values", dst.Shape, len(dst.F32)))
		}
		b.stats.Downloads++
		b.stats.DownloadBytes += int64(n)
		b.stats.Syncs++
		if r = b.drv.cuMemcpyDtoHAsync(ptrOf(dst.F32), devptr(src.Dev.Ptr), n, b.stream); r == cuSuccess {
			r = b.drv.cuStreamSynchronize(b.stream)
		}
	default:
		copy(dst.F32, src.F32)
	}
	if r != cuSuccess {
		panic(fmt.Sprintf("cuda: copying %v: %s", dst.Shape, b.errName(r)))
	}
}

// Fill sets every 32-bit word of t to bits on the device (cuMemsetD32).
func (b *Backend) Fill(t *tensor.Tensor, bits uint32) {
	n := t.Numel()
	if !t.OnDevice() || t.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda.Fill: %v tensor %v is not in device memory", t.DType, t.Shape))
	}
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	if r := b.drv.cuMemsetD32Async(devptr(t.Dev.Ptr), bits, uintptr(n), b.stream); r != cuSuccess {
		panic(fmt.Sprintf("cuda: cuMemsetD32 of %v: %s", t.Shape, b.errName(r)))
	}
	b.stats.Fills++
}

// CopyCols copies a block of columns between device tensors (see
// tensor.Memory).
func (b *Backend) CopyCols(dst *tensor.Tensor, dOff int, src *tensor.Tensor, sOff, w int) {
	N, dC, sC := dst.Rows(), dst.Cols(), src.Cols()
	if N == 0 || w == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch1(b.k.copyCols, N*w, o.out(dst), int32(dC), int32(dOff), o.f32(src), int32(sC), int32(sOff), int32(N), int32(w))
	}) {
		b.host(func() { tensor.CopyCols(dst, dOff, src, sOff, w) }, dst, src)
	}
}
