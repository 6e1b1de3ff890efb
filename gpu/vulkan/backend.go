//go:build linux || freebsd

package vulkan

import (
	"embed"
	"fmt"
	"math"
	"unsafe"

	"llmlab/core/tensor"
	"llmlab/gpu/internal/spans"
)

//go:generate sh gen_shaders.sh

//go:embed shaders/*.spv
var shaderFS embed.FS

// Backend runs every tensor.Backend op as Vulkan compute shaders.
//
// The engine's tensors are host slices. Where the device's host-visible
// memory is also device-local (integrated GPUs, GPUs with resizable BAR,
// lavapipe), the backend is a tensor.Allocator: the autograd arena then
// keeps a step's activations and gradients in mapped device memory, and
// kernels bind them in place with no copy. Any other float32 tensor is
// copied into a pooled buffer for the op and its outputs copied back.
// Storage-only weights (F16, BF16, Q8, NF4) are immutable by contract:
// they are widened to float32 once and stay on the device, keyed by the
// address of their data, as do RoPE tables. Tensors larger than the
// device's storage-buffer limit, and attention with a head dimension above
// 256, run on the embedded CPU backend instead.
type Backend struct {
	d   *Device
	cpu *tensor.CPU

	resident map[residentKey]residentEntry // widened weights and tables, by their data
	dummy    *buffer                       // bound where an optional input is absent
	regions  spans.Set[*buffer]            // AllocF32 memory, by address

	// per-op state
	temps []*buffer
	bound map[*tensor.Tensor]binding
	blank map[*buffer]bool // output buffers not uploaded (contents undefined)
	outs  []download

	stats Stats
}

// Stats counts how ops found their float32 tensors: bound in place in
// mapped device memory, or copied (bytes both ways).
type Stats struct {
	InPlace, Copied int
	CopiedBytes     int64
}

// Stats returns the counts since Open.
func (b *Backend) Stats() Stats { return b.stats }

type download struct {
	t *tensor.Tensor
	b *buffer
}

var (
	_ tensor.Backend   = (*Backend)(nil)
	_ tensor.Allocator = (*Backend)(nil)
)

// Open creates the backend on the best Vulkan device (see openDevice);
// cpu runs what the device cannot (nil: a CPU backend on all cores).
func Open(cpu *tensor.CPU) (*Backend, error) { return open(cpu, false) }

// open is Open, optionally forcing the staging path (for tests).
func open(cpu *tensor.CPU, forceStaging bool) (*Backend, error) {
	d, err := openDevice(forceStaging)
	if err != nil {
		return nil, err
	}
	if cpu == nil {
		cpu = tensor.NewCPU(0)
	}
	b := &Backend{d: d, cpu: cpu, resident: map[residentKey]residentEntry{}, bound: map[*tensor.Tensor]binding{}, blank: map[*buffer]bool{}}
	if b.dummy, err = d.alloc(16); err != nil {
		d.Close()
		return nil, err
	}
	// Compile one pipeline now, so a broken driver fails here, not mid-run.
	if _, err := d.kernel("add", 3); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, d.name, err)
	}
	return b, nil
}

// Close releases the device. Memory from AllocF32 is invalid afterwards.
func (b *Backend) Close() {
	if b.d != nil {
		for _, e := range b.resident {
			b.d.release(e.buf)
		}
		for _, r := range b.regions.All() {
			b.d.destroy(r.Val)
		}
		b.regions.Clear()
		b.d.release(b.dummy)
		b.resident = nil
		b.d.Close()
		b.d = nil
	}
}

// Name describes the device.
func (b *Backend) Name() string { return "vulkan: " + b.d.Name() }

// Device is the device's name as the driver reports it.
func (b *Backend) Device() string { return b.d.name }

// AllocF32 returns n floats of mapped device memory, zeroed, or nil when
// the device's mappable memory is not its own (a discrete GPU without
// resizable BAR: there, kernels reading host memory would be slower than
// copying) or the allocation fails.
func (b *Backend) AllocF32(n int) []float32 {
	if !b.d.local || b.d.staging || n <= 0 {
		return nil
	}
	buf, err := b.d.newBuffer(uint64(n)*4, -1, b.d.memType, true)
	if err != nil {
		return nil
	}
	x := unsafe.Slice((*float32)(buf.ptr), n)
	clear(x)
	b.regions.Add(uintptr(buf.ptr), uintptr(n)*4, buf)
	return x
}

