package tensor

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/tensor/tensortest"
)

// mmCase is one MatMul call to check against matMulNaive.
type mmCase struct {
	m, n, k        int
	transA, transB bool
	accumulate     bool
	batch          int
	dt             DType
}

func (tc mmCase) String() string {
	s := fmt.Sprintf("%dx%dx%d", tc.m, tc.n, tc.k)
	if tc.transA {
		s += "_tA"
	}
	if tc.transB {
		s += "_tB"
	}
	if tc.accumulate {
		s += "_acc"
	}
	if tc.batch > 1 {
		s += fmt.Sprintf("_b%d", tc.batch)
	}
	if tc.dt != F32 {
		s += "_" + tc.dt.String()
	}
	return s
}

// operands builds random a, b and a random starting dst for tc.
func (tc mmCase) operands(seed uint64) (dst, a, b *Tensor) {
	bt := max(tc.batch, 1)
	if tc.transA {
		a = FromF32(tensortest.Rand(seed, bt*tc.k*tc.m, 1), bt, tc.k, tc.m)
	} else {
		a = FromF32(tensortest.Rand(seed, bt*tc.m*tc.k, 1), bt, tc.m, tc.k)
	}
	if tc.transB {
		b = FromF32(tensortest.Rand(seed+1, bt*tc.n*tc.k, 1), bt, tc.n, tc.k)
	} else {
		b = FromF32(tensortest.Rand(seed+1, bt*tc.k*tc.n, 1), bt, tc.k, tc.n)
	}
	if tc.dt != F32 {
		b = b.Convert(tc.dt)
	}
	dst = FromF32(tensortest.Rand(seed+2, bt*tc.m*tc.n, 1), bt, tc.m, tc.n)
	return dst, a, b
}

func (tc mmCase) opts() MatMulOpts {
	return MatMulOpts{TransA: tc.transA, TransB: tc.transB, Accumulate: tc.accumulate, Batch: tc.batch}
}

// mmCases covers sizes 1, odd and prime, every transpose pair, Accumulate,
// Batch, and half-precision b.
func mmCases() []mmCase {
	var cs []mmCase
	sizes := [][3]int{
		{1, 1, 1}, {1, 7, 3}, {3, 1, 7}, {7, 3, 1}, {2, 2, 2},
		{17, 33, 65}, {33, 17, 129}, {65, 129, 17}, {8, 48, 256}, {9, 49, 257},
		{129, 65, 33}, {1, 129, 300}, {1, 300, 129}, {13, 100, 700}, {50, 97, 420},
	}
	for _, s := range sizes {
		for t := range 4 {
			cs = append(cs, mmCase{m: s[0], n: s[1], k: s[2], transA: t&1 != 0, transB: t&2 != 0, dt: F32})
		}
		cs = append(cs,
			mmCase{m: s[0], n: s[1], k: s[2], accumulate: true, transB: true},
			mmCase{m: s[0], n: s[1], k: s[2], accumulate: true, transA: true},
			mmCase{m: s[0], n: s[1], k: s[2], dt: F16, transB: true},
			mmCase{m: s[0], n: s[1], k: s[2], dt: BF16},
			mmCase{m: s[0], n: s[1], k: s[2], dt: BF16, transB: true, accumulate: true},
			mmCase{m: s[0], n: s[1], k: s[2], dt: F16},
		)
	}
	cs = append(cs,
		mmCase{m: 5, n: 9, k: 11, batch: 3},
		mmCase{m: 1, n: 9, k: 11, batch: 3, transB: true, dt: BF16},
		mmCase{m: 17, n: 7, k: 33, batch: 2, transA: true, accumulate: true},
		mmCase{m: 4, n: 20, k: 6, batch: 4, transB: true, dt: F16},
		mmCase{m: 0, n: 5, k: 3}, mmCase{m: 3, n: 5, k: 0}, mmCase{m: 3, n: 5, k: 0, accumulate: true},
	)
	return cs
}

func TestMatMulMatchesNaive(t *testing.T) {
	for _, kern := range kernelSets() {
		for _, threads := range []int{1, 3} {
			cpu := &CPU{Threads: threads}
			for i, tc := range mmCases() {
				t.Run(fmt.Sprintf("%s/t%d/%v", kern.name, threads, tc), func(t *testing.T) {
					dst, a, b := tc.operands(uint64(i))
					want := dst.Clone()
					matMulNaive(want, a, b, tc.opts())
					cpu.matMul(kern, dst, a, b, tc.opts())
					tensortest.Close(t, "dst", dst.F32, want.F32, 2e-5*math.Sqrt(float64(tc.k+1)))
				})
			}
		}
	}
}

func TestMatMulPublicUsesBestKernel(t *testing.T) {
	tc := mmCase{m: 20, n: 30, k: 40, transB: true}
	dst, a, b := tc.operands(7)
	want := dst.Clone()
	matMulNaive(want, a, b, tc.opts())
	NewCPU(0).MatMul(dst, a, b, tc.opts())
	tensortest.Close(t, "dst", dst.F32, want.F32, 1e-4)
	if got := CPUFeatures(); len(got) == 0 || got[len(got)-1] != "generic" {
		t.Errorf("CPUFeatures() = %v, want a list ending in generic", got)
	}
}

