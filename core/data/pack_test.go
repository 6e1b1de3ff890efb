package data

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ex(ids ...int32) Example {
	// Labels: the first token is prompt, the rest trained.
	l := append([]int32(nil), ids...)
	l[0] = IgnoreIndex
	return Example{IDs: ids, Labels: l}
}

func TestCollate(t *testing.T) {
	b, err := Collate([]Example{ex(5, 6, 7), ex(8, 9, 10, 11)}, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Batch{B: 2, T: 4,
		IDs:    []int32{5, 6, 7, 0, 8, 9, 10, 11},
		Labels: []int32{6, 7, -100, -100, 9, 10, 11, -100},
		Pos:    []int32{0, 1, 2, 3, 0, 1, 2, 3},
	}
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if _, err := Collate([]Example{ex(1, 2, 3, 4, 5)}, 4, 0); err == nil {
		t.Error("over-long example: no error")
	}
}

func TestPack(t *testing.T) {
	exs := []Example{ex(1, 2, 3, 4), ex(5, 6), ex(7, 8, 9)}
	b, err := Pack(exs, 6, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := Batch{B: 2, T: 6,
		IDs:    []int32{1, 2, 3, 4, 5, 6 /**/, 7, 8, 9, 0, 0, 0},
		Labels: []int32{2, 3, 4, -100, 6, -100 /**/, 8, 9, -100, -100, -100, -100},
		Pos:    []int32{0, 1, 2, 3, 0, 1 /**/, 0, 1, 2, 0, 1, 2},
		Seg:    []int32{0, 0, 0, 0, 1, 1 /**/, 0, 0, 0, -1, -1, -1},
	}
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
}

// Packing keeps every trained target exactly once and never lets a target
// cross an example boundary.
func TestPackKeepsTargets(t *testing.T) {
	r := newRNG(3, 0)
	var exs []Example
	want := 0
	for i := range 200 {
		n := 1 + r.intn(32)
		ids := make([]int32, n)
		for j := range ids {
			ids[j] = int32(i*100 + j)
		}
		exs = append(exs, ex(ids...))
		want += n - 1
	}
	b, err := Pack(exs, 32, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Tokens(); got != want {
		t.Errorf("%d targets after packing, want %d", got, want)
	}
	for i, l := range b.Labels {
		if l == IgnoreIndex {
			continue
		}
		if i%b.T == b.T-1 || b.Seg[i+1] != b.Seg[i] || l != b.IDs[i+1] || b.Pos[i+1] != b.Pos[i]+1 {
			t.Fatalf("target at %d crosses a boundary or is not the next token", i)
		}
	}
	if fill := float64(len(b.IDs)-countPad(b)) / float64(len(b.IDs)); fill < 0.9 {
		t.Errorf("fill %.2f, want ≥ 0.9", fill)
	}
	rows := b.Rows(1, 3)
	if rows.B != 2 || len(rows.Seg) != 2*b.T || rows.IDs[0] != b.IDs[b.T] {
		t.Error("Rows view wrong")
	}
}

func countPad(b Batch) int {
	n := 0
	for _, s := range b.Seg {
		if s == PadSeg {
			n++
		}
	}
	return n
}