// FreeF32 releases memory from AllocF32.
func (b *Backend) FreeF32(x []float32) {
	if len(x) == 0 {
		return
	}
	buf, ok := b.regions.Remove(uintptr(unsafe.Pointer(&x[0])))
	if !ok {
		panic("vulkan: FreeF32 of memory it did not allocate")
	}
	b.d.destroy(buf)
}

// mapped returns the binding of x when it lies, suitably aligned, in
// AllocF32 memory.
func (b *Backend) mapped(x []float32) (binding, bool) {
	if len(x) == 0 {
		return binding{}, false
	}
	size := uintptr(len(x)) * 4
	r, off, ok := b.regions.Find(uintptr(unsafe.Pointer(&x[0])), size)
	if !ok || uint64(off)%b.d.align != 0 {
		return binding{}, false
	}
	return binding{r.Val, uint64(off), uint64(size)}, true
}

// fits reports whether every tensor fits one storage buffer.
func (b *Backend) fits(ts ...*tensor.Tensor) bool {
	for _, t := range ts {
		if t != nil && uint64(t.Numel())*4 > b.d.maxRange {
			return false
		}
	}
	return true
}

// temp returns a pooled buffer of n bytes released when the op ends.
func (b *Backend) temp(n int) *buffer {
	buf, err := b.d.alloc(uint64(n))
	if err != nil {
		panic(err)
	}
	b.temps = append(b.temps, buf)
	return buf
}

// in binds t as an input: mapped memory in place, other float32 data
// copied in, storage-only weights from (or into) the resident cache. nil
// binds the dummy buffer.
func (b *Backend) in(t *tensor.Tensor) binding {
	if t == nil {
		return whole(b.dummy)
	}
	bd, ok := b.bound[t]
	if ok && !b.blank[bd.b] {
		return bd
	}
	if t.DType != tensor.F32 {
		bd = whole(b.residentOf(t))
	} else if m, ok := b.mapped(t.F32); ok {
		bd = m
		b.stats.InPlace++
	} else {
		if bd.b == nil {
			bd = whole(b.temp(len(t.F32) * 4))
		}
		b.stats.Copied++
		b.stats.CopiedBytes += int64(len(t.F32)) * 4
		// An output bound first (blank) is also an input: upload it now.
		delete(b.blank, bd.b)
		copy(unsafe.Slice((*float32)(bd.b.host()), len(t.F32)), t.F32)
		b.must(b.d.upload(bd.b, len(t.F32)*4))
	}
	b.bound[t] = bd
	return bd
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

// residentOf returns the device copy of an immutable tensor, widened.
func (b *Backend) residentOf(t *tensor.Tensor) *buffer {
	switch {
	case len(t.Half) > 0:
		return b.resident1(residentKey{uintptr(unsafe.Pointer(&t.Half[0])), len(t.Half), t.DType}, t.Half, t.Float32s)
	case len(t.Q) > 0:
		return b.resident1(residentKey{uintptr(unsafe.Pointer(&t.Q[0])), len(t.Q), t.DType}, t.Q, t.Float32s)
	}
	panic(fmt.Sprintf("vulkan: tensor %v has no data", t))
}

// floats binds an immutable float32 table (RoPE) resident on the device.
func (b *Backend) floats(x []float32) binding {
	key := residentKey{uintptr(unsafe.Pointer(&x[0])), len(x), tensor.F32}
	return whole(b.resident1(key, x, func() []float32 { return x }))
}

// resident1 returns the resident buffer of the immutable data keep,
// uploading data() the first time.
func (b *Backend) resident1(key residentKey, keep any, data func() []float32) *buffer {
	if e, ok := b.resident[key]; ok {
		return e.buf
	}
	f := data()
	buf, err := b.d.alloc(uint64(len(f) * 4))
	if err != nil {
		panic(err)
	}
	copy(unsafe.Slice((*float32)(buf.host()), len(f)), f)
	b.must(b.d.upload(buf, len(f)*4))
	b.resident[key] = residentEntry{buf, keep}
	return buf
}

// ints binds an int32 slice (ids, targets, positions, segments).
func (b *Backend) ints(x []int32) binding {
	if len(x) == 0 {
		return whole(b.dummy)
	}
	buf := b.temp(len(x) * 4)
	copy(unsafe.Slice((*int32)(buf.host()), len(x)), x)
	b.must(b.d.upload(buf, len(x)*4))
	return whole(buf)
}

// out binds t as an output. Mapped memory is written in place; anything
// else is copied back when the op ends. keep uploads its current contents
// first (kernels that add into it, in-place updates).
func (b *Backend) out(t *tensor.Tensor, keep bool) binding {
	if t == nil {
		return whole(b.dummy)
	}
	if m, ok := b.mapped(t.F32); ok {
		b.bound[t] = m
		b.stats.InPlace++
		return m
	}
	bd, ok := b.bound[t]
	if !ok {
		if keep {
			bd = b.in(t)
		} else {
			bd = whole(b.temp(len(t.F32) * 4))
			b.bound[t] = bd
			b.blank[bd.b] = true
		}
	}
	b.outs = append(b.outs, download{t, bd.b})
	return bd
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
	if err != nil {
		panic(err)
	}
}

// finish submits the op, copies the outputs back and releases the temps.
func (b *Backend) finish() {
	for _, o := range b.outs {
		b.must(b.d.download(o.b, len(o.t.F32)*4))
	}
	b.must(b.d.submit())
	for _, o := range b.outs {
		copy(o.t.F32, unsafe.Slice((*float32)(o.b.host()), len(o.t.F32)))
		b.stats.Copied++
		b.stats.CopiedBytes += int64(len(o.t.F32)) * 4
	}
	for _, t := range b.temps {
		b.d.release(t)
	}
	b.temps, b.outs = b.temps[:0], b.outs[:0]
	clear(b.bound)
	clear(b.blank)
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

func (b *Backend) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	if !b.fits(dst, a, w) {
		b.cpu.MatMul(dst, a, w, o)
		return
	}
	batch, m, n, k := tensor.MatMulDims(dst, a, w, o)
	if m == 0 || n == 0 {
		return
	}
	db := b.out(dst, o.Accumulate)
	groups := [3]uint32{u((n + 15) / 16), u((m + 15) / 16), u(batch)}
	b.run("matmul", groups, []uint32{u(m), u(n), u(k), b2u(o.TransA), b2u(o.TransB), b2u(o.Accumulate), u(m * k), u(k * n), u(m * n)},
		db, b.in(a), b.in(w))
	b.finish()
}

func (b *Backend) Embedding(dst *tensor.Tensor, ids []int32, table *tensor.Tensor) {
	C, V := table.Cols(), table.Rows()
	if !b.fits(table) {
		b.cpu.Embedding(dst, ids, table)
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
		b.cpu.EmbeddingBackward(dtable, ids, dy)
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
		b.cpu.Softcap(dst, x, c)
		return
	}
	b.run("softcap", groups1D(n, 256), []uint32{u(n), f32(c)}, b.out(dst, false), b.in(x))
	b.finish()
}

func (b *Backend) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	n := y.Numel()
	if !b.fits(y) {
		b.cpu.SoftcapBackward(dx, dy, y, c)
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
		b.cpu.Attention(out, lse, q, k, v, o)
		return
	}
	b.run("attention", [3]uint32{u(T), u(H), u(B)}, pc,
		b.out(out, false), b.out(lse, false), b.in(q), b.in(k), b.in(v), b.in(o.PrefixK), b.in(o.PrefixV), b.ints(o.QSeg), b.ints(o.KSeg))
	b.finish()
}

