//go:build linux && !android

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"llmlab/core/tensor"
)

// Every op follows one pattern: check the shapes as the CPU backend does,
// then b.run a closure that maps the tensors to device buffers (o.in,
// o.out, o.inout) and launches the kernels; when run reports false the
// same op runs on the CPU backend instead.

func mustSame(op string, a, b *tensor.Tensor) {
	if a.Numel() != b.Numel() {
		panic(fmt.Sprintf("cuda.%s: %v vs %v", op, a.Shape, b.Shape))
	}
}

// rowBlock is the block size of a one-block-per-row kernel over rows of
// c values: a multiple of 32, at most limit.
func rowBlock(c, limit int) uint32 {
	t := (c + 31) / 32 * 32
	return uint32(min(max(t, 32), limit))
}

// colGrid is the launch of a column reduction over (n, c): 256 columns a
// block and rowsPer rows a block, with grid.y within its limit.
func colGrid(n, c int) ([3]uint32, int32) {
	rowsPer := max(64, (n+65534)/65535)
	return [3]uint32{uint32((c + 255) / 256), uint32(max(1, (n+rowsPer-1)/rowsPer)), 1}, int32(rowsPer)
}

func (b *Backend) MatMul(dst, a, w *tensor.Tensor, o tensor.MatMulOpts) {
	batch := max(o.Batch, 1)
	if dst.DType != tensor.F32 || a.DType != tensor.F32 {
		b.host(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w, o) // panics with the CPU's message
		return
	}
	dn, an, wn := dst.Numel(), a.Numel(), w.Numel()
	n := dst.Cols()
	if dn%batch != 0 || an%batch != 0 || wn%batch != 0 || n == 0 || dn/batch/n == 0 {
		b.host(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w, o)
		return
	}
	m := dn / batch / n
	if an/batch%m != 0 || wn/batch != an/batch/m*n || (!dst.OnDevice() && len(dst.F32) != dn) || (!a.OnDevice() && len(a.F32) != an) {
		b.host(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w, o) // the CPU names the mismatch
		return
	}
	k := an / batch / m
	if k == 0 {
		if !o.Accumulate {
			dst.Zero()
		}
		return
	}
	if !b.run(func(op *op) {
		var pd devptr
		if o.Accumulate {
			pd = op.inout(dst)
		} else {
			pd = op.out(dst)
		}
		var pa, pw devptr
		esize, typ := 4, int32(cudaR32F)
		if b.bf16 {
			pa, pw = op.bf16(a), op.bf16(w)
			esize, typ = 2, cudaR16BF
		} else {
			pa, pw = op.f32(a), op.in(w)
		}
		if op.err != nil {
			return
		}
		beta := &b.zero
		if o.Accumulate {
			beta = &b.one
		}
		// cuBLAS is column-major: the row-major (M, N) dst is the
		// column-major (N, M) dstᵀ = op(w)ᵀ·op(a)ᵀ, and a row-major array
		// read as column-major is its transpose, so the operands go in
		// swapped with their own transposes.
		opW, ldw := int32(cublasOpN), int32(n)
		if o.TransB {
			opW, ldw = cublasOpT, int32(k)
		}
		opA, lda := int32(cublasOpN), int32(k)
		if o.TransA {
			opA, lda = cublasOpT, int32(m)
		}
		prof := ""
		if b.prof != nil {
			prof = fmt.Sprintf("gemm %s%s%s %dx%dx%d", map[bool]string{true: "bf16", false: "f32"}[b.bf16],
				map[bool]string{true: " tA", false: ""}[o.TransA], map[bool]string{true: " tB", false: ""}[o.TransB], m, n, k)
		}
		for s := 0; s < batch; s++ {
			var st int32
			if prof != "" {
				var ps int32 // declared here: only a profiled product captures it
				b.timed(prof, func() { ps = b.gemm(opW, opA, m, n, k, pw, pa, pd, esize, typ, ldw, lda, beta, s) })
				st = ps
			} else {
				st = b.gemm(opW, opA, m, n, k, pw, pa, pd, esize, typ, ldw, lda, beta, s)
			}
			if st != 0 {
				op.fail(fmt.Errorf("cublas gemm (%d, %d, %d, bf16 %v): %s", m, n, k, b.bf16, cublasError(st)))
				return
			}
		}
	}) {
		b.host(func() { b.cpu.MatMul(dst, a, w, o) }, dst, a, w, o)
	}
}

