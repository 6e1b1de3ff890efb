//go:build linux || freebsd

package vulkan

import (
	"fmt"
	"unsafe"

	"llmlab/core/tensor"
)

// tensor.Memory: device tensors are buffers from the device's pool. A
// buffer gets an address of its own when it is made (never the host's:
// addresses in this space are only looked up, never dereferenced), keeps it
// through the pool, and a tensor's Ptr is that address plus its offset in
// the buffer, so views (Offset, the arena's tensors) are plain arithmetic.

// Alloc returns device memory from the pool.
func (b *Backend) Alloc(bytes int) (uintptr, error) {
	if bytes < 0 {
		return 0, fmt.Errorf("vulkan: Alloc(%d)", bytes)
	}
	if b.d == nil {
		return 0, fmt.Errorf("vulkan: Alloc on a closed backend")
	}
	n := max(bytes, 4)
	buf, err := b.d.alloc(uint64(n))
	if err != nil {
		return 0, err
	}
	if buf.addr == 0 {
		buf.addr = b.next
		b.next += uintptr((buf.size + 255) / 256 * 256)
	}
	b.space.Add(buf.addr, uintptr(n), buf)
	b.stats.LiveBytes += int64(buf.size)
	b.stats.PeakBytes = max(b.stats.PeakBytes, b.stats.LiveBytes)
	return buf.addr, nil
}

// Free returns memory from Alloc to the pool, for reuse once the commands
// recorded so far have run.
func (b *Backend) Free(ptr uintptr) {
	if b.d == nil {
		return // closed: the device and all its memory are gone
	}
	buf, ok := b.space.Remove(ptr)
	if !ok {
		panic(fmt.Sprintf("vulkan: Free of %#x, which Alloc did not return", ptr))
	}
	b.stats.LiveBytes -= int64(buf.size)
	b.d.release(buf)
}

// bind returns where a device tensor of this backend lives.
func (b *Backend) bind(t *tensor.Tensor) binding {
	if t.Dev.Mem != tensor.Memory(b) {
		panic(fmt.Sprintf("vulkan: tensor %v lives in another backend's memory", t.Shape))
	}
	if t.DType != tensor.F32 {
		panic(fmt.Sprintf("vulkan: %v device tensor %v", t.DType, t.Shape))
	}
	n := uintptr(4 * t.Numel())
	s, off, ok := b.space.Find(t.Dev.Ptr, n)
	if !ok {
		panic(fmt.Sprintf("vulkan: tensor %v at %#x (%d bytes) is in no allocation of this backend", t.Shape, t.Dev.Ptr, n))
	}
	return binding{b: s.Val, off: uint64(off), size: uint64(n)}
}

// Copy copies src to dst: host to device (recorded, through a staging
// buffer unless the memory is mapped and idle), device to host (this is
// where the host waits: the command buffer is submitted and its fence
// waited on), or device to device (recorded).
func (b *Backend) Copy(dst, src *tensor.Tensor) {
	if dst.DType != src.DType || dst.Numel() != src.Numel() || dst.DType != tensor.F32 {
		panic(fmt.Sprintf("vulkan.Copy: %v %v to %v %v", src.DType, src.Shape, dst.DType, dst.Shape))
	}
	n := 4 * dst.Numel()
	if n == 0 {
		return
	}
	switch {
	case dst.OnDevice() && src.OnDevice():
		b.must(b.d.copyBuffer(b.bind(src), b.bind(dst), uint64(n)))
	case dst.OnDevice():
		if len(src.F32) != dst.Numel() {
			panic(fmt.Sprintf("vulkan.Copy: host tensor %v has %d values", src.Shape, len(src.F32)))
		}
		b.put(b.bind(dst), unsafe.Pointer(&src.F32[0]), n, false)
		b.stats.Uploads++
		b.stats.UploadBytes += int64(n)
	case src.OnDevice():
		if len(dst.F32) != src.Numel() {
			panic(fmt.Sprintf("vulkan.Copy: host tensor %v has %d values", dst.Shape, len(dst.F32)))
		}
		sb, st, err := b.d.readable(b.bind(src))
		b.must(err)
		b.must(b.d.submit())
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst.F32[0])), n), unsafe.Slice((*byte)(unsafe.Add(sb.b.ptr, sb.off)), n))
		if st != nil {
			b.d.release(st)
		}
		b.stats.Downloads++
		b.stats.DownloadBytes += int64(n)
	default:
		copy(dst.F32, src.F32)
	}
}

// Fill sets every 32-bit word of t to bits on the device (vkCmdFillBuffer,
// recorded: zeroing never goes through the host).
func (b *Backend) Fill(t *tensor.Tensor, bits uint32) {
	if !t.OnDevice() || t.DType != tensor.F32 {
		panic(fmt.Sprintf("vulkan.Fill: %v tensor %v is not in device memory", t.DType, t.Shape))
	}
	if t.Numel() == 0 {
		return
	}
	b.must(b.d.fill(b.bind(t), bits))
	b.stats.Fills++
}

// CopyCols copies a block of columns between device tensors (see
// tensor.Memory).
func (b *Backend) CopyCols(dst *tensor.Tensor, dOff int, src *tensor.Tensor, sOff, w int) {
	N, dC, sC := dst.Rows(), dst.Cols(), src.Cols()
	if N == 0 || w == 0 {
		return
	}
	if !b.fits(dst, src) {
		b.onCPU(func() { tensor.CopyCols(dst, dOff, src, sOff, w) }, dst, src)
		return
	}
	sb := b.in(src)
	b.run("copycols", groups1D(N*w, 256), []uint32{u(N), u(w), u(dC), u(dOff), u(sC), u(sOff)}, b.out(dst, true), sb)
	b.finish()
}
