package model

import (
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/tensor"
	"llmlab/core/tensor/tensortest"
)

// rowCache views row r of c (per-row lengths) as a cache of one row.
func rowCache(c *Cache, r int) *Cache {
	row := func(t *tensor.Tensor) *tensor.Tensor {
		per := t.Numel() / c.B
		return &tensor.Tensor{Shape: append(tensor.Shape{1}, t.Shape[1:]...), DType: t.DType, F32: t.F32[r*per : (r+1)*per]}
	}
	v := &Cache{B: 1, Cap: c.Cap, Seg: c.Seg[r*c.Cap : (r+1)*c.Cap], Lens: c.Lens[r : r+1]}
	for l := range c.K {
		v.K, v.V = append(v.K, row(c.K[l])), append(v.V, row(c.V[l]))
	}
	return v
}

// TestCacheRowLengths: two rows at different lengths decode one token
// each per pass through a cache with per-row lengths (stale keys of an
// earlier occupant in the rows beyond) and get the logits of each
// sequence's own full forward.
func TestCacheRowLengths(t *testing.T) {
	for _, arch := range []Arch{GPT2, Llama} {
		t.Run(arch.String(), func(t *testing.T) {
			cfg := smallConfig(arch)
			m, err := New(cfg, 3)
			if err != nil {
				t.Fatal(err)
			}
			b := tensor.NewCPU(2)
			seqs := [][]int32{{5, 17, 99, 3, 42, 7, 250, 11}, {8, 1, 2, 200, 64, 9, 30, 31, 77, 4, 6}}
			prompt := []int{3, 6}
			V := cfg.VocabSize
			want := make([][]float32, 2)
			for i, ids := range seqs {
				full := autograd.NewTape(b)
				full.NoGrad = true
				lg, err := m.Forward(full, Inputs{B: 1, T: len(ids), IDs: ids})
				if err != nil {
					t.Fatal(err)
				}
				want[i] = lg.Value.F32
			}
			c := m.NewCache(2, 16)
			for l := range c.K {
				copy(c.K[l].F32, tensortest.Rand(uint64(l), len(c.K[l].F32), 3))
				copy(c.V[l].F32, tensortest.Rand(uint64(l+9), len(c.V[l].F32), 3))
			}
			for i := range c.Seg {
				c.Seg[i] = 1 // an earlier occupant's keys
			}
			c.Lens = []int{0, 0}
			tp := autograd.NewTape(b)
			tp.NoGrad = true
			for r, ids := range seqs {
				n := prompt[r]
				pos, seg := make([]int32, n), make([]int32, n)
				for i := range pos {
					pos[i], seg[i] = int32(i), 1
				}
				tp.Reset()
				lg, err := m.Forward(tp, Inputs{B: 1, T: n, IDs: ids[:n], Pos: pos, Seg: seg, Cache: rowCache(c, r)})
				if err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "prompt logits", lg.Value.F32, want[r][:n*V], 1e-5)
			}
			for step := 0; step < 5; step++ {
				i0, i1 := prompt[0]+step, prompt[1]+step
				tp.Reset()
				lg, err := m.Forward(tp, Inputs{B: 2, T: 1, IDs: []int32{seqs[0][i0], seqs[1][i1]},
					Pos: []int32{int32(i0), int32(i1)}, Seg: []int32{1, 1}, Cache: c})
				if err != nil {
					t.Fatal(err)
				}
				tensortest.Close(t, "row 0 step logits", lg.Value.F32[:V], want[0][i0*V:(i0+1)*V], 1e-5)
				tensortest.Close(t, "row 1 step logits", lg.Value.F32[V:], want[1][i1*V:(i1+1)*V], 1e-5)
			}
			if c.Lens[0] != prompt[0]+5 || c.Lens[1] != prompt[1]+5 || c.Len != prompt[1]+5 {
				t.Errorf("lengths %v (longest %d)", c.Lens, c.Len)
			}
			// Misuse is an error, not a wrong answer.
			for name, in := range map[string]Inputs{
				"two tokens at different lengths": {B: 2, T: 2, IDs: []int32{1, 2, 3, 4}, Pos: []int32{8, 9, 11, 12}, Seg: []int32{1, 1, 1, 1}, Cache: c},
				"no segment ids":                  {B: 2, T: 1, IDs: []int32{1, 2}, Pos: []int32{8, 11}, Cache: c},
				"the empty-row segment id":        {B: 2, T: 1, IDs: []int32{1, 2}, Pos: []int32{8, 11}, Seg: []int32{1, NoKey}, Cache: c},
			} {
				tp.Reset()
				if _, err := m.Forward(tp, in); err == nil {
					t.Errorf("%s: no error", name)
				}
			}
		})
	}
}
