//go:build linux

package checkpoint

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Release tells the kernel that the process no longer needs the pages
// wholly inside b, a part of the mapped file (the source of a tensor that
// was copied, such as a q/k weight llama.cpp permuted), so they stop
// counting in its resident memory; read again, they come back from the
// file. A b outside the mapping, or a file that was read rather than
// mapped, is left alone.
func (g *GGUF) Release(b []byte) {
	if g.unmap == nil || len(b) == 0 || len(g.data) == 0 {
		return
	}
	base := uintptr(unsafe.Pointer(&g.data[0]))
	lo := uintptr(unsafe.Pointer(&b[0]))
	hi := lo + uintptr(len(b))
	if lo < base || hi > base+uintptr(len(g.data)) {
		return
	}
	page := uintptr(os.Getpagesize())
	first, last := (lo-base+page-1)/page*page, (hi-base)/page*page
	if first >= last {
		return
	}
	_ = unix.Madvise(g.data[first:last], unix.MADV_DONTNEED) // advice only: an error changes nothing
}
