package tensor

// NewRoPETable precomputes cos/sin for rotate-half RoPE.
func NewRoPETable(dim, maxPos int, theta float64) *RoPETable {
	panic("tensor: NewRoPETable not implemented yet")
}

func (c *CPU) RoPE(dst, x *Tensor, pos []int32, tab *RoPETable)         { panic("not implemented") }
func (c *CPU) RoPEBackward(dx, dy *Tensor, pos []int32, tab *RoPETable) { panic("not implemented") }
func (c *CPU) Attention(out, lse, q, k, v *Tensor, o *AttentionOpts)    { panic("not implemented") }
func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *Tensor, o *AttentionOpts) {
	panic("not implemented")
}
