package model

import (
	"math"
	"sync"

	"llmlab/core/tensor"
)

// ropeSet builds and keeps the RoPE tables of a model: the global layers'
// (scaled as rope_scaling says) and the windowed layers' own (Gemma 3's
// rope_local_base_freq). Tables cover the longest position seen so far,
// grown in powers of two, so a model with a 128k context does not hold a
// 128k table for short inputs. Dynamic NTK and longrope depend on the
// length of the pass, as in HF: their tables are rebuilt when it changes
// which frequencies apply. A table is never modified once built, so a tape
// that holds one keeps a valid table for its backward pass.
type ropeSet struct {
	cfg Config

	mu                 sync.Mutex
	global, local      *tensor.RoPETable
	globalLen, dynBase int // the pass length the global table was built for (dynamic, longrope)
}

func newRopeSet(c Config) *ropeSet { return &ropeSet{cfg: c} }

// tables returns, for a pass whose positions are all below seqLen, the
// table of each layer (nil: no RoPE on that layer), appended to dst.
func (s *ropeSet) tables(dst []*tensor.RoPETable, seqLen int) []*tensor.RoPETable {
	c := s.cfg
	dst = dst[:0]
	if c.Arch != Llama {
		for range c.Layers {
			dst = append(dst, nil)
		}
		return dst
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range c.Layers {
		switch {
		case !c.HasRope(l):
			dst = append(dst, nil)
		case c.RopeLocalTheta != 0 && c.Sliding != nil && c.Sliding[l]:
			if s.local == nil || s.local.MaxPos < seqLen {
				inv := defaultInvFreq(c.RopeLocalTheta, c.RotaryDim())
				s.local = tensor.NewRoPETableFreqs(c.RotaryDim(), grow(seqLen, c.ContextLen()), inv, 1)
			}
			dst = append(dst, s.local)
		default:
			dst = append(dst, s.globalTable(seqLen))
		}
	}
	return dst
}

// grow rounds a table length up to a power of two, at most limit.
func grow(n, limit int) int {
	p := 64
	for p < n {
		p *= 2
	}
	return max(min(p, limit), n)
}

func (s *ropeSet) globalTable(seqLen int) *tensor.RoPETable {
	c := s.cfg
	r := c.Rope
	// key: the length that decides the frequencies (0 when none does).
	key := 0
	switch r.Kind {
	case RopeDynamic:
		key = max(seqLen, c.MaxPos)
	case RopeLongRoPE:
		if seqLen > longropeOrig(c) {
			key = 1
		}
	}
	if s.global != nil && s.global.MaxPos >= seqLen && s.dynBase == key {
		return s.global
	}
	inv, scale := ropeFreqs(c, seqLen)
	s.global = tensor.NewRoPETableFreqs(c.RotaryDim(), grow(seqLen, c.ContextLen()), inv, scale)
	s.dynBase = key
	return s.global
}

// defaultInvFreq is RoPE's 1/theta^(2i/dim), computed the way HF does in
// float32.
func defaultInvFreq(theta float64, dim int) []float32 {
	inv := make([]float32, dim/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(theta, float64(float32(2*i)/float32(dim))))
	}
	return inv
}

// ropeFreqs returns the global layers' inverse frequencies and cos/sin
// multiplier for a pass of seqLen positions, following HF's
// modeling_rope_utils for each rope_type.
func ropeFreqs(c Config, seqLen int) ([]float32, float32) {
	r, dim, theta := c.Rope, c.RotaryDim(), c.RopeTheta
	switch r.Kind {
	case RopeLinear:
		inv := defaultInvFreq(theta, dim)
		for i := range inv {
			inv[i] /= float32(r.Factor)
		}
		return inv, 1
	case RopeDynamic:
		if seqLen > c.MaxPos {
			base := theta * math.Pow(r.Factor*float64(seqLen)/float64(c.MaxPos)-(r.Factor-1), float64(dim)/float64(dim-2))
			return defaultInvFreq(base, dim), 1
		}
		return defaultInvFreq(theta, dim), 1
	case RopeLlama3:
		inv := defaultInvFreq(theta, dim)
		orig := float64(r.OrigMaxPos)
		lowWave, highWave := orig/r.LowFreqFactor, orig/r.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / float64(f)
			switch {
			case wave < highWave: // high frequencies: kept
			case wave > lowWave: // low frequencies: interpolated
				inv[i] = f / float32(r.Factor)
			default: // between: a smooth blend
				smooth := (orig/wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
				inv[i] = float32((1-smooth)*float64(f)/r.Factor + smooth*float64(f))
			}
		}
		return inv, 1
	case RopeYaRN:
		return yarnFreqs(c)
	case RopeLongRoPE:
		orig := longropeOrig(c)
		factor := r.Factor
		if c.Rope.OrigMaxPos != 0 {
			factor = float64(c.MaxPos) / float64(orig)
		}
		attn := r.AttentionFactor
		if attn == 0 {
			attn = 1
			if factor > 1 {
				attn = math.Sqrt(1 + math.Log(factor)/math.Log(float64(orig)))
			}
		}
		ext := r.ShortFactor
		if seqLen > orig {
			ext = r.LongFactor
		}
		inv := make([]float32, dim/2)
		for i := range inv {
			pow := float32(math.Pow(theta, float64(float32(2*i)/float32(dim))))
			inv[i] = 1 / (float32(ext[i]) * pow)
		}
		return inv, float32(attn)
	}
	return defaultInvFreq(theta, dim), 1
}

// longropeOrig is the trained length longrope switches factors at.
func longropeOrig(c Config) int {
	if c.Rope.OrigMaxPos > 0 {
		return c.Rope.OrigMaxPos
	}
	return c.MaxPos
}

// yarnFreqs blends interpolated and extrapolated frequencies with a linear
// ramp between the dimensions that turn beta_fast and beta_slow times over
// the trained length, and scales cos/sin by the attention factor.
func yarnFreqs(c Config) ([]float32, float32) {
	r, dim, theta := c.Rope, c.RotaryDim(), c.RopeTheta
	orig := float64(c.MaxPos)
	if r.OrigMaxPos > 0 {
		orig = float64(r.OrigMaxPos)
	}
	mscale := func(scale, m float64) float64 {
		if scale <= 1 {
			return 1
		}
		return 0.1*m*math.Log(scale) + 1
	}
	attn := r.AttentionFactor
	if attn == 0 {
		if r.Mscale != 0 && r.MscaleAllDim != 0 {
			attn = mscale(r.Factor, r.Mscale) / mscale(r.Factor, r.MscaleAllDim)
		} else {
			attn = mscale(r.Factor, 1)
		}
	}
	fast, slow := r.BetaFast, r.BetaSlow
	if fast == 0 {
		fast = 32
	}
	if slow == 0 {
		slow = 1
	}
	corr := func(rot float64) float64 {
		return float64(dim) * math.Log(orig/(rot*2*math.Pi)) / (2 * math.Log(theta))
	}
	low, high := math.Max(math.Floor(corr(fast)), 0), math.Min(math.Ceil(corr(slow)), float64(dim-1))
	if low == high {
		high += 0.001
	}
	inv := make([]float32, dim/2)
	for i := range inv {
		pos := float32(math.Pow(theta, float64(float32(2*i)/float32(dim))))
		extra, inter := 1/pos, 1/(float32(r.Factor)*pos)
		ramp := float32(math.Min(math.Max((float64(i)-low)/(high-low), 0), 1))
		keep := 1 - ramp // share of the extrapolated (unscaled) frequency
		inv[i] = inter*(1-keep) + extra*keep
	}
	return inv, float32(attn)
}