// TestMatMulFewRowsAsOne: with a transposed b and up to gemvMaxRows rows
// of a, each row of the product is bit for bit the product of that row
// alone, whatever the other rows (a decode step's sequences do not change
// each other's logits), for every weight type.
func TestMatMulFewRowsAsOne(t *testing.T) {
	for _, dt := range []DType{F32, F16, BF16, Q8, NF4} {
		for _, m := range []int{2, 5, gemvMaxRows} {
			t.Run(fmt.Sprintf("%v/m%d", dt, m), func(t *testing.T) {
				tc := mmCase{m: m, n: 75, k: 133, transB: true, dt: F32}
				dst, a, b := tc.operands(9)
				if dt != F32 {
					var err error
					if dt.Quantized() {
						b, err = Quantize(b, dt)
					} else {
						b = b.Convert(dt)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				cpu := &CPU{Threads: 3}
				cpu.MatMul(dst, a, b, tc.opts())
				for r := range m {
					row := New(1, tc.n)
					cpu.MatMul(row, FromF32(a.F32[r*tc.k:(r+1)*tc.k], 1, tc.k), b, tc.opts())
					if diff := cmp.Diff(row.F32, dst.F32[r*tc.n:(r+1)*tc.n]); diff != "" {
						t.Fatalf("row %d differs from its product alone (-alone +batched):\n%s", r, diff)
					}
				}
			})
		}
	}
}

// TestMatMulKernelsAgree checks the assembly kernels against the Go ones on
// shapes with several KC and NC blocks.
func TestMatMulKernelsAgree(t *testing.T) {
	ks := kernelSets()
	if len(ks) == 1 {
		t.Skip("only the generic kernels run here")
	}
	for _, tc := range []mmCase{
		{m: 37, n: 1000, k: 600, transB: true},
		{m: 64, n: 96, k: 777, transA: true, accumulate: true},
		{m: 1, n: 1000, k: 600, transB: true, dt: F16},
		{m: 1, n: 1000, k: 600, dt: BF16},
	} {
		t.Run(tc.String(), func(t *testing.T) {
			dst, a, b := tc.operands(3)
			want := dst.Clone()
			(&CPU{Threads: 2}).matMul(&goKernel, want, a, b, tc.opts())
			for _, k := range ks[:len(ks)-1] {
				got := dst.Clone()
				(&CPU{Threads: 2}).matMul(k, got, a, b, tc.opts())
				tensortest.Close(t, k.name+" vs generic", got.F32, want.F32, 1e-4)
			}
		})
	}
}

// TestMatMulThreadInvariance: any thread count gives the same bits.
func TestMatMulThreadInvariance(t *testing.T) {
	cases := []mmCase{
		{m: 70, n: 1000, k: 300, transB: true},                 // two NC blocks, KC block
		{m: 9, n: 200, k: 600, transA: true, accumulate: true}, // N split across tasks
		{m: 300, n: 50, k: 513},
		{m: 1, n: 3000, k: 200, transB: true, dt: BF16},
		{m: 1, n: 3000, k: 200, dt: F16},
	}
	for _, kern := range kernelSets() {
		for _, tc := range cases {
			t.Run(kern.name+"/"+tc.String(), func(t *testing.T) {
				dst, a, b := tc.operands(11)
				want := dst.Clone()
				(&CPU{Threads: 1}).matMul(kern, want, a, b, tc.opts())
				for _, th := range []int{2, 3, 8} {
					got := dst.Clone()
					(&CPU{Threads: th}).matMul(kern, got, a, b, tc.opts())
					for i := range got.F32 {
						if math.Float32bits(got.F32[i]) != math.Float32bits(want.F32[i]) {
							t.Fatalf("threads %d: element %d = %v, threads 1 gave %v", th, i, got.F32[i], want.F32[i])
						}
					}
				}
			})
		}
	}
}

func TestMatMulPanicsOnBadShapes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		dst, a, b *Tensor
		o         MatMulOpts
		want      string
	}{
		{"K mismatch", New(2, 3), New(2, 4), New(5, 3), MatMulOpts{}, "K*N"},
		{"missing transpose", New(2, 3), New(2, 4), New(3, 4), MatMulOpts{}, "last dim 4, want 3"},
		{"a layout", New(2, 3), New(4, 2), New(4, 3), MatMulOpts{}, "last dim 2, want 4"},
		{"M not dividing a", New(4, 3), New(3, 3), New(3, 3), MatMulOpts{}, "does not hold M=4"},
		{"batch", New(3, 3), New(3, 3), New(3, 3), MatMulOpts{Batch: 2}, "batch 2"},
		{"f16 a", New(2, 2), NewOf(F16, 2, 2), New(2, 2), MatMulOpts{}, "must be F32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatalf("no panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tc.want) {
					t.Errorf("panic %q, want it to mention %q", msg, tc.want)
				}
			}()
			NewCPU(1).MatMul(tc.dst, tc.a, tc.b, tc.o)
		})
	}
}

// TestMatMulNoAllocs: after a warm-up call, a single-threaded MatMul
// reuses its pooled buffers.
func TestMatMulNoAllocs(t *testing.T) {
	cpu := &CPU{Threads: 1}
	for _, tc := range []mmCase{{m: 64, n: 100, k: 300, transB: true}, {m: 1, n: 600, k: 300, transB: true, dt: BF16}} {
		dst, a, b := tc.operands(1)
		cpu.MatMul(dst, a, b, tc.opts())
		if n := testing.AllocsPerRun(5, func() { cpu.MatMul(dst, a, b, tc.opts()) }); n > 0 {
			t.Errorf("%v: %v allocations per call", tc, n)
		}
	}
}