// gemm queues the product of batch item s for MatMul (operands swapped
// and transposed for cuBLAS's column-major order, as MatMul explains).
func (b *Backend) gemm(opW, opA int32, m, n, k int, pw, pa, pd devptr, esize int, typ int32, ldw, lda int32, beta *float32, s int) int32 {
	if b.bf16 {
		return b.blas.gemmEx(b.handle, opW, opA, int32(n), int32(m), int32(k), &b.one,
			pw+devptr(esize*s*k*n), typ, ldw, pa+devptr(esize*s*m*k), typ, lda, beta, pd+devptr(4*s*m*n), cudaR32F, int32(n),
			cublasCompute32F, cublasGemmDflt)
	}
	return b.blas.sgemm(b.handle, opW, opA, int32(n), int32(m), int32(k), &b.one,
		pw+devptr(4*s*k*n), ldw, pa+devptr(4*s*m*k), lda, beta, pd+devptr(4*s*m*n), int32(n))
}

func (b *Backend) Embedding(dst *tensor.Tensor, ids []int32, table *tensor.Tensor) {
	C, V := table.Cols(), table.Rows()
	if dst.Numel() != len(ids)*C {
		panic(fmt.Sprintf("cuda.Embedding: dst %v for %d ids of width %d", dst.Shape, len(ids), C))
	}
	for _, id := range ids {
		if id < 0 || int(id) >= V {
			panic(fmt.Sprintf("cuda.Embedding: id %d outside table of %d rows", id, V))
		}
	}
	if len(ids) == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch1(b.k.embeddingFwd, len(ids)*C, o.out(dst), o.ints(ids), o.in(table), int32(len(ids)), int32(C))
	}) {
		b.host(func() { b.cpu.Embedding(dst, ids, table) }, dst, ids, table)
	}
}

func (b *Backend) EmbeddingBackward(dtable *tensor.Tensor, ids []int32, dy *tensor.Tensor) {
	C, V := dtable.Cols(), dtable.Rows()
	if dy.Numel() != len(ids)*C {
		panic(fmt.Sprintf("cuda.EmbeddingBackward: dy %v for %d ids of width %d", dy.Shape, len(ids), C))
	}
	for _, id := range ids {
		if id < 0 || int(id) >= V {
			panic(fmt.Sprintf("cuda.EmbeddingBackward: id %d outside table of %d rows", id, V))
		}
	}
	if len(ids) == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch1(b.k.embeddingBwd, len(ids)*C, o.inout(dtable), o.ints(ids), o.f32(dy), int32(len(ids)), int32(C))
	}) {
		b.host(func() { b.cpu.EmbeddingBackward(dtable, ids, dy) }, dtable, ids, dy)
	}
}

func (b *Backend) LayerNorm(dst, mean, rstd, x, w, bias *tensor.Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	mustSame("LayerNorm", dst, x)
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch(b.k.layerNormFwd, [3]uint32{uint32(N), 1, 1}, rowBlock(C, 256), 0,
			o.out(dst), o.out(mean), o.out(rstd), o.f32(x), o.in(w), o.in(bias), int32(N), int32(C), eps)
	}) {
		b.host(func() { b.cpu.LayerNorm(dst, mean, rstd, x, w, bias, eps) }, dst, mean, rstd, x, w, bias, eps)
	}
}

func (b *Backend) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	mustSame("LayerNormBackward", dx, x)
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		px, pdy, pm, pr := o.f32(x), o.f32(dy), o.f32(mean), o.f32(rstd)
		o.launch(b.k.layerNormBwdDx, [3]uint32{uint32(N), 1, 1}, rowBlock(C, 256), 0,
			o.inout(dx), pdy, px, o.in(w), pm, pr, int32(N), int32(C))
		if dw != nil || db != nil {
			g, rowsPer := colGrid(N, C)
			o.launch(b.k.layerNormBwdDwDb, g, 256, 0, o.inout(dw), o.inout(db), pdy, px, pm, pr, int32(N), int32(C), rowsPer)
		}
	}) {
		b.host(func() { b.cpu.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd) }, dx, dw, db, dy, x, w, mean, rstd)
	}
}

