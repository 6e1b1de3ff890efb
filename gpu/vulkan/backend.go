//go:build linux || freebsd

package vulkan

import (
	"embed"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"unsafe"

	"llmlab/core/tensor"
	"llmlab/gpu/internal/spans"
)

//go:generate sh gen_shaders.sh

//go:embed shaders/*.spv
var shaderFS embed.FS

// Backend runs every tensor.Backend op as Vulkan compute shaders.
//
// It is a tensor.Memory: the autograd arena, the parameters, the
// optimizer's moments and the KV cache live in its buffers (device-local
// memory on a discrete GPU; host-visible device memory on an integrated
// GPU, a GPU with resizable BAR and lavapipe), and ops on them only record
// commands. Every op of a training step goes into one command buffer, with
// a barrier before a command only where it depends on one since the last
// barrier (Device.order); the buffer is submitted, and the host waits on a
// fence, only where the host reads (a loss, a token id, a checkpoint: Copy
// to the host, SumSquares, ArgMax). Data crosses at those edges alone:
// weights once, then the values read.
//
// Products pick their kernel by shape: a register-tiled one (64×64 tiles)
// when M and N are both 32 or more, a subgroup one (subgroupAdd) for up to
// eight rows against a weight stored (N, K) on devices with subgroup
// arithmetic (decoding), else the plain 16×16 one. AdamWAll updates eight
// tensors a dispatch.
//
// Float32 tensors on the host may still be given to any op: they are
// copied in for it, and an op with host outputs submits and waits to copy
// them back (the path of SetResident(false), and of code that keeps host
// tensors). Storage-only weights (F16, BF16, Q8, NF4, GGML blocks) are
// immutable by contract: they are widened to float32 once and stay on the
// device, keyed by the address of their data, as do RoPE tables. Tensors
// larger than the device's storage-buffer limit, and attention with a head
// dimension above 256, run on the embedded CPU backend instead (their
// device arguments copied out and back).
//
// A Backend serves one goroutine at a time, as the engine calls it.
type Backend struct {
	d   *Device
	cpu *tensor.CPU
	// hostOnly: SetResident(false), tensors stay on the host
	hostOnly bool
	// tiledMin: products whose M and N are both at least this use the
	// register-tiled kernel (64×64 tiles); smaller ones, the plain one
	// (16×16), which wastes less of a tile on a few rows (decoding).
	tiledMin int
	// noSubgroups keeps the subgroup kernels off (tests of the fallback).
	noSubgroups bool

	weights   map[residentKey]residentEntry // widened weights and tables, by their data
	intsCache map[intsKey]*intsEntry        // int arrays by contents (see ints)
	intsSeed  maphash.Seed
	dummy     *buffer // bound where an optional input is absent

	// Memory: Alloc'd buffers by the address each got when it was made
	// (a buffer keeps its address through the pool).
	space spans.Set[*buffer]
	next  uintptr

	// per-op state
	temps  []*buffer
	hosts  []hostArg
	fixups []fixup

	stats Stats
}

// Stats counts the traffic between host and device since Open: copies
// each way (an op's host inputs and outputs, int arrays, first uses of
// weights and tables, and tensor.Memory's Copy), command buffers submitted
// (each followed by a wait on its fence), fills, how often an op found a
// float32 argument in device memory, and device memory held by tensors.
type Stats struct {
	Uploads, Downloads         int
	UploadBytes, DownloadBytes int64
	Submits, Fills, Resident   int
	// Commands (dispatches, copies, fills) recorded, and the pipeline
	// barriers between them: a command waits for earlier ones only when
	// it reads what they write or writes what they touch.
	Commands, Barriers int
	// CPUOps counts ops that ran on the CPU backend instead (shapes beyond
	// the kernels' limits).
	CPUOps int
	// LiveBytes is the device memory held by Alloc'd tensors now (size
	// classes, so up to 25% above what was asked), PeakBytes its maximum.
	LiveBytes, PeakBytes int64
}

// Copies is the number of copies either way.
func (s Stats) Copies() int { return s.Uploads + s.Downloads }

// CopiedBytes is the number of bytes copied either way.
func (s Stats) CopiedBytes() int64 { return s.UploadBytes + s.DownloadBytes }

// Stats returns the counts since Open.
func (b *Backend) Stats() Stats {
	s := b.stats
	s.Submits, s.Commands, s.Barriers = b.d.submits, b.d.commands, b.d.barriers
	return s
}

// ResetPeak sets PeakBytes to LiveBytes, to measure the peak of a phase.
func (b *Backend) ResetPeak() { b.stats.PeakBytes = b.stats.LiveBytes }

// hostArg is a host float32 array an op uses, and its device copy.
type hostArg struct {
	ptr      unsafe.Pointer
	n        int // floats
	bd       binding
	uploaded bool // its data is in bd
	download bool // an output: copied back when the op ends
}

// fixup is an output bound through a temporary buffer (a device tensor
// at an offset the device cannot bind): copied to dst when the op ends.
type fixup struct{ tmp, dst binding }

var (
	_ tensor.Backend    = (*Backend)(nil)
	_ tensor.Memory     = (*Backend)(nil)
	_ tensor.ArgMaxer   = (*Backend)(nil)
	_ tensor.MultiAdamW = (*Backend)(nil)
)

// Open creates the backend on the best Vulkan device (see openDevice);
// cpu runs what the device cannot (nil: a CPU backend on all cores).
func Open(cpu *tensor.CPU) (*Backend, error) { return open(cpu, false) }

