package data

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// shards writes tokens 0..n-1 split over sizes into shard files.
func shards(t *testing.T, sizes ...int) []*Shard {
	t.Helper()
	var out []*Shard
	next := int32(0)
	for i, n := range sizes {
		toks := make([]int32, n)
		for j := range toks {
			toks[j] = next
			next++
		}
		p := filepath.Join(t.TempDir(), "s"+string(rune('a'+i))+".tok")
		if err := WriteShard(p, toks, 100000); err != nil {
			t.Fatal(err)
		}
		s, err := OpenShard(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func TestSamplerWindows(t *testing.T) {
	sh := shards(t, 300, 0, 457) // a window may span shards; empty shards are fine
	s, err := NewSampler(sh, 4, 16, 7)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int32]int{}
	var b Batch
	per := s.WindowsPerEpoch()
	for range per / 4 {
		s.Next(&b)
		for r := range b.B {
			row := b.IDs[r*b.T : (r+1)*b.T]
			for t2 := range b.T {
				if t2 > 0 && row[t2] != row[t2-1]+1 {
					t.Fatalf("window not contiguous: %v", row)
				}
				if b.Labels[r*b.T+t2] != row[t2]+1 || b.Pos[r*b.T+t2] != int32(t2) {
					t.Fatalf("labels not shifted ids / pos wrong")
				}
			}
			seen[row[0]]++
		}
	}
	for start, n := range seen {
		if n != 1 {
			t.Errorf("window starting at %d drawn %d times in one epoch", start, n)
		}
	}
	if len(seen) < per-3 {
		t.Errorf("%d distinct windows, epoch has %d", len(seen), per)
	}
}

func TestSamplerResume(t *testing.T) {
	sh := shards(t, 1000)
	a, _ := NewSampler(sh, 3, 8, 42)
	var ba, bb Batch
	for range 50 { // crosses epochs (≈124 windows each, 3 a batch)
		a.Next(&ba)
	}
	c := a.Cursor()
	var want [][]int32
	for range 100 {
		a.Next(&ba)
		want = append(want, append([]int32(nil), ba.IDs...))
	}
	b, _ := NewSampler(sh, 3, 8, 42)
	if err := b.SetCursor(c); err != nil {
		t.Fatal(err)
	}
	var got [][]int32
	for range 100 {
		b.Next(&bb)
		got = append(got, append([]int32(nil), bb.IDs...))
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("resumed stream differs (-want +got):\n%s", d)
	}
	other, _ := NewSampler(sh, 3, 8, 43)
	other.Next(&bb)
	a2, _ := NewSampler(sh, 3, 8, 42)
	a2.Next(&ba)
	if cmp.Equal(ba.IDs, bb.IDs) {
		t.Error("different seeds gave the same first batch")
	}
	if err := b.SetCursor(Cursor{Epoch: 0, Index: 1 << 30}); err == nil {
		t.Error("cursor past the epoch accepted")
	}
}

func TestSamplerTooSmall(t *testing.T) {
	if _, err := NewSampler(shards(t, 8), 1, 8, 0); err == nil {
		t.Error("8 tokens for ctx 8: no error")
	}
	if _, err := NewSampler(shards(t, 9), 1, 8, 0); err != nil {
		t.Error(err)
	}
}

func TestSequential(t *testing.T) {
	sh := shards(t, 50, 50)
	var starts []int32
	for b := range Sequential(sh, 2, 10, 0) {
		starts = append(starts, b.IDs[0], b.IDs[10])
		if b.Labels[19] != b.IDs[19]+1 {
			t.Error("labels not shifted")
		}
	}
	if d := cmp.Diff([]int32{0, 10, 20, 30, 40, 50, 60, 70}, starts); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