func (b *Backend) RMSNorm(dst, rstd, x, w *tensor.Tensor, eps float32) {
	N, C := x.Rows(), x.Cols()
	mustSame("RMSNorm", dst, x)
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch(b.k.rmsNormFwd, [3]uint32{uint32(N), 1, 1}, rowBlock(C, 256), 0,
			o.out(dst), o.out(rstd), o.f32(x), o.in(w), int32(N), int32(C), eps)
	}) {
		b.host(func() { b.cpu.RMSNorm(dst, rstd, x, w, eps) }, dst, rstd, x, w, eps)
	}
}

func (b *Backend) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	mustSame("RMSNormBackward", dx, x)
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		px, pdy, pr := o.f32(x), o.f32(dy), o.f32(rstd)
		o.launch(b.k.rmsNormBwdDx, [3]uint32{uint32(N), 1, 1}, rowBlock(C, 256), 0,
			o.inout(dx), pdy, px, o.in(w), pr, int32(N), int32(C))
		if dw != nil {
			g, rowsPer := colGrid(N, C)
			o.launch(b.k.rmsNormBwdDw, g, 256, 0, o.inout(dw), pdy, px, pr, int32(N), int32(C), rowsPer)
		}
	}) {
		b.host(func() { b.cpu.RMSNormBackward(dx, dw, dy, x, w, rstd) }, dx, dw, dy, x, w, rstd)
	}
}

func (b *Backend) GELU(dst, x *tensor.Tensor) {
	mustSame("GELU", dst, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.geluFwd, n, o.out(dst), o.f32(x), int64(n)) }) {
		b.host(func() { b.cpu.GELU(dst, x) }, dst, x)
	}
}

func (b *Backend) GELUBackward(dx, dy, x *tensor.Tensor) {
	mustSame("GELUBackward", dx, x)
	mustSame("GELUBackward", dy, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.geluBwd, n, o.inout(dx), o.f32(dy), o.f32(x), int64(n)) }) {
		b.host(func() { b.cpu.GELUBackward(dx, dy, x) }, dx, dy, x)
	}
}

func (b *Backend) SwiGLU(dst, gate, up *tensor.Tensor) {
	b.gated("SwiGLU", b.k.swigluFwd, b.cpu.SwiGLU, dst, gate, up)
}

func (b *Backend) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	b.gatedBackward("SwiGLUBackward", b.k.swigluBwd, b.cpu.SwiGLUBackward, dgate, dup, dy, gate, up)
}

// GeGLU is Gemma's MLP: the same shape of op as SwiGLU with tanh GELU.
func (b *Backend) GeGLU(dst, gate, up *tensor.Tensor) {
	b.gated("GeGLU", b.k.gegluFwd, b.cpu.GeGLU, dst, gate, up)
}

func (b *Backend) GeGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	b.gatedBackward("GeGLUBackward", b.k.gegluBwd, b.cpu.GeGLUBackward, dgate, dup, dy, gate, up)
}

// gated runs a gated activation dst = act(gate) * up with kernel k (the
// CPU's cpu where the device cannot).
func (b *Backend) gated(name string, k uintptr, cpu func(dst, gate, up *tensor.Tensor), dst, gate, up *tensor.Tensor) {
	mustSame(name, gate, up)
	mustSame(name, dst, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(k, n, o.out(dst), o.f32(gate), o.f32(up), int64(n)) }) {
		b.host(func() { cpu(dst, gate, up) }, dst, gate, up)
	}
}

// gatedBackward adds the gradients of a gated activation into dgate and
// dup with kernel k (the CPU's cpu where the device cannot).
func (b *Backend) gatedBackward(name string, k uintptr, cpu func(dgate, dup, dy, gate, up *tensor.Tensor), dgate, dup, dy, gate, up *tensor.Tensor) {
	mustSame(name, gate, up)
	mustSame(name, dgate, gate)
	mustSame(name, dup, gate)
	mustSame(name, dy, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) {
		o.launch1(k, n, o.inout(dgate), o.inout(dup), o.f32(dy), o.f32(gate), o.f32(up), int64(n))
	}) {
		b.host(func() { cpu(dgate, dup, dy, gate, up) }, dgate, dup, dy, gate, up)
	}
}

