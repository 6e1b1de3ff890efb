// Package optim holds the optimizer (AdamW with decoupled weight decay and
// bias correction, as torch.optim.AdamW), learning-rate schedules, global
// gradient-norm clipping, and saving and restoring optimizer state.
package optim

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
)

// AdamWConfig holds AdamW's hyper-parameters.
type AdamWConfig struct {
	LR          float32 `json:"lr"`
	Beta1       float32 `json:"beta1"`
	Beta2       float32 `json:"beta2"`
	Eps         float32 `json:"eps"`
	WeightDecay float32 `json:"weight_decay"`
}

// DefaultAdamW is a common starting point.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{LR: 3e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
}

// Decays reports whether p gets weight decay by default: matrices and
// embeddings do; norm weights and biases (1-D) do not.
func Decays(p *autograd.Param) bool { return len(p.Value.Shape) >= 2 }

// AdamW keeps first and second moments for every trainable parameter.
type AdamW struct {
	Cfg    AdamWConfig
	Params []*autograd.Param // trainable ones, in a fixed order
	Decay  func(*autograd.Param) bool
	Step   int
	m, v   []*tensor.Tensor
	placed bool // moved to the backend's memory (see place)

	ps, gs, ms, vs []*tensor.Tensor // AdamWAll's arguments, reused
	wds            []float32
}

// NewAdamW returns an optimizer over the non-frozen parameters of ps.
func NewAdamW(c AdamWConfig, ps []*autograd.Param) *AdamW {
	o := &AdamW{Cfg: c, Decay: Decays}
	for _, p := range ps {
		if !p.Frozen {
			o.Params = append(o.Params, p)
		}
	}
	return o
}

func (o *AdamW) ensureState() {
	if o.m != nil {
		return
	}
	for _, p := range o.Params {
		o.m = append(o.m, tensor.New(p.Value.Shape...))
		o.v = append(o.v, tensor.New(p.Value.Shape...))
	}
}

// Update applies one step with learning rate lr to every parameter with
// a gradient.
func (o *AdamW) Update(b tensor.Backend, lr float32) {
	if mem := tensor.MemoryOf(b); mem != nil && o.m == nil {
		o.deviceState(mem)
	}
	o.ensureState()
	if !o.placed {
		o.place(b)
	}
	o.Step++
	if mb, ok := b.(tensor.MultiAdamW); ok {
		// One launch for every parameter (a device backend).
		o.ps, o.gs, o.ms, o.vs, o.wds = o.ps[:0], o.gs[:0], o.ms[:0], o.vs[:0], o.wds[:0]
		for i, p := range o.Params {
			if p.Grad == nil {
				continue
			}
			if p.Value.DType != tensor.F32 {
				panic(fmt.Sprintf("optim: trainable parameter %s is %v, not F32", p.Name, p.Value.DType))
			}
			wd := o.Cfg.WeightDecay
			if !o.Decay(p) {
				wd = 0
			}
			o.ps, o.gs, o.ms, o.vs, o.wds = append(o.ps, p.Value), append(o.gs, p.Grad), append(o.ms, o.m[i]), append(o.vs, o.v[i]), append(o.wds, wd)
		}
		mb.AdamWAll(o.ps, o.gs, o.ms, o.vs, o.wds, tensor.AdamWOpts{
			LR: lr, Beta1: o.Cfg.Beta1, Beta2: o.Cfg.Beta2, Eps: o.Cfg.Eps, Step: o.Step,
		})
		return
	}
	for i, p := range o.Params {
		if p.Grad == nil {
			continue
		}
		if p.Value.DType != tensor.F32 {
			panic(fmt.Sprintf("optim: trainable parameter %s is %v, not F32", p.Name, p.Value.DType))
		}
		wd := o.Cfg.WeightDecay
		if !o.Decay(p) {
			wd = 0
		}
		b.AdamW(p.Value, p.Grad, o.m[i], o.v[i], tensor.AdamWOpts{
			LR: lr, Beta1: o.Cfg.Beta1, Beta2: o.Cfg.Beta2, Eps: o.Cfg.Eps, WeightDecay: wd, Step: o.Step,
		})
	}
}

// deviceState makes the moments, zeroed, in the backend's own memory
// (nothing crosses the bus); any it cannot hold are made on the host.
func (o *AdamW) deviceState(mem tensor.Memory) {
	for _, p := range o.Params {
		for _, dst := range []*[]*tensor.Tensor{&o.m, &o.v} {
			t, err := tensor.NewOn(mem, p.Value.Shape...)
			if err != nil {
				t = tensor.New(p.Value.Shape...)
			}
			*dst = append(*dst, t)
		}
	}
}

