// Package spans maps address ranges to what a backend keeps for them: the
// Vulkan backend's device buffers by the addresses its tensor.Memory
// hands out, so an op finds the buffer and offset of a device tensor (or
// of a view into one).
package spans

import (
	"cmp"
	"slices"
)

// Span is one allocation: host addresses [Base, Base+Len) and its value.
type Span[V any] struct {
	Base, Len uintptr
	Val       V
}

// Set holds non-overlapping spans sorted by address.
type Set[V any] struct{ s []Span[V] }

func byBase[V any](s Span[V], p uintptr) int { return cmp.Compare(s.Base, p) }

// Add records a span.
func (t *Set[V]) Add(base, n uintptr, v V) {
	i, _ := slices.BinarySearchFunc(t.s, base, byBase[V])
	t.s = slices.Insert(t.s, i, Span[V]{base, n, v})
}

// Remove forgets the span starting at base and returns its value; ok is
// false when there is none.
func (t *Set[V]) Remove(base uintptr) (v V, ok bool) {
	i, found := slices.BinarySearchFunc(t.s, base, byBase[V])
	if !found {
		return v, false
	}
	v = t.s[i].Val
	t.s = slices.Delete(t.s, i, i+1)
	return v, true
}

// Find returns the span holding all of [p, p+n), and the offset of p in it.
func (t *Set[V]) Find(p, n uintptr) (s Span[V], off uintptr, ok bool) {
	if len(t.s) == 0 {
		return s, 0, false
	}
	i, found := slices.BinarySearchFunc(t.s, p, byBase[V])
	if !found {
		i--
	}
	if i < 0 {
		return s, 0, false
	}
	s = t.s[i]
	if p < s.Base || p+n > s.Base+s.Len {
		return s, 0, false
	}
	return s, p - s.Base, true
}

// All returns the spans in address order.
func (t *Set[V]) All() []Span[V] { return t.s }

// Clear forgets every span.
func (t *Set[V]) Clear() { t.s = nil }