// addrBase is the first address Alloc hands out: not 0, so a device
// tensor's Ptr is never the zero value.
const addrBase = 1 << 16

// open is Open, optionally forcing the staging path (for tests).
func open(cpu *tensor.CPU, forceStaging bool) (*Backend, error) {
	d, err := openDevice(forceStaging)
	if err != nil {
		return nil, err
	}
	if cpu == nil {
		cpu = tensor.NewCPU(0)
	}
	b := &Backend{d: d, cpu: cpu, weights: map[residentKey]residentEntry{}, intsCache: map[intsKey]*intsEntry{},
		intsSeed: maphash.MakeSeed(), next: addrBase, tiledMin: 32}
	if b.dummy, err = d.alloc(16); err != nil {
		d.Close()
		return nil, err
	}
	d.dummy = b.dummy
	// Compile one pipeline now, so a broken driver fails here, not mid-run.
	if _, err := d.kernel("add", 3); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, d.name, err)
	}
	return b, nil
}

// Close waits for the device and releases it. Device tensors are invalid
// afterwards.
func (b *Backend) Close() {
	if b.d == nil {
		return
	}
	b.must(b.d.submit())
	for _, s := range b.space.All() {
		b.d.release(s.Val)
	}
	b.space.Clear()
	for _, e := range b.weights {
		b.d.release(e.buf)
	}
	b.dropInts()
	b.d.release(b.dummy)
	b.weights = nil
	b.d.Close()
	b.d = nil
}

// Name describes the device.
func (b *Backend) Name() string { return "vulkan: " + b.d.Name() }

// Device is the device's name as the driver reports it.
func (b *Backend) Device() string { return b.d.name }

// SetResident chooses whether tensors live in the device's memory (the
// default) or stay on the host, each op copying them in and out (for
// comparisons; see tensor.MemoryOf).
func (b *Backend) SetResident(on bool) { b.hostOnly = !on }

// Resident reports whether tensors live in the device's memory.
func (b *Backend) Resident() bool { return !b.hostOnly }

// fits reports whether every tensor fits one storage buffer binding.
func (b *Backend) fits(ts ...*tensor.Tensor) bool {
	for _, t := range ts {
		if t != nil && uint64(t.Numel())*4 > b.d.maxRange {
			return false
		}
	}
	return true
}

// scratch returns n floats of device memory for this op.
func (b *Backend) scratch(n int) binding {
	buf, err := b.d.alloc(uint64(4 * max(n, 1)))
	b.must(err)
	b.temps = append(b.temps, buf)
	return binding{b: buf, size: uint64(4 * max(n, 1))}
}

// put writes n bytes at src into dst: straight into the mapping when the
// device memory is mapped and no recorded command can read it (fresh: a
// buffer just taken from the pool; or nothing is recorded), else through
// a staging buffer and a recorded copy, so commands recorded before still
// see the old contents.
func (b *Backend) put(dst binding, src unsafe.Pointer, n int, fresh bool) {
	if n == 0 {
		return
	}
	if dst.b.ptr != nil && (fresh || !b.d.recording) {
		copy(unsafe.Slice((*byte)(unsafe.Add(dst.b.ptr, dst.off)), n), unsafe.Slice((*byte)(src), n))
		return
	}
	st, err := b.d.allocHost(uint64(n))
	b.must(err)
	copy(unsafe.Slice((*byte)(st.ptr), n), unsafe.Slice((*byte)(src), n))
	b.must(b.d.copyBuffer(binding{b: st, size: uint64(n)}, dst, uint64(n)))
	b.d.release(st)
}

// in binds t as an input: device tensors in place, host float32 data
// copied in, storage-only weights from (or into) the weight cache. nil
// binds the dummy buffer.
func (b *Backend) in(t *tensor.Tensor) binding {
	bd := b.in1(t)
	bd.ro = true
	return bd
}

func (b *Backend) in1(t *tensor.Tensor) binding {
	switch {
	case t == nil || t.Numel() == 0:
		return whole(b.dummy)
	case t.DType != tensor.F32:
		return whole(b.weight(t))
	case t.OnDevice():
		return b.devIn(t)
	}
	h := b.hostArg(t)
	if !h.uploaded {
		b.put(h.bd, unsafe.Pointer(&t.F32[0]), 4*h.n, true)
		h.uploaded = true
		b.stats.Uploads++
		b.stats.UploadBytes += int64(4 * h.n)
	}
	return h.bd
}

// out binds t as an output. Device tensors are written in place; host
// ones are copied back when the op ends. keep makes the current contents
// the starting point (kernels that add into it, in-place updates).
func (b *Backend) out(t *tensor.Tensor, keep bool) binding {
	switch {
	case t == nil || t.Numel() == 0:
		return whole(b.dummy)
	case t.DType != tensor.F32:
		panic(fmt.Sprintf("vulkan: output %v tensor %v must be float32", t.DType, t.Shape))
	case t.OnDevice():
		return b.devOut(t, keep)
	}
	if keep {
		b.in(t)
	}
	h := b.hostArg(t)
	h.download = true
	return h.bd
}

