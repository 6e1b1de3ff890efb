package model

import (
	"fmt"

	"llmlab/core/tensor"
)

// QuantizeStats reports what Quantize did.
type QuantizeStats struct {
	Tensors     int
	BytesBefore int64 // the projection weights as they were held
	BytesAfter  int64 // as codes and scales
}

// Quantize stores every block projection weight of m as dt (tensor.Q8 or
// tensor.NF4, or tensor.BF16: half the memory of float32, and what bf16
// products on tensor cores read without a conversion each step) and
// freezes the model: QLoRA's frozen base. Embeddings, norms, biases and the
// head stay as they are. Kernels dequantise the weights as they read them;
// adapters (lora) wrap the projections as usual. The weights must be on
// the host (before training moves them to a device).
func (m *Transformer) Quantize(dt tensor.DType) (QuantizeStats, error) {
	var st QuantizeStats
	if !dt.Quantized() && dt != tensor.BF16 {
		return st, fmt.Errorf("model: %v is not a quantized type (Q8, NF4 or BF16)", dt)
	}
	m.Freeze(true)
	for name, slot := range m.Projections() {
		l, ok := (*slot).(*Linear)
		if !ok {
			return st, fmt.Errorf("model: quantize before applying adapters (%s is %T)", name, *slot)
		}
		if l.W.Value.DType.Quantized() || l.W.Value.DType == dt {
			continue
		}
		if l.W.Value.OnDevice() {
			return st, fmt.Errorf("model: %s: quantize before the weights move to a device", name)
		}
		var q *tensor.Tensor
		if dt == tensor.BF16 {
			q = l.W.Value.Convert(dt)
		} else {
			var err error
			if q, err = tensor.Quantize(l.W.Value, dt); err != nil {
				return st, fmt.Errorf("model: %s: %w", name, err)
			}
		}
		st.Tensors++
		st.BytesBefore += int64(l.W.Value.StorageBytes())
		st.BytesAfter += int64(q.StorageBytes())
		l.W.Value = q
	}
	return st, nil
}