// place moves the moments and the trainable float32 values into the
// backend's memory when it has memory of its own (tensor.Memory) or
// mappable device memory (tensor.Allocator), so the updates and the
// kernels that read the weights run without copies. Contents are kept;
// only the storage moves.
func (o *AdamW) place(b tensor.Backend) {
	o.placed = true
	if mem := tensor.MemoryOf(b); mem != nil {
		for i, p := range o.Params {
			for _, t := range []*tensor.Tensor{p.Value, o.m[i], o.v[i]} {
				tensor.ToDevice(mem, t) // on failure it stays on the host, and still works
			}
		}
		return
	}
	a, ok := b.(tensor.Allocator)
	if !ok {
		return
	}
	move := func(t *tensor.Tensor) {
		if t == nil || t.DType != tensor.F32 || len(t.F32) == 0 {
			return
		}
		if x := a.AllocF32(len(t.F32)); x != nil {
			copy(x, t.F32)
			t.F32 = x
		}
	}
	for i, p := range o.Params {
		move(p.Value)
		move(o.m[i])
		move(o.v[i])
	}
}

// Release frees the moments (device memory, when they live there) and
// forgets them; a later Update starts from zero moments again. For a
// caller done with this optimizer that goes on using the backend.
func (o *AdamW) Release() {
	for i := range o.m {
		tensor.Free(o.m[i])
		tensor.Free(o.v[i])
	}
	o.m, o.v, o.placed, o.Step = nil, nil, false, 0
	o.ps, o.gs, o.ms, o.vs = nil, nil, nil, nil
}

// ZeroGrad clears every gradient.
func (o *AdamW) ZeroGrad() {
	for _, p := range o.Params {
		if p.Grad != nil {
			p.Grad.Zero()
		}
	}
}

// ClipGradNorm scales gradients so their global L2 norm is at most
// maxNorm (no-op when maxNorm <= 0) and returns the norm before clipping.
// On a backend that clips on the device, reading the norm waits for the
// device: a training loop that reads it only to log it uses a Clipper.
func ClipGradNorm(b tensor.Backend, ps []*autograd.Param, maxNorm float64) float64 {
	var c Clipper
	defer c.Free()
	c.Clip(b, ps, maxNorm)
	return c.Norm()
}

// NormClipper is implemented by backends that clip gradients on the
// device: ClipNorm writes the global L2 norm of xs into norm (one F32
// element, which the backend may keep on the device) and, when maxNorm > 0
// and the norm exceeds it, scales every x by maxNorm/(norm+1e-6), with no
// value read on the host.
type NormClipper interface {
	ClipNorm(norm *tensor.Tensor, xs []*tensor.Tensor, maxNorm float32)
}

// Clipper clips gradient norms and keeps the last norm where the backend
// computed it, so a step on a device reads nothing back unless Norm is
// called. The zero Clipper is ready; Free releases its device scalar.
type Clipper struct {
	norm *tensor.Tensor // (1)
	mem  tensor.Memory
	xs   []*tensor.Tensor
	host float64 // the norm, when computed on the host
}

// Clip scales the gradients of ps as ClipGradNorm does.
func (c *Clipper) Clip(b tensor.Backend, ps []*autograd.Param, maxNorm float64) {
	nc, ok := b.(NormClipper)
	if !ok {
		c.norm = nil
		c.host = clipHost(b, ps, maxNorm)
		return
	}
	if c.norm == nil {
		if mem := tensor.MemoryOf(b); mem != nil {
			if t, err := tensor.NewOn(mem, 1); err == nil {
				c.norm, c.mem = t, mem
			}
		}
		if c.norm == nil {
			c.norm = tensor.New(1)
		}
	}
	c.xs = c.xs[:0]
	for _, p := range ps {
		if p.Grad != nil && !p.Frozen {
			c.xs = append(c.xs, p.Grad)
		}
	}
	nc.ClipNorm(c.norm, c.xs, float32(maxNorm))
}

// Norm returns the norm before the last Clip (a wait for the device when
// it was computed there).
func (c *Clipper) Norm() float64 {
	if c.norm == nil {
		return c.host
	}
	return float64(c.norm.At(0))
}

// Free releases the device scalar; the Clipper can be used again.
func (c *Clipper) Free() {
	if c.norm != nil && c.mem != nil {
		tensor.Free(c.norm)
	}
	c.norm, c.mem = nil, nil
}

