package cli

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"llmlab/core/model"
	"llmlab/core/tensor"
)

type tensorDType = tensor.DType

const (
	dtF32  = tensor.F32
	dtF16  = tensor.F16
	dtBF16 = tensor.BF16
)

// memEstimate is a run's memory need in bytes, by part.
type memEstimate struct {
	Weights, Grads, Optimizer, Activations int64
}

func (m memEstimate) total() int64 { return m.Weights + m.Grads + m.Optimizer + m.Activations }

// estimateMemory sizes a training step: trainable parameters carry a
// gradient and two AdamW moments; activations are what the tape's arena
// holds per token, counted op by op below, once for the forward values
// and once more for their gradients in the backward pass.
func estimateMemory(m *model.Transformer, batch, ctx int, trainable int64) memEstimate {
	c := m.Cfg
	P := int64(m.NumParams())
	N := int64(batch * ctx)
	C, I := int64(c.Hidden), int64(c.Intermediate)
	q, kv := int64(c.Heads*c.HeadDim), int64(c.KVHeads*c.HeadDim)
	var perLayer int64
	if c.Arch == model.GPT2 {
		// ln_1, c_attn, its split, attention, c_proj, residual, ln_2,
		// c_fc, gelu, mlp c_proj, residual
		perLayer = C + (q + 2*kv) + (q + 2*kv) + q + C + C + C + I + I + C + C
	} else {
		// input norm, q, k, v, rope(q), rope(k), attention, o_proj,
		// residual, post norm, gate, up, swiglu, down, residual
		perLayer = C + q + 2*kv + q + kv + q + C + C + C + 3*I + C + C
	}
	// Forward values all live until the backward pass; a gradient is
	// released once its producer has run backward, so at the peak part of
	// one layer's gradients live beside the head's (measured: 0.95-1.06 of
	// the arena, memory_test.go).
	// The final norm per token; the logits and their loss (2V a row, and
	// as much again for their gradients) exist only for the rows of one
	// loss chunk at a time when the vocabulary is large (Transformer.Loss).
	head := 2 * C
	logits := 4 * int64(c.VocabSize) * min(N, int64(m.LossChunk(nil)))
	perToken := int64(c.Layers)*perLayer + head + perLayer/2 + head
	return memEstimate{Weights: P * 4, Grads: trainable * 4, Optimizer: trainable * 8, Activations: (N*perToken + logits) * 4}
}

// availableMemory reads MemAvailable from /proc/meminfo (0 if unknown).
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// checkMemory refuses a run that will not fit, with the numbers.
func checkMemory(m *model.Transformer, batch, ctx int, peft bool) error {
	trainable := int64(m.NumParams())
	if peft {
		trainable = int64(m.NumParams()) / 100
	}
	est := estimateMemory(m, batch, ctx, trainable)
	avail := availableMemory()
	if avail > 0 && est.total() > avail {
		return BadInput(fmt.Errorf("this run needs about %s (weights %s, gradients %s, optimizer %s, activations %s) but %s is available; lower --batch or --ctx",
			bytesHuman(est.total()), bytesHuman(est.Weights), bytesHuman(est.Grads), bytesHuman(est.Optimizer), bytesHuman(est.Activations), bytesHuman(avail)))
	}
	return nil
}

func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}