// hostArg returns the op's record of t's host data, making it (with a
// device buffer) on first use. Arrays are matched by address and length,
// so a tensor passed twice (dst == x) gets one buffer.
func (b *Backend) hostArg(t *tensor.Tensor) *hostArg {
	p, n := unsafe.Pointer(&t.F32[0]), len(t.F32)
	for i := range b.hosts {
		if h := &b.hosts[i]; h.ptr == p && h.n == n {
			return h
		}
	}
	b.hosts = append(b.hosts, hostArg{ptr: p, n: n, bd: b.scratch(n)})
	return &b.hosts[len(b.hosts)-1]
}

// devIn binds a device tensor as an input. One at an offset the device
// cannot bind (a view made by Offset) is copied to a scratch buffer.
func (b *Backend) devIn(t *tensor.Tensor) binding {
	bd := b.bind(t)
	b.stats.Resident++
	if bd.off%b.d.align == 0 {
		return bd
	}
	tmp := b.scratch(t.Numel())
	b.must(b.d.copyBuffer(bd, tmp, bd.size))
	return tmp
}

// devOut binds a device tensor as an output; a misaligned one through a
// scratch buffer copied back when the op ends.
func (b *Backend) devOut(t *tensor.Tensor, keep bool) binding {
	bd := b.bind(t)
	b.stats.Resident++
	if bd.off%b.d.align == 0 {
		return bd
	}
	tmp := b.scratch(t.Numel())
	if keep {
		b.must(b.d.copyBuffer(bd, tmp, bd.size))
	}
	b.fixups = append(b.fixups, fixup{tmp, bd})
	return tmp
}

// residentKey identifies immutable host data: its address, length and
// element type.
type residentKey struct {
	addr uintptr
	n    int
	dt   tensor.DType
}

// residentEntry is the device copy of immutable data. keep holds the host
// data, so its address cannot be reused by other data while the entry
// lives (the entries live as long as the backend).
type residentEntry struct {
	buf  *buffer
	keep any
}

// weight returns the device copy of a storage-only weight, widened.
func (b *Backend) weight(t *tensor.Tensor) *buffer {
	switch {
	case len(t.Half) > 0:
		return b.resident1(residentKey{uintptr(unsafe.Pointer(&t.Half[0])), len(t.Half), t.DType}, t.Half, t.Float32s)
	case len(t.Q) > 0:
		return b.resident1(residentKey{uintptr(unsafe.Pointer(&t.Q[0])), len(t.Q), t.DType}, t.Q, t.Float32s)
	}
	panic(fmt.Sprintf("vulkan: %v tensor %v has no host data", t.DType, t.Shape))
}

// floats binds an immutable float32 table (RoPE) resident on the device.
func (b *Backend) floats(x []float32) binding {
	key := residentKey{uintptr(unsafe.Pointer(&x[0])), len(x), tensor.F32}
	return binding{b: b.resident1(key, x, func() []float32 { return x }), size: uint64(4 * len(x)), ro: true}
}

// resident1 returns the resident buffer of the immutable data keep,
// uploading data() the first time.
func (b *Backend) resident1(key residentKey, keep any, data func() []float32) *buffer {
	if e, ok := b.weights[key]; ok {
		return e.buf
	}
	f := data()
	buf, err := b.d.alloc(uint64(len(f) * 4))
	b.must(err)
	b.put(binding{b: buf, size: uint64(4 * len(f))}, unsafe.Pointer(&f[0]), 4*len(f), true)
	b.stats.Uploads++
	b.stats.UploadBytes += int64(4 * len(f))
	b.weights[key] = residentEntry{buf, keep}
	return buf
}