// clipHost is ClipGradNorm through SumSquares and AddScaled.
func clipHost(b tensor.Backend, ps []*autograd.Param, maxNorm float64) float64 {
	var ss float64
	for _, p := range ps {
		if p.Grad != nil && !p.Frozen {
			ss += b.SumSquares(p.Grad)
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > maxNorm {
		ScaleGrads(b, ps, float32(maxNorm/(norm+1e-6)))
	}
	return norm
}

// ScaleGrads multiplies every gradient by s.
func ScaleGrads(b tensor.Backend, ps []*autograd.Param, s float32) {
	for _, p := range ps {
		if p.Grad != nil && !p.Frozen {
			b.AddScaled(p.Grad, p.Grad, s-1)
		}
	}
}

// Save writes the moments and the step count to dir/optimizer.safetensors.
func (o *AdamW) Save(dir string) error {
	o.ensureState()
	var ts []checkpoint.Named
	for i, p := range o.Params {
		ts = append(ts, checkpoint.Named{Name: "m." + p.Name, T: o.m[i]}, checkpoint.Named{Name: "v." + p.Name, T: o.v[i]})
	}
	return checkpoint.Write(filepath.Join(dir, "optimizer.safetensors"), ts, map[string]string{"step": strconv.Itoa(o.Step)})
}

// Load restores what Save wrote; every trainable parameter must have state
// of its shape.
func (o *AdamW) Load(dir string) error {
	path := filepath.Join(dir, "optimizer.safetensors")
	f, err := checkpoint.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	step, err := strconv.Atoi(f.Metadata()["step"])
	if err != nil {
		return fmt.Errorf("%s: bad step in metadata: %v", path, err)
	}
	o.ensureState()
	var problems []string
	for i, p := range o.Params {
		for _, k := range []struct {
			key string
			dst *tensor.Tensor
		}{{"m." + p.Name, o.m[i]}, {"v." + p.Name, o.v[i]}} {
			t, err := f.Tensor(k.key)
			if err != nil {
				problems = append(problems, "missing "+k.key)
				continue
			}
			if !t.Shape.Equal(k.dst.Shape) || t.DType != tensor.F32 {
				problems = append(problems, fmt.Sprintf("%s has %v %v, want F32 %v", k.key, t.DType, t.Shape, k.dst.Shape))
				continue
			}
			tensor.Copy(k.dst, t) // into device memory after the first Update
		}
	}
	if n := len(f.Names()); n != 2*len(o.Params) {
		problems = append(problems, fmt.Sprintf("%d tensors for %d parameters", n, len(o.Params)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s does not fit the trainable parameters: %s", path, strings.Join(problems, "; "))
	}
	o.Step = step
	return nil
}

// ScheduleKind names a learning-rate schedule.
type ScheduleKind int

const (
	Cosine ScheduleKind = iota
	Linear
	Constant
)

func (k ScheduleKind) String() string {
	return [...]string{"cosine", "linear", "constant"}[k]
}

// ParseScheduleKind accepts cosine, linear and constant.
func ParseScheduleKind(s string) (ScheduleKind, error) {
	for i, n := range []string{"cosine", "linear", "constant"} {
		if strings.EqualFold(s, n) {
			return ScheduleKind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown schedule %q (want cosine, linear or constant)", s)
}

// MarshalText and UnmarshalText keep the kind readable in run.json.
func (k ScheduleKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a kind name.
func (k *ScheduleKind) UnmarshalText(b []byte) error {
	v, err := ParseScheduleKind(string(b))
	*k = v
	return err
}

// Schedule is linear warmup then decay to MinRatio of the base rate.
type Schedule struct {
	Kind     ScheduleKind `json:"kind"`
	Warmup   int          `json:"warmup"`
	Total    int          `json:"total"`
	MinRatio float64      `json:"min_ratio"`
}

// LR returns the rate for step (counted from 1).
func (s Schedule) LR(base float64, step int) float64 {
	if s.Warmup > 0 && step <= s.Warmup {
		return base * float64(step) / float64(s.Warmup)
	}
	if s.Kind == Constant || s.Total <= s.Warmup {
		return base
	}
	frac := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	frac = min(max(frac, 0), 1)
	lo := base * s.MinRatio
	switch s.Kind {
	case Linear:
		return lo + (base-lo)*(1-frac)
	default:
		return lo + (base-lo)*0.5*(1+math.Cos(math.Pi*frac))
	}
}
