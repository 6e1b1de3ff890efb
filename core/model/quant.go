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
// tensor.NF4) and freezes the model: QLoRA's frozen base. Embeddings, norms,
// biases and the head stay as they are. Kernels dequantise the weights as
// they read them; adapters (lora) wrap the projections as usual.
func (m *Transformer) Quantize(dt tensor.DType) (QuantizeStats, error) {
	var st QuantizeStats
	if !dt.Quantized() {
		return st, fmt.Errorf("model: %v is not a quantized type (Q8 or NF4)", dt)
	}
	m.Freeze(true)
	for name, slot := range m.Projections() {
		l, ok := (*slot).(*Linear)
		if !ok {
			return st, fmt.Errorf("model: quantize before applying adapters (%s is %T)", name, *slot)
		}
		if l.W.Value.DType.Quantized() {
			continue
		}
		q, err := tensor.Quantize(l.W.Value, dt)
		if err != nil {
			return st, fmt.Errorf("model: %s: %w", name, err)
		}
		st.Tensors++
		st.BytesBefore += int64(l.W.Value.StorageBytes())
		st.BytesAfter += int64(q.StorageBytes())
		l.W.Value = q
	}
	return st, nil
}