// ints binds an int32 array (token ids, targets, positions, segments). A
// step passes the same few arrays to many ops, and often arrays of the
// same contents made afresh (positions, the rows that have a target), so
// device copies are kept by contents: a hash finds the entry and a
// comparison with its host copy makes sure. A step then uploads each
// distinct array once, and a later step with the same batch none.
func (b *Backend) ints(x []int32) binding {
	if len(x) == 0 {
		return whole(b.dummy)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
	key := intsKey{maphash.Bytes(b.intsSeed, raw), len(x)}
	if e, ok := b.intsCache[key]; ok && slices.Equal(e.host, x) {
		return e.bd
	}
	if len(b.intsCache) >= maxIntsCache {
		b.dropInts()
	}
	buf, err := b.d.alloc(uint64(4 * len(x)))
	b.must(err)
	e := &intsEntry{host: slices.Clone(x), bd: binding{b: buf, size: uint64(4 * len(x)), ro: true}}
	b.put(e.bd, unsafe.Pointer(&e.host[0]), 4*len(x), true)
	b.stats.Uploads++
	b.stats.UploadBytes += int64(4 * len(x))
	if old, ok := b.intsCache[key]; ok { // a hash collision: the newer stays
		b.d.release(old.bd.b)
	}
	b.intsCache[key] = e
	return e.bd
}

// maxIntsCache bounds the int array cache; it is emptied when full.
const maxIntsCache = 64

type intsKey struct {
	hash uint64
	n    int
}

type intsEntry struct {
	host []int32 // the contents the device copy holds
	bd   binding
}

// dropInts empties the int array cache (the buffers rejoin the pool after
// the commands that read them).
func (b *Backend) dropInts() {
	for k, e := range b.intsCache {
		b.d.release(e.bd.b)
		delete(b.intsCache, k)
	}
}

// must panics on a device error in the middle of an op (the op cannot
// return one; Open has already checked the device works).
func (b *Backend) must(err error) {
	if err != nil {
		panic(err)
	}
}

// run records one dispatch of the named kernel.
func (b *Backend) run(name string, groups [3]uint32, pc []uint32, bufs ...binding) {
	k, err := b.d.kernel(name, len(bufs))
	if err == nil {
		err = b.d.dispatch(k, groups, pc, bufs...)
	}
	b.must(err)
}

// finish ends an op. Outputs bound through scratch buffers get their
// copies recorded; when the op has host outputs, the command buffer is
// submitted, the host waits, and they are copied back. An op on device
// tensors alone returns at once, its commands recorded.
func (b *Backend) finish() {
	for _, f := range b.fixups {
		b.must(b.d.copyBuffer(f.tmp, f.dst, f.dst.size))
	}
	var stage []*buffer
	for i := range b.hosts {
		h := &b.hosts[i]
		if !h.download {
			continue
		}
		at, st, err := b.d.readable(h.bd)
		b.must(err)
		if st != nil {
			stage = append(stage, st)
		}
		h.bd = at // read it from there
	}
	down := false
	for _, h := range b.hosts {
		down = down || h.download
	}
	if down {
		b.must(b.d.submit())
		for _, h := range b.hosts {
			if h.download {
				copy(unsafe.Slice((*float32)(h.ptr), h.n), unsafe.Slice((*float32)(unsafe.Add(h.bd.b.ptr, h.bd.off)), h.n))
				b.stats.Downloads++
				b.stats.DownloadBytes += int64(4 * h.n)
			}
		}
	}
	for _, st := range stage {
		b.d.release(st)
	}
	for _, t := range b.temps {
		b.d.release(t)
	}
	clear(b.temps)
	b.temps, b.hosts, b.fixups = b.temps[:0], b.hosts[:0], b.fixups[:0]
}

// onCPU runs f, a CPU backend op, on the given arguments: each device
// tensor among args (also in slices of tensors and AttentionOpts) gets
// host storage holding its data for the call, and what f changed goes
// back to the device after it (tensor.OnHost). The slow path, for shapes
// the kernels do not take.
func (b *Backend) onCPU(f func(), args ...any) {
	b.stats.CPUOps++
	tensor.OnHostArgs(f, args...)
}

func f32(x float32) uint32 { return math.Float32bits(x) }

func u(x int) uint32 { return uint32(x) }

func b2u(x bool) uint32 {
	if x {
		return 1
	}
	return 0
}

// rowGroups spreads n one-workgroup-per-row workgroups over a 2-D grid.
func rowGroups(n int) [3]uint32 { return groups1D(n, 1) }

// matMulDims is tensor.MatMulDims for operands that may live on the
// device: host ones get the CPU's full check, device ones the same check
// of their shapes (bind checks their storage). ok is false when they do
// not fit.
func matMulDims(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) (batch, m, n, k int, ok bool) {
	if !dst.OnDevice() && !a.OnDevice() && !w.OnDevice() {
		batch, m, n, k = tensor.MatMulDims(dst, a, w, o)
		return batch, m, n, k, true
	}
	batch = max(o.Batch, 1)
	if dst.DType != tensor.F32 || a.DType != tensor.F32 {
		return
	}
	dn, an, wn := dst.Numel(), a.Numel(), w.Numel()
	n = dst.Cols()
	if dn%batch != 0 || an%batch != 0 || wn%batch != 0 || n == 0 || dn/batch/n == 0 {
		return
	}
	m = dn / batch / n
	if an/batch%m != 0 || wn/batch != an/batch/m*n {
		return
	}
	k = an / batch / m
	pick := func(t bool, x, y int) int {
		if t {
			return x
		}
		return y
	}
	if len(a.Shape) > 1 && a.Cols() != pick(o.TransA, m, k) || len(w.Shape) > 1 && w.Cols() != pick(o.TransB, k, n) {
		return
	}
	for _, t := range []*tensor.Tensor{dst, a, w} {
		if !t.OnDevice() && t.DType == tensor.F32 && len(t.F32) != t.Numel() {
			return
		}
	}
	return batch, m, n, k, true
}

func (b *Backend) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	if !b.fits(dst, a, w) {
		b.onCPU(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w)
		return
	}
	batch, m, n, k, ok := matMulDims(dst, a, w, o)
	if !ok {
		b.onCPU(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w) // panics, naming the shapes
		return
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		if !o.Accumulate {
			tensor.Fill(dst, 0)
		}
		return
	}
	db := b.out(dst, o.Accumulate)
	if m <= 8 && !o.TransA && o.TransB && b.d.sgArith && !b.noSubgroups {
		// A few rows against a weight stored (N, K): decoding's products.
		g := groups1D(n, 1)
		g[2] = u(batch)
		b.run("matvec_sg", g, []uint32{u(m), u(n), u(k), b2u(o.Accumulate), u(m * k), u(k * n), u(m * n)}, db, b.in(a), b.in(w))
		b.finish()
		return
	}
	kernel, tile := "matmul", 16
	if min(m, n) >= b.tiledMin {
		kernel, tile = "matmul_tiled", 64
	}
	groups := [3]uint32{u((n + tile - 1) / tile), u((m + tile - 1) / tile), u(batch)}
	b.run(kernel, groups, []uint32{u(m), u(n), u(k), b2u(o.TransA), b2u(o.TransB), b2u(o.Accumulate), u(m * k), u(k * n), u(m * n)},
		db, b.in(a), b.in(w))
	b.finish()
}