func (b *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, o *tensor.AttentionOpts) {
	pc, B, H, KVH, D, T, S, _, P := attnPush(o)
	if D > 256 || !b.fits(q, k, v) {
		b.cpu.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, o)
		return
	}
	delta := whole(b.temp(B * H * T * 4))
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
		b.cpu.CrossEntropy(loss, lse, logits, targets)
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
		b.cpu.CrossEntropyBackward(dlogits, dloss, logits, lse, targets)
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

func (b *Backend) SumSquares(x *tensor.Tensor) float64 {
	n := x.Numel()
	parts := (n + 4095) / 4096
	pb := b.temp(parts * 4)
	b.run("sumsq", rowGroups(parts), []uint32{u(n)}, whole(pb), b.in(x))
	b.must(b.d.download(pb, parts*4))
	b.must(b.d.submit())
	var s float64
	for _, v := range unsafe.Slice((*float32)(pb.host()), parts) {
		s += float64(v)
	}
	b.finish()
	return s
}

// IsCPU reports whether the device is the CPU itself (lavapipe): correct,
// but slower than the CPU backend.
func (b *Backend) IsCPU() bool { return b.d.kind == "CPU" }

// Features reports what the device offers for fast kernels (subgroups,
// cooperative matrices, 16-bit and 8-bit arithmetic, memory).
func (b *Backend) Features() Features { return b.d.features }