// Softcap is Gemma 2's logit cap, c·tanh(x/c).
func (b *Backend) Softcap(dst, x *tensor.Tensor, c float32) {
	mustSame("Softcap", dst, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.softcapFwd, n, o.out(dst), o.f32(x), c, int64(n)) }) {
		b.host(func() { b.cpu.Softcap(dst, x, c) }, dst, x)
	}
}

// ReLU is max(x, 0).
func (b *Backend) ReLU(dst, x *tensor.Tensor) {
	mustSame("ReLU", dst, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.reluFwd, n, o.out(dst), o.f32(x), int64(n)) }) {
		b.host(func() { b.cpu.ReLU(dst, x) }, dst, x)
	}
}

func (b *Backend) ReLUBackward(dx, dy, y *tensor.Tensor) {
	mustSame("ReLUBackward", dx, y)
	mustSame("ReLUBackward", dy, y)
	n := y.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.reluBwd, n, o.inout(dx), o.f32(dy), o.f32(y), int64(n)) }) {
		b.host(func() { b.cpu.ReLUBackward(dx, dy, y) }, dx, dy, y)
	}
}

func (b *Backend) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	mustSame("SoftcapBackward", dx, y)
	mustSame("SoftcapBackward", dy, y)
	n := y.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.softcapBwd, n, o.inout(dx), o.f32(dy), o.f32(y), c, int64(n)) }) {
		b.host(func() { b.cpu.SoftcapBackward(dx, dy, y, c) }, dx, dy, y)
	}
}

// ropeCheck validates RoPE's arguments and returns the head count.
func ropeCheck(x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) int {
	D, N := tab.Dim, len(pos)
	if N == 0 || D == 0 {
		return 0
	}
	H := x.Numel() / (N * D)
	if H*N*D != x.Numel() || D%2 != 0 {
		panic(fmt.Sprintf("cuda.RoPE: x %v is not (%d, H, %d)", x.Shape, N, D))
	}
	for _, p := range pos {
		if p < 0 || int(p) >= tab.MaxPos {
			panic(fmt.Sprintf("cuda.RoPE: position %d outside table of %d", p, tab.MaxPos))
		}
	}
	if len(tab.Cos) < tab.MaxPos*D/2 || len(tab.Sin) < tab.MaxPos*D/2 {
		panic(fmt.Sprintf("cuda.RoPE: table of %d positions × %d has %d cos and %d sin values", tab.MaxPos, D/2, len(tab.Cos), len(tab.Sin)))
	}
	return H
}

func (b *Backend) rope(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable, sign float32, acc bool) bool {
	H := ropeCheck(x, pos, tab)
	mustSame("RoPE", dst, x)
	if H == 0 {
		return true
	}
	N, D := len(pos), tab.Dim
	return b.run(func(o *op) {
		px := o.f32(x)
		var pd devptr
		if acc {
			pd = o.inout(dst)
		} else {
			pd = o.out(dst)
		}
		half := tab.MaxPos * D / 2
		cs := o.constF32(tab.Cos[:half]) // tables are immutable: uploaded once
		sn := o.constF32(tab.Sin[:half])
		a := int32(0)
		if acc {
			a = 1
		}
		o.launch1(b.k.rope, N*H*D/2, pd, px, o.ints(pos), cs, sn, int32(N), int32(H), int32(D), sign, a)
	})
}

func (b *Backend) RoPE(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	if !b.rope(dst, x, pos, tab, 1, false) {
		b.host(func() { b.cpu.RoPE(dst, x, pos, tab) }, dst, x, pos, tab)
	}
}

func (b *Backend) RoPEBackward(dx, dy *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	if !b.rope(dx, dy, pos, tab, -1, true) {
		b.host(func() { b.cpu.RoPEBackward(dx, dy, pos, tab) }, dx, dy, pos, tab)
	}
}