func (b *Backend) Embedding(dst *tensor.Tensor, ids []int32, table *tensor.Tensor) {
	C, V := table.Cols(), table.Rows()
	if !b.fits(table) {
		b.onCPU(func() { b.cpu.Embedding(dst, ids, table) }, dst, table)
		return
	}
	for _, id := range ids {
		if id < 0 || int(id) >= V {
			panic(fmt.Sprintf("vulkan.Embedding: id %d outside table of %d rows", id, V))
		}
	}
	b.run("embedding", groups1D(len(ids)*C, 256), []uint32{u(len(ids)), u(C)}, b.out(dst, false), b.in(table), b.ints(ids))
	b.finish()
}

func (b *Backend) EmbeddingBackward(dtable *tensor.Tensor, ids []int32, dy *tensor.Tensor) {
	if !b.fits(dtable) {
		b.onCPU(func() { b.cpu.EmbeddingBackward(dtable, ids, dy) }, dtable, dy)
		return
	}
	C := dtable.Cols()
	b.run("embedding_bwd", groups1D(C, 256), []uint32{u(len(ids)), u(C)}, b.out(dtable, true), b.in(dy), b.ints(ids))
	b.finish()
}

func (b *Backend) LayerNorm(dst, mean, rstd, x, w, bias *tensor.Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	b.run("layernorm", rowGroups(N), []uint32{u(C), f32(eps), b2u(bias != nil)},
		b.out(dst, false), b.out(mean, false), b.out(rstd, false), b.in(x), b.in(w), b.in(bias))
	b.finish()
}

func (b *Backend) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	b.run("layernorm_bwd", rowGroups(N), []uint32{u(C)}, b.out(dx, true), b.in(dy), b.in(x), b.in(w), b.in(mean), b.in(rstd))
	if dw != nil || db != nil {
		b.run("norm_dw", groups1D(C, 256), []uint32{u(N), u(C), 0, b2u(dw != nil), b2u(db != nil)},
			b.out(dw, true), b.out(db, true), b.in(dy), b.in(x), b.in(mean), b.in(rstd))
	}
	b.finish()
}

func (b *Backend) RMSNorm(dst, rstd, x, w *tensor.Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	b.run("rmsnorm", rowGroups(N), []uint32{u(C), f32(eps)}, b.out(dst, false), b.out(rstd, false), b.in(x), b.in(w))
	b.finish()
}

func (b *Backend) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	b.run("rmsnorm_bwd", rowGroups(N), []uint32{u(C)}, b.out(dx, true), b.in(dy), b.in(x), b.in(w), b.in(rstd))
	if dw != nil {
		b.run("norm_dw", groups1D(C, 256), []uint32{u(N), u(C), 1, 1, 0},
			b.out(dw, true), whole(b.dummy), b.in(dy), b.in(x), whole(b.dummy), b.in(rstd))
	}
	b.finish()
}

func (b *Backend) GELU(dst, x *tensor.Tensor) {
	n := x.Numel()
	b.run("gelu", groups1D(n, 256), []uint32{u(n)}, b.out(dst, false), b.in(x))
	b.finish()
}

func (b *Backend) GELUBackward(dx, dy, x *tensor.Tensor) {
	n := x.Numel()
	b.run("gelu_bwd", groups1D(n, 256), []uint32{u(n)}, b.out(dx, true), b.in(dy), b.in(x))
	b.finish()
}

func (b *Backend) SwiGLU(dst, gate, up *tensor.Tensor) {
	n := gate.Numel()
	b.run("swiglu", groups1D(n, 256), []uint32{u(n)}, b.out(dst, false), b.in(gate), b.in(up))
	b.finish()
}

func (b *Backend) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	n := gate.Numel()
	b.run("swiglu_bwd", groups1D(n, 256), []uint32{u(n)}, b.out(dgate, true), b.out(dup, true), b.in(dy), b.in(gate), b.in(up))
	b.finish()
}

func (b *Backend) GeGLU(dst, gate, up *tensor.Tensor) {
	n := gate.Numel()
	b.run("geglu", groups1D(n, 256), []uint32{u(n)}, b.out(dst, false), b.in(gate), b.in(up))
	b.finish()
}

func (b *Backend) GeGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	n := gate.Numel()
	b.run("geglu_bwd", groups1D(n, 256), []uint32{u(n)}, b.out(dgate, true), b.out(dup, true), b.in(dy), b.in(gate), b.in(up))
	b.finish()
}

func (b *Backend) Softcap(dst, x *tensor.Tensor, c float32) {
	n := x.Numel()
	if !b.fits(x) {
		b.onCPU(func() { b.cpu.Softcap(dst, x, c) }, dst, x)
		return
	}
	b.run("softcap", groups1D(n, 256), []uint32{u(n), f32(c)}, b.out(dst, false), b.in(x))
	b.finish()
}

func (b *Backend) ReLU(dst, x *tensor.Tensor) {
	n := x.Numel()
	if !b.fits(x) {
		b.onCPU(func() { b.cpu.ReLU(dst, x) }, dst, x)
		return
	}
	b.run("relu", groups1D(n, 256), []uint32{u(n)}, b.out(dst, false), b.in(x))
	b.finish()
}

