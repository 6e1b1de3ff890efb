package autograd

import (
	"fmt"

	"llmlab/core/tensor"
)

// Var is a value on the tape: a tensor and, once backward reaches it, its
// gradient. Vars that wrap a trainable Param send their gradient into
// Param.Grad, which persists across steps (the optimizer zeroes it).
type Var struct {
	Value  *tensor.Tensor
	Grad   *tensor.Tensor // nil until a gradient arrives
	param  *Param
	viewOf *Var // a reshaped view shares its parent's storage and gradient
	needs  bool // some trainable input lies upstream
}

// NeedsGrad reports whether a gradient will be computed for v.
func (v *Var) NeedsGrad() bool { return v.needs }

// Node is one recorded op. Core ops use a plain function and the fixed
// fields (no closure, so recording allocates nothing); Custom ops use Fn.
type Node struct {
	back func(t *Tape, n *Node)
	Fn   func() // Custom backward
	Out  *Var
	In   [6]*Var
	Outs [4]*Var // extra outputs of multi-output ops (SplitCols)
	Save [4]*tensor.Tensor
	Ints []int32
	F    float32
	Att  tensor.AttentionOpts
	Rope *tensor.RoPETable
}

// Tape records ops for the backward pass. A Tape is reused across steps:
// Reset releases all activations and gradients back to its arena.
type Tape struct {
	B     tensor.Backend
	arena Arena
	nodes []Node
	vars  [][]Var // blocks of varBlock; pointers into them stay valid
	nvars int
	// NoGrad disables recording: the forward runs, nothing is kept for
	// backward (inference, reference models).
	NoGrad bool

	child *Tape // for Checkpoint: runs one block at a time
}

// NewTape returns a tape computing on b.
func NewTape(b tensor.Backend) *Tape {
	t := &Tape{B: b}
	if m := tensor.MemoryOf(b); m != nil {
		t.arena.mem = m
	} else {
		t.arena.dev, _ = b.(tensor.Allocator)
	}
	return t
}

// Reset forgets every op and releases all step tensors.
func (t *Tape) Reset() {
	for i := range t.nodes {
		t.nodes[i] = Node{}
	}
	t.nodes = t.nodes[:0]
	for i := 0; i < t.nvars; i++ {
		t.vars[i/varBlock][i%varBlock] = Var{}
	}
	t.nvars = 0
	t.arena.Reset()
}

// Release frees the tape's activation memory (its arena's slab, and its
// checkpoint tape's) and forgets every op: the device memory a backend
// lent goes back to it now, not when the collector runs. The tape stays
// usable; its next step allocates afresh.
func (t *Tape) Release() {
	t.Reset()
	t.arena.freeSlab()
	if t.child != nil {
		t.child.Release()
	}
}

// ArenaFloats reports the activation arenas' size in float32 values: this
// tape's and that of the tape its checkpoints run on.
func (t *Tape) ArenaFloats() int {
	n := t.arena.Floats()
	if t.child != nil {
		n += t.child.ArenaFloats()
	}
	return n
}

// Mark returns the arena's position for Rewind; ok is false where the
// tape records ops (their inputs are kept for backward) or its arena is
// in device memory.
func (t *Tape) Mark() (m Mark, ok bool) {
	if !t.NoGrad {
		return Mark{}, false
	}
	return t.arena.mark()
}

// Rewind makes the step memory handed out since m reusable: every tensor
// allocated since then is invalid. Inference runs a model one layer at a
// time this way, so its activations take one layer's memory, not all of
// them (the next Reset sizes the arena to that peak).
func (t *Tape) Rewind(m Mark) { t.arena.rewind(m) }

// Alloc returns a step tensor with unspecified contents.
func (t *Tape) Alloc(shape ...int) *tensor.Tensor { return t.arena.Alloc(shape...) }

// AllocZero returns a zeroed step tensor.
func (t *Tape) AllocZero(shape ...int) *tensor.Tensor { return t.arena.AllocZero(shape...) }

const varBlock = 256

func (t *Tape) newVar(v *tensor.Tensor, needs bool) *Var {
	if t.nvars == len(t.vars)*varBlock {
		t.vars = append(t.vars, make([]Var, varBlock))
	}
	x := &t.vars[t.nvars/varBlock][t.nvars%varBlock]
	t.nvars++
	x.Value, x.needs = v, needs && !t.NoGrad
	return x
}

// Const wraps a tensor that needs no gradient.
func (t *Tape) Const(v *tensor.Tensor) *Var { return t.newVar(v, false) }

// Leaf wraps a step tensor whose gradient is wanted (tests, custom inputs).
func (t *Tape) Leaf(v *tensor.Tensor) *Var { return t.newVar(v, true) }

