package tensor

// MatMul is implemented by the GEMM work (packed, blocked, asm micro-kernels).
func (c *CPU) MatMul(dst, a, b *Tensor, o MatMulOpts) { panic("tensor: MatMul not implemented yet") }