func (b *Backend) ReLUBackward(dx, dy, y *tensor.Tensor) {
	n := y.Numel()
	if !b.fits(y) {
		b.onCPU(func() { b.cpu.ReLUBackward(dx, dy, y) }, dx, dy, y)
		return
	}
	b.run("relu_bwd", groups1D(n, 256), []uint32{u(n)}, b.out(dx, true), b.in(dy), b.in(y))
	b.finish()
}

func (b *Backend) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	n := y.Numel()
	if !b.fits(y) {
		b.onCPU(func() { b.cpu.SoftcapBackward(dx, dy, y, c) }, dx, dy, y)
		return
	}
	b.run("softcap_bwd", groups1D(n, 256), []uint32{u(n), f32(c)}, b.out(dx, true), b.in(dy), b.in(y))
	b.finish()
}

func (b *Backend) rope(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable, sign float32, acc bool) {
	D := tab.Dim
	N := len(pos)
	H := x.Numel() / (N * D)
	if H*N*D != x.Numel() {
		panic(fmt.Sprintf("vulkan.RoPE: x %v is not (%d, H, %d)", x.Shape, N, D))
	}
	for _, p := range pos {
		if p < 0 || int(p) >= tab.MaxPos {
			panic(fmt.Sprintf("vulkan.RoPE: position %d outside table of %d", p, tab.MaxPos))
		}
	}
	xb := b.in(x)
	db := b.out(dst, acc)
	b.run("rope", groups1D(N*H*D/2, 256), []uint32{u(N), u(H), u(D), f32(sign), b2u(acc)},
		db, xb, b.ints(pos), b.floats(tab.Cos), b.floats(tab.Sin))
	b.finish()
}

func (b *Backend) RoPE(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	b.rope(dst, x, pos, tab, 1, false)
}

func (b *Backend) RoPEBackward(dx, dy *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	b.rope(dx, dy, pos, tab, -1, true)
}

// attnPush is the push-constant block the attention kernels share.
func attnPush(o *tensor.AttentionOpts) (pc []uint32, B, H, KVH, D, T, S, stride, P int) {
	B, H, KVH, D, T, S, stride, P, scale := o.Dims()
	pc = []uint32{u(T), u(S), u(H), u(KVH), u(D), u(stride), u(P), uint32(int32(o.Offset)), f32(scale), b2u(o.QSeg != nil),
		u(max(o.Window, 0)), f32(o.Softcap)}
	return
}

func (b *Backend) Attention(out, lse, q, k, v *tensor.Tensor, o *tensor.AttentionOpts) {
	pc, B, H, _, D, T, _, _, _ := attnPush(o)
	if D > 256 || !b.fits(q, k, v) {
		b.onCPU(func() { b.cpu.Attention(out, lse, q, k, v, o) }, out, lse, q, k, v, o)
		return
	}
	b.run("attention", [3]uint32{u(T), u(H), u(B)}, pc,
		b.out(out, false), b.out(lse, false), b.in(q), b.in(k), b.in(v), b.in(o.PrefixK), b.in(o.PrefixV), b.ints(o.QSeg), b.ints(o.KSeg))
	b.finish()
}

func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) {
	pc, B, H, KVH, D, T, S, _, P := attnPush(o)
	if D > 256 || !b.fits(q, k, v) {
		b.onCPU(func() { b.cpu.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o) }, dq, dk, dv, dout, q, k, v, out, lse, o)
		return
	}
	delta := b.scratch(B * H * T)
	b.run("attention_delta", groups1D(B*T*H, 256), []uint32{u(B * T * H), u(T), u(H), u(D)}, delta, b.in(dout), b.in(out))
	qb, dob, lb, kb, vb := b.in(q), b.in(dout), b.in(lse), b.in(k), b.in(v)
	pk, pv := b.in(o.PrefixK), b.in(o.PrefixV)
	qs, ks := b.ints(o.QSeg), b.ints(o.KSeg)
	if dq != nil {
		b.run("attention_dq", [3]uint32{u(T), u(H), u(B)}, pc, b.out(dq, true), qb, dob, lb, delta, kb, vb, pk, pv, qs, ks)
	}
	if dk != nil || dv != nil {
		pcs := append(pc[:len(pc):len(pc)], 0, u(B), b2u(dk != nil), b2u(dv != nil))
		b.run("attention_dkv", [3]uint32{u(S), u(KVH), u(B)}, pcs, b.out(dk, true), b.out(dv, true), qb, dob, lb, delta, kb, vb, qs, ks)
	}
	if P > 0 && (o.DPrefixK != nil || o.DPrefixV != nil) {
		pcs := append(pc[:len(pc):len(pc)], 1, u(B), b2u(o.DPrefixK != nil), b2u(o.DPrefixV != nil))
		b.run("attention_dkv", [3]uint32{u(P), u(KVH), 1}, pcs, b.out(o.DPrefixK, true), b.out(o.DPrefixV, true), qb, dob, lb, delta, pk, pv, qs, ks)
	}
	b.finish()
}

func (b *Backend) CrossEntropy(loss, lse, logits *tensor.Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	if !b.fits(logits) {
		b.onCPU(func() { b.cpu.CrossEntropy(loss, lse, logits, targets) }, loss, lse, logits)
		return
	}
	for _, t := range targets {
		if int(t) >= V {
			panic(fmt.Sprintf("vulkan.CrossEntropy: target %d outside %d classes", t, V))
		}
	}
	b.run("crossentropy", rowGroups(N), []uint32{u(V)}, b.out(loss, false), b.out(lse, false), b.in(logits), b.ints(targets))
	b.finish()
}