// Param wraps a parameter; its gradient accumulates into p.Grad unless it
// is Frozen. On a backend with its own memory (tensor.Memory) a float32
// value moves there the first time a tape uses it, and stays: weights are
// uploaded once, not per op. Read it back with Value.Host() (checkpoints
// and the like do, through tensor's edge methods). A parameter another
// backend's memory holds moves back to the host first (a model used on a
// GPU, then on the CPU), with its gradient.
func (t *Tape) Param(p *Param) *Var {
	m := t.arena.mem
	if v := p.Value; v.OnDevice() && v.Dev.Mem != m {
		tensor.ToHost(v)
		if p.Grad != nil {
			tensor.ToHost(p.Grad)
		}
	}
	if m != nil && !p.Value.OnDevice() && p.Value.DType == tensor.F32 {
		tensor.ToDevice(m, p.Value) // on failure it stays on the host, and still works
	}
	x := t.newVar(p.Value, !p.Frozen)
	x.param = p
	return x
}

// record appends a node if any input needs a gradient and returns the
// output Var.
func (t *Tape) record(out *tensor.Tensor, back func(*Tape, *Node), in ...*Var) (*Var, *Node) {
	needs := false
	for _, v := range in {
		if v != nil && v.needs {
			needs = true
		}
	}
	o := t.newVar(out, needs)
	if !o.needs {
		return o, nil
	}
	t.nodes = append(t.nodes, Node{back: back, Out: o})
	n := &t.nodes[len(t.nodes)-1]
	copy(n.In[:], in)
	return o, n
}

// Custom records an op computed by the caller: out is its result, fn its
// backward, which reads out.Grad and adds into the inputs' gradients via
// t.GradOf. It returns the output Var.
func (t *Tape) Custom(out *tensor.Tensor, fn func(), in ...*Var) *Var {
	o, n := t.record(out, nil, in...)
	if n != nil {
		n.Fn = fn
	}
	return o
}

// persistent returns a zeroed tensor that outlives the step (a parameter's
// gradient): in the backend's device memory when it has some to lend.
func (t *Tape) persistent(shape tensor.Shape) *tensor.Tensor {
	if t.arena.mem != nil {
		if x, err := tensor.NewOn(t.arena.mem, shape...); err == nil {
			return x
		}
	}
	if t.arena.dev != nil {
		if x := t.arena.dev.AllocF32(shape.Numel()); x != nil {
			return tensor.FromF32(x, shape...)
		}
	}
	return tensor.New(shape...)
}

// GradOf returns v's gradient buffer, allocating it (zeroed) on first use:
// from the arena for activations, persistently for parameters.
func (t *Tape) GradOf(v *Var) *tensor.Tensor {
	if v.Grad != nil {
		return v.Grad
	}
	if v.viewOf != nil {
		pg := t.GradOf(v.viewOf)
		v.Grad = t.arena.header(pg, v.Value.Shape)
		return v.Grad
	}
	if v.param != nil {
		p := v.param
		if p.Grad == nil {
			p.Grad = t.persistent(p.Value.Shape)
		}
		v.Grad = p.Grad
		return v.Grad
	}
	v.Grad = t.arena.AllocZero(v.Value.Shape...)
	return v.Grad
}

// Backward runs the tape backwards from loss, seeding its gradient with
// ones (a scalar loss gets d loss = 1). Gradients of parameters accumulate
// across calls until zeroed, which is how gradient accumulation works.
func (t *Tape) Backward(loss *Var) error {
	if !loss.needs {
		return fmt.Errorf("autograd: loss does not depend on any trainable parameter")
	}
	tensor.Fill(t.GradOf(loss), 1)
	return t.backward()
}

// backward runs the recorded nodes in reverse, the output's gradient seeded.
func (t *Tape) backward() error {
	for i := len(t.nodes) - 1; i >= 0; i-- {
		n := &t.nodes[i]
		if !n.hasGrad() {
			continue // nothing downstream used it
		}
		if n.Fn != nil {
			n.Fn()
		} else {
			n.back(t, n)
		}
		// Every consumer of n's outputs came later in the forward pass
		// and has already run: their gradients are dead.
		t.releaseGrad(n.Out)
		for _, o := range n.Outs {
			if o != nil {
				t.releaseGrad(o)
			}
		}
	}
	return nil
}

// BackwardFrom runs the tape backwards from out with the given gradient
// (same shape as out.Value), as Backward does from a scalar loss.
func (t *Tape) BackwardFrom(out *Var, grad *tensor.Tensor) error {
	if !out.needs {
		return fmt.Errorf("autograd: output does not depend on any trainable parameter")
	}
	tensor.Copy(t.GradOf(out), grad)
	return t.backward()
}

// releaseGrad returns an activation's gradient buffer to the arena.
// Parameter gradients persist, and views share their parent's buffer.
func (t *Tape) releaseGrad(v *Var) {
	if v.Grad == nil || v.param != nil || v.viewOf != nil {
		return
	}
	t.arena.release(v.Grad)
	v.Grad = nil
}

func (n *Node) hasGrad() bool {
	if n.Out.Grad != nil {
		return true
	}
	for _, o := range n.Outs {
		if o != nil && o.Grad != nil {
			return true
		}
	}
	return false
}

// want reports whether input i of n needs a gradient.
func (n *Node) want(i int) bool { return n.In[i] != nil && n.In[i].needs }
