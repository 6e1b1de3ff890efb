package spans

import "testing"

func TestSet(t *testing.T) {
	var s Set[string]
	s.Add(1000, 100, "b")
	s.Add(100, 50, "a")
	s.Add(5000, 8, "c")
	for _, c := range []struct {
		p, n uintptr
		want string
		off  uintptr
		ok   bool
	}{
		{100, 50, "a", 0, true}, {120, 4, "a", 20, true}, {140, 20, "", 0, false}, {99, 1, "", 0, false},
		{1096, 4, "b", 96, true}, {1097, 4, "", 0, false}, {5000, 8, "c", 0, true}, {6000, 1, "", 0, false},
	} {
		sp, off, ok := s.Find(c.p, c.n)
		if ok != c.ok || ok && (sp.Val != c.want || off != c.off) {
			t.Errorf("Find(%d, %d) = %q+%d %v, want %q+%d %v", c.p, c.n, sp.Val, off, ok, c.want, c.off, c.ok)
		}
	}
	if v, ok := s.Remove(1000); !ok || v != "b" {
		t.Errorf("Remove(1000) = %q %v", v, ok)
	}
	if _, ok := s.Remove(1000); ok {
		t.Error("removed twice")
	}
	if _, _, ok := s.Find(1010, 1); ok {
		t.Error("found a removed span")
	}
	if n := len(s.All()); n != 2 {
		t.Errorf("%d spans left, want 2", n)
	}
}
