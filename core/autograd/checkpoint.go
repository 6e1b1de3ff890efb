package autograd

import "llmlab/core/tensor"

// Checkpoint computes y = f(x) keeping only x and y on this tape: f runs on
// a child tape whose activations are dropped at once, and runs again,
// recording, when the backward pass reaches y (activation checkpointing).
// f must compute the same values both times (no randomness) and take all
// its trainable inputs as parameters (t.Param) or through x; parameter
// gradients reach Param.Grad as usual.
func (t *Tape) Checkpoint(x *Var, f func(t *Tape, x *Var) *Var) *Var {
	if t.child == nil {
		t.child = NewTape(t.B)
	}
	sub := t.child
	// First run: recording, to learn whether anything in f needs a
	// gradient; its tape is reset before the next block runs.
	sub.Reset()
	xin := sub.newVar(x.Value, x.needs)
	y := f(sub, xin)
	out := t.arena.Alloc(y.Value.Shape...)
	tensor.Copy(out, y.Value)
	needs := y.needs
	sub.Reset()
	o := t.newVar(out, needs)
	if !needs {
		return o
	}
	t.nodes = append(t.nodes, Node{Out: o})
	n := &t.nodes[len(t.nodes)-1]
	n.In[0] = x
	n.Fn = func() {
		sub.Reset()
		xin := sub.newVar(x.Value, x.needs)
		y := f(sub, xin)
		if err := sub.BackwardFrom(y, o.Grad); err != nil {
			panic(err) // y needed a gradient on the first run
		}
		if x.needs {
			t.B.AddScaled(t.GradOf(x), sub.GradOf(xin), 1)
		}
		sub.Reset()
	}
	return o
}
