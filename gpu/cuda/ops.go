//go:build linux && !android

package cuda

import (
	"fmt"
	"math"

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
		b.cpu.MatMul(dst, a, w, o) // panics with the CPU's message
		return
	}
	dn, an, wn := dst.Numel(), a.Numel(), w.Numel()
	n := dst.Cols()
	if dn%batch != 0 || an%batch != 0 || wn%batch != 0 || n == 0 || dn/batch/n == 0 {
		b.cpu.MatMul(dst, a, w, o)
		return
	}
	m := dn / batch / n
	if an/batch%m != 0 || wn/batch != an/batch/m*n || len(dst.F32) != dn || len(a.F32) != an {
		b.cpu.MatMul(dst, a, w, o) // the CPU names the mismatch
		return
	}
	k := an / batch / m
	if k == 0 {
		if !o.Accumulate {
			clear(dst.F32)
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
		for s := 0; s < batch; s++ {
			var st int32
			if b.bf16 {
				st = b.blas.gemmEx(b.handle, opW, opA, int32(n), int32(m), int32(k), &b.one,
					pw+devptr(esize*s*k*n), typ, ldw, pa+devptr(esize*s*m*k), typ, lda, beta, pd+devptr(4*s*m*n), cudaR32F, int32(n),
					cublasCompute32F, cublasGemmDflt)
			} else {
				st = b.blas.sgemm(b.handle, opW, opA, int32(n), int32(m), int32(k), &b.one,
					pw+devptr(4*s*k*n), ldw, pa+devptr(4*s*m*k), lda, beta, pd+devptr(4*s*m*n), int32(n))
			}
			if st != 0 {
				op.fail(fmt.Errorf("cublas gemm (%d, %d, %d, bf16 %v): %s", m, n, k, b.bf16, cublasError(st)))
				return
			}
		}
	}) {
		b.cpu.MatMul(dst, a, w, o)
	}
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
		b.cpu.Embedding(dst, ids, table)
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
		b.cpu.EmbeddingBackward(dtable, ids, dy)
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
		b.cpu.LayerNorm(dst, mean, rstd, x, w, bias, eps)
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
		b.cpu.LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd)
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
		b.cpu.RMSNorm(dst, rstd, x, w, eps)
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
		b.cpu.RMSNormBackward(dx, dw, dy, x, w, rstd)
	}
}

func (b *Backend) GELU(dst, x *tensor.Tensor) {
	mustSame("GELU", dst, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.geluFwd, n, o.out(dst), o.f32(x), int64(n)) }) {
		b.cpu.GELU(dst, x)
	}
}

func (b *Backend) GELUBackward(dx, dy, x *tensor.Tensor) {
	mustSame("GELUBackward", dx, x)
	mustSame("GELUBackward", dy, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.geluBwd, n, o.inout(dx), o.f32(dy), o.f32(x), int64(n)) }) {
		b.cpu.GELUBackward(dx, dy, x)
	}
}

func (b *Backend) SwiGLU(dst, gate, up *tensor.Tensor) {
	mustSame("SwiGLU", gate, up)
	mustSame("SwiGLU", dst, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.swigluFwd, n, o.out(dst), o.f32(gate), o.f32(up), int64(n)) }) {
		b.cpu.SwiGLU(dst, gate, up)
	}
}

func (b *Backend) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	mustSame("SwiGLUBackward", gate, up)
	mustSame("SwiGLUBackward", dgate, gate)
	mustSame("SwiGLUBackward", dup, gate)
	mustSame("SwiGLUBackward", dy, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) {
		o.launch1(b.k.swigluBwd, n, o.inout(dgate), o.inout(dup), o.f32(dy), o.f32(gate), o.f32(up), int64(n))
	}) {
		b.cpu.SwiGLUBackward(dgate, dup, dy, gate, up)
	}
}

func (b *Backend) GeGLU(dst, gate, up *tensor.Tensor) {
	mustSame("GeGLU", gate, up)
	mustSame("GeGLU", dst, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.gegluFwd, n, o.out(dst), o.f32(gate), o.f32(up), int64(n)) }) {
		b.cpu.GeGLU(dst, gate, up)
	}
}

