// Package autograd records coarse tensor ops on a tape and runs them
// backwards. (Tape, Var and the ops come in tape.go.)
package autograd

import "llmlab/core/tensor"

// Param is a named model parameter. Name is its Hugging Face key, which
// makes loading and saving HF folders a name-for-name copy.
type Param struct {
	Name   string
	Value  *tensor.Tensor // the weights (F32 when trainable; may be F16/BF16 when frozen)
	Grad   *tensor.Tensor // F32, same shape; nil while frozen
	Frozen bool
}
