package tensor

import (
	"fmt"
	"math"
)

// Quantized storage for frozen weights (QLoRA-style fine-tuning): the
// values are held as small integer codes with float32 scales, and kernels
// dequantise them as they read them (gemm's packing, gemv's rows), so a
// quantized weight is never widened whole.
//
//	Q8   int8 per output channel: one scale per row, x ≈ code·scale,
//	     scale = max|row|/127, codes rounded to nearest in [-127, 127].
//	NF4  4-bit NormalFloat (Dettmers et al. 2023) in blocks of 64
//	     consecutive elements: one absmax scale per block, x ≈ nf4[code]·absmax,
//	     code the nearest of the 16 NF4 levels; two codes per byte, the
//	     element with the even index in the low nibble.

// NF4Block is the number of consecutive elements that share an NF4 scale.
const NF4Block = 64

// nf4Levels are the 16 NF4 values: quantiles of a standard normal
// distribution scaled to [-1, 1], with an exact zero.
var nf4Levels = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// Quantized reports whether d is a quantized storage type.
func (d DType) Quantized() bool { return d == Q8 || d == NF4 || d.isGGML() }

// Quantize returns t (any type, at least 1-D) stored as Q8 or NF4.
func Quantize(t *Tensor, dt DType) (*Tensor, error) {
	src := t.Float32s()
	n := len(src)
	out := &Tensor{Shape: append(Shape(nil), t.Shape...), DType: dt}
	switch dt {
	case Q8:
		rows, cols := t.Rows(), t.Cols()
		out.Q = make([]byte, n)
		out.Scale = make([]float32, rows)
		for r := 0; r < rows; r++ {
			row := src[r*cols : (r+1)*cols]
			var amax float32
			for _, v := range row {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			s := amax / 127
			out.Scale[r] = s
			if s == 0 {
				continue
			}
			inv := 1 / s
			for i, v := range row {
				q := int(math.RoundToEven(float64(v * inv)))
				q = min(127, max(-127, q))
				out.Q[r*cols+i] = byte(int8(q))
			}
		}
	case NF4:
		out.Q = make([]byte, (n+1)/2)
		out.Scale = make([]float32, (n+NF4Block-1)/NF4Block)
		for b := range out.Scale {
			blk := src[b*NF4Block : min(n, (b+1)*NF4Block)]
			var amax float32
			for _, v := range blk {
				amax = max(amax, float32(math.Abs(float64(v))))
			}
			out.Scale[b] = amax
			inv := float32(0)
			if amax > 0 {
				inv = 1 / amax
			}
			for i, v := range blk {
				c := nearestNF4(v * inv)
				j := b*NF4Block + i
				out.Q[j/2] |= c << (4 * uint(j&1))
			}
		}
	default:
		if dt.isGGML() {
			return QuantizeGGML(t, dt)
		}
		return nil, fmt.Errorf("tensor.Quantize: %v is not a quantized type (Q8, NF4 or a GGML block type)", dt)
	}
	return out, nil
}

// nearestNF4 returns the code of the NF4 level nearest to x in [-1, 1].
func nearestNF4(x float32) byte {
	// The levels are sorted: binary search for the first level >= x, then
	// take the nearer of it and its left neighbour.
	lo, hi := 0, 15
	for lo < hi {
		mid := (lo + hi) / 2
		if nf4Levels[mid] < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo > 0 && x-nf4Levels[lo-1] <= nf4Levels[lo]-x {
		lo--
	}
	return byte(lo)
}

// dequant writes len(dst) elements of the quantized t from flat offset off.
func dequant(dst []float32, t *Tensor, off int) {
	if t.DType.isGGML() {
		dequantGGML(dst, t, off)
		return
	}
	switch t.DType {
	case Q8:
		cols := t.Cols()
		for i := 0; i < len(dst); {
			r, c := (off+i)/cols, (off+i)%cols
			s := t.Scale[r]
			m := min(len(dst)-i, cols-c)
			q := t.Q[off+i : off+i+m]
			d := dst[i : i+m]
			for k, b := range q {
				d[k] = float32(int8(b)) * s
			}
			i += m
		}
	case NF4:
		for i := 0; i < len(dst); {
			j := off + i
			s := t.Scale[j/NF4Block]
			m := min(len(dst)-i, NF4Block-j%NF4Block)
			for k := 0; k < m; k++ {
				jj := j + k
				dst[i+k] = nf4Levels[(t.Q[jj/2]>>(4*uint(jj&1)))&15] * s
			}
			i += m
		}
	}
}

// StorageBytes is the memory the tensor's data takes, scales included.
func (t *Tensor) StorageBytes() int {
	if t.OnDevice() {
		return t.Numel() * t.DType.Size() // F32, the one device type made today
	}
	return 4*len(t.F32) + 2*len(t.Half) + len(t.Q) + 4*len(t.Scale)
}