func (b *Backend) CrossEntropy(loss, lse, logits *tensor.Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	if len(targets) != N {
		panic(fmt.Sprintf("cuda.CrossEntropy: %d targets for %d rows", len(targets), N))
	}
	for _, y := range targets {
		if int(y) >= V {
			panic(fmt.Sprintf("cuda.CrossEntropy: target %d outside %d classes", y, V))
		}
	}
	if N == 0 || V == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch(b.k.ceFwd, [3]uint32{uint32(N), 1, 1}, rowBlock(V, 512), 0,
			o.out(loss), o.out(lse), o.f32(logits), o.ints(targets), int32(N), int32(V))
	}) {
		b.host(func() { b.cpu.CrossEntropy(loss, lse, logits, targets) }, loss, lse, logits, targets)
	}
}

func (b *Backend) CrossEntropyBackward(dlogits, dloss, logits, lse *tensor.Tensor, targets []int32) {
	N, V := logits.Rows(), logits.Cols()
	mustSame("CrossEntropyBackward", dlogits, logits)
	if len(targets) != N {
		panic(fmt.Sprintf("cuda.CrossEntropyBackward: %d targets for %d rows", len(targets), N))
	}
	for _, y := range targets {
		if int(y) >= V {
			panic(fmt.Sprintf("cuda.CrossEntropyBackward: target %d outside %d classes", y, V))
		}
	}
	if N == 0 || V == 0 {
		return
	}
	if !b.run(func(o *op) {
		o.launch(b.k.ceBwd, [3]uint32{uint32(N), 1, 1}, rowBlock(V, 512), 0,
			o.inout(dlogits), o.f32(dloss), o.f32(logits), o.f32(lse), o.ints(targets), int32(N), int32(V))
	}) {
		b.host(func() { b.cpu.CrossEntropyBackward(dlogits, dloss, logits, lse, targets) }, dlogits, dloss, logits, lse, targets)
	}
}

func (b *Backend) Add(dst, a, c *tensor.Tensor) {
	mustSame("Add", a, c)
	mustSame("Add", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.add, n, o.out(dst), o.f32(a), o.f32(c), int64(n)) }) {
		b.host(func() { b.cpu.Add(dst, a, c) }, dst, a, c)
	}
}

func (b *Backend) Mul(dst, a, c *tensor.Tensor) {
	mustSame("Mul", a, c)
	mustSame("Mul", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.mul, n, o.out(dst), o.f32(a), o.f32(c), int64(n)) }) {
		b.host(func() { b.cpu.Mul(dst, a, c) }, dst, a, c)
	}
}

func (b *Backend) AddScaled(dst, a *tensor.Tensor, s float32) {
	mustSame("AddScaled", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.addScaled, n, o.inout(dst), o.f32(a), s, int64(n)) }) {
		b.host(func() { b.cpu.AddScaled(dst, a, s) }, dst, a, s)
	}
}

func (b *Backend) AddBias(dst, x, bias *tensor.Tensor) {
	mustSame("AddBias", dst, x)
	n, C := x.Numel(), x.Cols()
	if bias.Numel() != C {
		panic(fmt.Sprintf("cuda.AddBias: bias %v for x %v", bias.Shape, x.Shape))
	}
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.addBias, n, o.out(dst), o.f32(x), o.in(bias), int64(n), int32(C)) }) {
		b.host(func() { b.cpu.AddBias(dst, x, bias) }, dst, x, bias)
	}
}

func (b *Backend) SumRows(dst, x *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	if dst.Numel() != C {
		panic(fmt.Sprintf("cuda.SumRows: dst %v for x %v", dst.Shape, x.Shape))
	}
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		g, rowsPer := colGrid(N, C)
		o.launch(b.k.sumRows, g, 256, 0, o.inout(dst), o.f32(x), int32(N), int32(C), rowsPer)
	}) {
		b.host(func() { b.cpu.SumRows(dst, x) }, dst, x)
	}
}

