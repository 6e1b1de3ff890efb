package data

import (
	"math"
	"sort"
)

// SplitIndices chooses which of n items are held out: round(n × evalFrac)
// of them (at least one when evalFrac > 0 and n > 1, never all), picked by
// a shuffle seeded with seed. Both lists are in increasing order.
//
// Example: SplitIndices(10, 0.2, 1) holds out 2 of the 10 indices, the
// same 2 on every run and platform.
func SplitIndices(n int, evalFrac float64, seed uint64) (train, eval []int) {
	k := int(math.Round(float64(n) * evalFrac))
	if evalFrac > 0 && k == 0 && n > 1 {
		k = 1
	}
	if k >= n {
		k = n - 1
	}
	if k < 0 {
		k = 0
	}
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	newRNG(seed, 0x5e1175).shuffle(p)
	eval, train = append([]int(nil), p[:k]...), append([]int(nil), p[k:]...)
	sort.Ints(eval)
	sort.Ints(train)
	return train, eval
}

// SplitDataset splits ds's records into train and held-out datasets (see
// SplitIndices); record order is kept.
func SplitDataset(ds *Dataset, evalFrac float64, seed uint64) (train, eval *Dataset) {
	ti, ei := SplitIndices(len(ds.Records), evalFrac, seed)
	pick := func(idx []int) *Dataset {
		out := &Dataset{File: ds.File, Shape: ds.Shape, Records: make([]Record, len(idx))}
		for i, j := range idx {
			out.Records[i] = ds.Records[j]
		}
		return out
	}
	return pick(ti), pick(ei)
}

// heldOut decides whether document i of a corpus goes to the eval shard: a
// hash of (seed, i), so the decision does not depend on the other documents.
func heldOut(seed uint64, i int, evalFrac float64) bool {
	if evalFrac <= 0 {
		return false
	}
	return newRNG(seed, uint64(i)+1).float64() < evalFrac
}