func (b *Backend) GeGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	mustSame("GeGLUBackward", gate, up)
	mustSame("GeGLUBackward", dgate, gate)
	mustSame("GeGLUBackward", dup, gate)
	mustSame("GeGLUBackward", dy, gate)
	n := gate.Numel()
	if n == 0 || !b.run(func(o *op) {
		o.launch1(b.k.gegluBwd, n, o.inout(dgate), o.inout(dup), o.f32(dy), o.f32(gate), o.f32(up), int64(n))
	}) {
		b.cpu.GeGLUBackward(dgate, dup, dy, gate, up)
	}
}

func (b *Backend) Softcap(dst, x *tensor.Tensor, c float32) {
	mustSame("Softcap", dst, x)
	n := x.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.softcapFwd, n, o.out(dst), o.f32(x), c, int64(n)) }) {
		b.cpu.Softcap(dst, x, c)
	}
}

func (b *Backend) SoftcapBackward(dx, dy, y *tensor.Tensor, c float32) {
	mustSame("SoftcapBackward", dx, y)
	mustSame("SoftcapBackward", dy, y)
	n := y.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.softcapBwd, n, o.inout(dx), o.f32(dy), o.f32(y), c, int64(n)) }) {
		b.cpu.SoftcapBackward(dx, dy, y, c)
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
		cs := o.upload(ptrOf(tab.Cos), uintptr(4*half))
		sn := o.upload(ptrOf(tab.Sin), uintptr(4*half))
		a := int32(0)
		if acc {
			a = 1
		}
		o.launch1(b.k.rope, N*H*D/2, pd, px, o.ints(pos), cs, sn, int32(N), int32(H), int32(D), sign, a)
	})
}

func (b *Backend) RoPE(dst, x *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	if !b.rope(dst, x, pos, tab, 1, false) {
		b.cpu.RoPE(dst, x, pos, tab)
	}
}

func (b *Backend) RoPEBackward(dx, dy *tensor.Tensor, pos []int32, tab *tensor.RoPETable) {
	if !b.rope(dx, dy, pos, tab, -1, true) {
		b.cpu.RoPEBackward(dx, dy, pos, tab)
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
		b.cpu.CrossEntropy(loss, lse, logits, targets)
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
		b.cpu.CrossEntropyBackward(dlogits, dloss, logits, lse, targets)
	}
}

func (b *Backend) Add(dst, a, c *tensor.Tensor) {
	mustSame("Add", a, c)
	mustSame("Add", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.add, n, o.out(dst), o.f32(a), o.f32(c), int64(n)) }) {
		b.cpu.Add(dst, a, c)
	}
}

func (b *Backend) Mul(dst, a, c *tensor.Tensor) {
	mustSame("Mul", a, c)
	mustSame("Mul", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.mul, n, o.out(dst), o.f32(a), o.f32(c), int64(n)) }) {
		b.cpu.Mul(dst, a, c)
	}
}

func (b *Backend) AddScaled(dst, a *tensor.Tensor, s float32) {
	mustSame("AddScaled", dst, a)
	n := a.Numel()
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.addScaled, n, o.inout(dst), o.f32(a), s, int64(n)) }) {
		b.cpu.AddScaled(dst, a, s)
	}
}

func (b *Backend) AddBias(dst, x, bias *tensor.Tensor) {
	mustSame("AddBias", dst, x)
	n, C := x.Numel(), x.Cols()
	if bias.Numel() != C {
		panic(fmt.Sprintf("cuda.AddBias: bias %v for x %v", bias.Shape, x.Shape))
	}
	if n == 0 || !b.run(func(o *op) { o.launch1(b.k.addBias, n, o.out(dst), o.f32(x), o.in(bias), int64(n), int32(C)) }) {
		b.cpu.AddBias(dst, x, bias)
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
		b.cpu.SumRows(dst, x)
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
		b.cpu.SplitCols(dsts, x)
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
		b.cpu.ConcatCols(dst, srcs)
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
		b.cpu.AdamW(p, g, m, v, o)
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
		return b.cpu.SumSquares(x)
	}
	var s float64
	for _, v := range part {
		s += v
	}
	return s
}