func (b *Backend) CrossEntropyBackward(dlogits, dloss, logits, lse *tensor.Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	if !b.fits(logits) {
		b.onCPU(func() { b.cpu.CrossEntropyBackward(dlogits, dloss, logits, lse, targets) }, dlogits, dloss, logits, lse)
		return
	}
	b.run("crossentropy_bwd", groups1D(N*V, 256), []uint32{u(N), u(V)}, b.out(dlogits, true), b.in(dloss), b.in(logits), b.in(lse), b.ints(targets))
	b.finish()
}

func (b *Backend) binary(dst, x, y *tensor.Tensor, op uint32) {
	n := dst.Numel()
	b.run("add", groups1D(n, 256), []uint32{u(n), op}, b.out(dst, false), b.in(x), b.in(y))
	b.finish()
}

func (b *Backend) Add(dst, x, y *tensor.Tensor) { b.binary(dst, x, y, 0) }
func (b *Backend) Mul(dst, x, y *tensor.Tensor) { b.binary(dst, x, y, 1) }

func (b *Backend) AddScaled(dst, a *tensor.Tensor, s float32) {
	n := dst.Numel()
	b.run("addscaled", groups1D(n, 256), []uint32{u(n), f32(s)}, b.out(dst, true), b.in(a))
	b.finish()
}

func (b *Backend) AddBias(dst, x, bias *tensor.Tensor) {
	n, C := x.Numel(), x.Cols()
	b.run("addbias", groups1D(n, 256), []uint32{u(n), u(C)}, b.out(dst, false), b.in(x), b.in(bias))
	b.finish()
}

func (b *Backend) SumRows(dst, x *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	b.run("sumrows", groups1D(C, 256), []uint32{u(N), u(C)}, b.out(dst, true), b.in(x))
	b.finish()
}

func (b *Backend) SplitCols(dsts []*tensor.Tensor, x *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	xb := b.in(x)
	off := 0
	for _, d := range dsts {
		w := d.Cols()
		b.run("copycols", groups1D(N*w, 256), []uint32{u(N), u(w), u(w), 0, u(C), u(off)}, b.out(d, false), xb)
		off += w
	}
	b.finish()
}

func (b *Backend) ConcatCols(dst *tensor.Tensor, srcs []*tensor.Tensor) {
	N, C := dst.Rows(), dst.Cols()
	db := b.out(dst, false)
	off := 0
	for _, s := range srcs {
		w := s.Cols()
		b.run("copycols", groups1D(N*w, 256), []uint32{u(N), u(w), u(C), u(off), u(w), 0}, db, b.in(s))
		off += w
	}
	b.finish()
}

func (b *Backend) AdamW(p, g, m, v *tensor.Tensor, o tensor.AdamWOpts) {
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.Step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.Step))
	decay := float32(1 - float64(o.LR)*float64(o.WeightDecay))
	stepSize := float32(float64(o.LR) / bc1)
	bc2s := float32(math.Sqrt(bc2))
	n := p.Numel()
	b.run("adamw", groups1D(n, 256), []uint32{u(n), f32(o.Beta1), f32(o.Beta2), f32(o.Eps), f32(decay), f32(stepSize), f32(bc2s)},
		b.out(p, true), b.in(g), b.out(m, true), b.out(v, true))
	b.finish()
}

// AdamWAll updates many parameters, eight to a dispatch (adamw_multi,
// with AdamW's arithmetic): the updates are independent, so they also run
// side by side with no barrier between dispatches. Host tensors, and any
// on a device that cannot bind 32 buffers to a kernel, go through AdamW.
func (b *Backend) AdamWAll(ps, gs, ms, vs []*tensor.Tensor, decay []float32, o tensor.AdamWOpts) {
	if len(gs) != len(ps) || len(ms) != len(ps) || len(vs) != len(ps) || len(decay) != len(ps) {
		panic(fmt.Sprintf("vulkan.AdamWAll: %d params, %d gradients, %d and %d moments, %d decays", len(ps), len(gs), len(ms), len(vs), len(decay)))
	}
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.Step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.Step))
	stepSize := float32(float64(o.LR) / bc1)
	bc2s := float32(math.Sqrt(bc2))
	var slots []int // indices of the tensors of the next dispatch
	var pc [21]uint32
	var bufs [32]binding
	flush := func() {
		if len(slots) == 0 {
			return
		}
		for j := range bufs {
			bufs[j] = whole(b.dummy)
		}
		clear(pc[:16])
		maxN := 0
		for j, i := range slots {
			n := ps[i].Numel()
			maxN = max(maxN, n)
			pc[j] = u(n)
			pc[8+j] = f32(float32(1 - float64(o.LR)*float64(decay[i])))
			bufs[j], bufs[8+j], bufs[16+j], bufs[24+j] = b.out(ps[i], true), b.in(gs[i]), b.out(ms[i], true), b.out(vs[i], true)
		}
		pc[16], pc[17], pc[18], pc[19], pc[20] = f32(o.Beta1), f32(o.Beta2), f32(o.Eps), f32(stepSize), f32(bc2s)
		g := groups1D(maxN, 256)
		g[2] = u(len(slots))
		b.run("adamw_multi", g, pc[:], bufs[:]...)
		b.finish()
		slots = slots[:0]
	}
	for i, p := range ps {
		n := p.Numel()
		dev := p.OnDevice() && gs[i].OnDevice() && ms[i].OnDevice() && vs[i].OnDevice()
		if !b.d.bind32 || !dev || !b.fits(p) || gs[i].Numel() != n || ms[i].Numel() != n || vs[i].Numel() != n {
			oi := o
			oi.WeightDecay = decay[i]
			b.AdamW(p, gs[i], ms[i], vs[i], oi)
			continue
		}
		if n == 0 {
			continue
		}
		slots = append(slots, i)
		if len(slots) == 8 {
			flush()
		}
	}
	flush()
}