func (b *Backend) SplitCols(dsts []*tensor.Tensor, x *tensor.Tensor) {
	N, C := x.Rows(), x.Cols()
	total := 0
	for _, d := range dsts {
		if d.Rows() != N {
			panic(fmt.Sprintf("cuda.SplitCols: part %v for x %v", d.Shape, x.Shape))
		}
		total += d.Cols()
	}
	if total != C {
		panic(fmt.Sprintf("cuda.SplitCols: parts of %d columns for x %v", total, x.Shape))
	}
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		px := o.f32(x)
		off := 0
		for _, d := range dsts {
			w := d.Cols()
			o.launch1(b.k.copyCols, N*w, o.out(d), int32(w), int32(0), px, int32(C), int32(off), int32(N), int32(w))
			off += w
		}
	}) {
		b.host(func() { b.cpu.SplitCols(dsts, x) }, dsts, x)
	}
}

func (b *Backend) ConcatCols(dst *tensor.Tensor, srcs []*tensor.Tensor) {
	N, C := dst.Rows(), dst.Cols()
	total := 0
	for _, s := range srcs {
		if s.Rows() != N {
			panic(fmt.Sprintf("cuda.ConcatCols: part %v for dst %v", s.Shape, dst.Shape))
		}
		total += s.Cols()
	}
	if total != C {
		panic(fmt.Sprintf("cuda.ConcatCols: parts of %d columns for dst %v", total, dst.Shape))
	}
	if N == 0 || C == 0 {
		return
	}
	if !b.run(func(o *op) {
		pd := o.out(dst)
		off := 0
		for _, s := range srcs {
			w := s.Cols()
			o.launch1(b.k.copyCols, N*w, pd, int32(C), int32(off), o.f32(s), int32(w), int32(0), int32(N), int32(w))
			off += w
		}
	}) {
		b.host(func() { b.cpu.ConcatCols(dst, srcs) }, dst, srcs)
	}
}

func (b *Backend) AdamW(p, g, m, v *tensor.Tensor, o tensor.AdamWOpts) {
	mustSame("AdamW", p, g)
	mustSame("AdamW", p, m)
	mustSame("AdamW", p, v)
	n := p.Numel()
	// The scalars exactly as the CPU computes them.
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.Step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.Step))
	decay := float32(1 - float64(o.LR)*float64(o.WeightDecay))
	stepSize := float32(float64(o.LR) / bc1)
	bc2s := float32(math.Sqrt(bc2))
	if n == 0 || !b.run(func(op *op) {
		op.launch1(b.k.adamw, n, op.inout(p), op.f32(g), op.inout(m), op.inout(v), int64(n),
			decay, stepSize, bc2s, o.Beta1, o.Beta2, o.Eps)
	}) {
		b.host(func() { b.cpu.AdamW(p, g, m, v, o) }, p, g, m, v, o)
	}
}

// AdamWAll updates every parameter with one launch of adamw_multi (the
// arithmetic of adamw, tensor by tensor): its table of addresses, sizes
// and weight decays is the same from step to step (the learning rate is an
// argument), so the int array cache uploads it once. Tensors not all on the device go one by one.
func (b *Backend) AdamWAll(ps, gs, ms, vs []*tensor.Tensor, decay []float32, o tensor.AdamWOpts) {
	if len(gs) != len(ps) || len(ms) != len(ps) || len(vs) != len(ps) || len(decay) != len(ps) {
		panic(fmt.Sprintf("cuda.AdamWAll: %d, %d, %d, %d tensors and %d decays", len(ps), len(gs), len(ms), len(vs), len(decay)))
	}
	maxN, resident := 0, true
	for i, p := range ps {
		mustSame("AdamWAll", p, gs[i])
		mustSame("AdamWAll", p, ms[i])
		mustSame("AdamWAll", p, vs[i])
		for _, t := range []*tensor.Tensor{p, gs[i], ms[i], vs[i]} {
			resident = resident && t.OnDevice() && t.Dev.Mem == tensor.Memory(b) && t.DType == tensor.F32
		}
		maxN = max(maxN, p.Numel())
	}
	one := func() {
		for i, p := range ps {
			oi := o
			oi.WeightDecay = decay[i]
			b.AdamW(p, gs[i], ms[i], vs[i], oi)
		}
	}
	if !resident || maxN == 0 || len(ps) > 65535 {
		one()
		return
	}
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.Step))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.Step))
	stepSize := float32(float64(o.LR) / bc1)
	bc2s := float32(math.Sqrt(bc2))
	tab := b.adamTab[:0]
	for i, p := range ps {
		tab = append(tab, int64(p.Dev.Ptr), int64(gs[i].Dev.Ptr), int64(ms[i].Dev.Ptr), int64(vs[i].Dev.Ptr),
			int64(p.Numel()), int64(math.Float32bits(decay[i])))
	}
	b.adamTab = tab
	words := unsafe.Slice((*int32)(unsafe.Pointer(&tab[0])), 2*len(tab))
	if !b.run(func(op *op) {
		g := [3]uint32{min(grid(maxN), 1024), uint32(len(ps)), 1}
		op.devOut = true
		op.launch(b.k.adamwMulti, g, 256, 0, op.ints(words), o.LR, stepSize, bc2s, o.Beta1, o.Beta2, o.Eps)
	}) {
		one()
	}
}

