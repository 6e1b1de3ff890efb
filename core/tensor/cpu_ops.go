package tensor

func (c *CPU) Embedding(dst *Tensor, ids []int32, table *Tensor)          { panic("not implemented") }
func (c *CPU) EmbeddingBackward(dtable *Tensor, ids []int32, dy *Tensor)  { panic("not implemented") }
func (c *CPU) LayerNorm(dst, mean, rstd, x, w, b *Tensor, eps float32)    { panic("not implemented") }
func (c *CPU) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *Tensor) { panic("not implemented") }
func (c *CPU) RMSNorm(dst, rstd, x, w *Tensor, eps float32)               { panic("not implemented") }
func (c *CPU) RMSNormBackward(dx, dw, dy, x, w, rstd *Tensor)             { panic("not implemented") }
func (c *CPU) GELU(dst, x *Tensor)                                        { panic("not implemented") }
func (c *CPU) GELUBackward(dx, dy, x *Tensor)                             { panic("not implemented") }
func (c *CPU) SwiGLU(dst, gate, up *Tensor)                               { panic("not implemented") }
func (c *CPU) SwiGLUBackward(dgate, dup, dy, gate, up *Tensor)            { panic("not implemented") }
func (c *CPU) CrossEntropy(loss, lse, logits *Tensor, targets []int32)    { panic("not implemented") }
func (c *CPU) CrossEntropyBackward(dlogits, dloss, logits, lse *Tensor, targets []int32) {
	panic("not implemented")
}
func (c *CPU) Add(dst, a, b *Tensor)                  { panic("not implemented") }
func (c *CPU) Mul(dst, a, b *Tensor)                  { panic("not implemented") }
func (c *CPU) AddScaled(dst, a *Tensor, s float32)    { panic("not implemented") }
func (c *CPU) AddBias(dst, x, bias *Tensor)           { panic("not implemented") }
func (c *CPU) SumRows(dst, x *Tensor)                 { panic("not implemented") }
func (c *CPU) SplitCols(dsts []*Tensor, x *Tensor)    { panic("not implemented") }
func (c *CPU) ConcatCols(dst *Tensor, srcs []*Tensor) { panic("not implemented") }