// SumSquares returns Σx²: partial sums on the device, read back (a wait)
// and added in float64.
func (b *Backend) SumSquares(x *tensor.Tensor) float64 {
	n := x.Numel()
	if n == 0 {
		return 0
	}
	parts := (n + 4095) / 4096
	pb := b.scratch(parts)
	b.run("sumsq", rowGroups(parts), []uint32{u(n), 0}, pb, b.in(x))
	at, st, err := b.d.readable(pb)
	b.must(err)
	b.must(b.d.submit())
	var s float64
	for _, v := range unsafe.Slice((*float32)(unsafe.Add(at.b.ptr, at.off)), parts) {
		s += float64(v)
	}
	if st != nil {
		b.d.release(st)
	}
	b.finish()
	b.stats.Downloads++
	b.stats.DownloadBytes += int64(4 * parts)
	return s
}

// ClipNorm writes the global L2 norm of xs into norm and, when maxNorm > 0
// and the norm exceeds it, scales every x by maxNorm/(norm+1e-6), all on
// the device (optim.NormClipper): partial sums of squares of every tensor
// side by side, one workgroup adding them into the norm and the factor,
// then a scale of each x that reads the factor. Nothing is read back.
func (b *Backend) ClipNorm(norm *tensor.Tensor, xs []*tensor.Tensor, maxNorm float32) {
	for _, x := range xs {
		if !b.fits(x) {
			b.onCPU(func() { clipCPU(b.cpu, norm, xs, maxNorm) }, norm, xs)
			return
		}
	}
	// Each tensor's partials get a slot of their own, aligned for binding,
	// so the sumsq dispatches write disjoint ranges and run with no
	// barrier between them; the padding is zeroed once, and clipnorm adds
	// every slot whole.
	align := int(b.d.align / 4)
	total := 0
	for _, x := range xs {
		total += ((x.Numel()+4095)/4096 + align - 1) / align * align
	}
	part, scale := b.scratch(total), b.scratch(1)
	b.must(b.d.fill(part, 0))
	off := 0
	for _, x := range xs {
		n := x.Numel()
		if n == 0 {
			continue
		}
		parts := (n + 4095) / 4096
		slot := binding{b: part.b, off: part.off + uint64(4*off), size: uint64(4 * parts)}
		b.run("sumsq", rowGroups(parts), []uint32{u(n), 0}, slot, b.in(x))
		off += (parts + align - 1) / align * align
	}
	b.run("clipnorm", [3]uint32{1, 1, 1}, []uint32{u(total), f32(maxNorm)}, b.out(norm, false), scale, part)
	for _, x := range xs {
		if n := x.Numel(); n > 0 {
			b.run("clipscale", groups1D(n, 256), []uint32{u(n)}, b.out(x, true), scale)
		}
	}
	b.finish()
}

// clipCPU is ClipNorm on the CPU backend (tensors beyond a binding's
// size), as optim clips on the host.
func clipCPU(cpu *tensor.CPU, norm *tensor.Tensor, xs []*tensor.Tensor, maxNorm float32) {
	var ss float64
	for _, x := range xs {
		ss += cpu.SumSquares(x)
	}
	nv := math.Sqrt(ss)
	norm.F32[0] = float32(nv)
	if maxNorm > 0 && nv > float64(maxNorm) {
		s := float32(float64(maxNorm) / (nv + 1e-6))
		for _, x := range xs {
			cpu.AddScaled(x, x, s-1)
		}
	}
}

// ArgMax writes the index of the first largest value of each row of x
// (N, V) into dst, picked on the device: only the ids are read back.
func (b *Backend) ArgMax(dst []int32, x *tensor.Tensor) {
	N, V := x.Rows(), x.Cols()
	if len(dst) != N {
		panic(fmt.Sprintf("vulkan.ArgMax: %d ids for %v", len(dst), x.Shape))
	}
	if N == 0 {
		return
	}
	if V == 0 || !b.fits(x) {
		b.onCPU(func() { tensor.ArgMaxRows(dst, x) }, x)
		return
	}
	ids := b.scratch(N)
	b.run("argmax", rowGroups(N), []uint32{u(V)}, ids, b.in(x))
	at, st, err := b.d.readable(ids)
	b.must(err)
	b.must(b.d.submit())
	copy(dst, unsafe.Slice((*int32)(unsafe.Add(at.b.ptr, at.off)), N))
	if st != nil {
		b.d.release(st)
	}
	b.finish()
	b.stats.Downloads++
	b.stats.DownloadBytes += int64(4 * N)
}

// IsCPU reports whether the device is the CPU itself (lavapipe): correct,
// but slower than the CPU backend.
func (b *Backend) IsCPU() bool { return b.d.kind == "CPU" }

// Features reports what the device offers for fast kernels (subgroups,
// cooperative matrices, 16-bit and 8-bit arithmetic, memory).
func (b *Backend) Features() Features { return b.d.features }