// sumSquaresBlocks is the fixed grid of SumSquares: its partial sums are
// added on the host in order.
const sumSquaresBlocks = 512

func (b *Backend) SumSquares(x *tensor.Tensor) float64 {
	n := x.Numel()
	if n == 0 {
		return 0
	}
	nb := min(sumSquaresBlocks, (n+255)/256)
	part := make([]float64, nb)
	if !b.run(func(o *op) {
		pp := o.result(ptrOf(part), uintptr(8*nb))
		o.launch(b.k.sumSquares, [3]uint32{uint32(nb), 1, 1}, 256, 0, pp, o.f32(x), int64(n))
	}) {
		var s float64
		b.host(func() { s = b.cpu.SumSquares(x) }, x)
		return s
	}
	var s float64
	for _, v := range part {
		s += v
	}
	return s
}

// ClipNorm clips the global L2 norm of xs on the device (optim.NormClipper):
// sum_squares writes each tensor's partial sums side by side, clip_norm
// adds them all in a fixed order into norm and the scale factor, and
// scale_by applies the factor; nothing is read on the host, unless norm is
// a host tensor.
func (b *Backend) ClipNorm(norm *tensor.Tensor, xs []*tensor.Tensor, maxNorm float32) {
	if norm.Numel() != 1 || norm.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda.ClipNorm: norm %v %v, want one float32", norm.DType, norm.Shape))
	}
	total := 0
	for _, x := range xs {
		total += min(sumSquaresBlocks, (x.Numel()+255)/256)
	}
	if !b.run(func(o *op) {
		if total == 0 {
			o.fail(errDeclined)
			return
		}
		part := o.tmp(uintptr(8 * total))
		scale := o.tmp(4)
		off := 0
		for _, x := range xs {
			n := x.Numel()
			nb := min(sumSquaresBlocks, (n+255)/256)
			if nb == 0 {
				continue
			}
			o.launch(b.k.sumSquares, [3]uint32{uint32(nb), 1, 1}, 256, 0, part+devptr(8*off), o.f32(x), int64(n))
			off += nb
		}
		o.launch(b.k.clipNorm, [3]uint32{1, 1, 1}, 32, 0, o.out(norm), scale, part, int32(total), maxNorm)
		for _, x := range xs {
			if n := x.Numel(); n > 0 {
				o.launch1(b.k.scaleBy, n, o.inout(x), scale, int64(n))
			}
		}
	}) {
		b.host(func() {
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
		}, norm, xs)
	}
}

// ArgMax picks each row's first largest value on the device (greedy
// decoding), so a decode step reads back N token ids, not N·V logits.
func (b *Backend) ArgMax(dst []int32, x *tensor.Tensor) {
	N, V := x.Rows(), x.Cols()
	if len(dst) != N || x.DType != tensor.F32 {
		panic(fmt.Sprintf("cuda.ArgMax: %d ids for %v %v", len(dst), x.DType, x.Shape))
	}
	if N == 0 || V == 0 {
		clear(dst)
		return
	}
	if !b.run(func(o *op) {
		o.launch(b.k.argmaxRows, [3]uint32{uint32(N), 1, 1}, rowBlock(V, 256), 0, o.result(ptrOf(dst), uintptr(4*N)), o.f32(x), int32(N), int32(V))
	}) {
		b.host(func() { tensor.ArgMaxRows(dst, x) }, x)
	}
}
