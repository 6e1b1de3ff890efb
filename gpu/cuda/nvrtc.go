//go:build linux && !android

package cuda

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"unsafe"

	"github.com/ebitengine/purego"
)

// nvrtcNames are the NVRTC sonames tried, newest first (Debian ships
// CUDA 11's as libnvrtc.so.11.2).
var nvrtcNames = []string{"libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2", "libnvrtc.so"}

// compiler is a loaded NVRTC.
type compiler struct {
	api          nvrtcAPI
	lib          string
	major, minor int
}

// openNVRTC loads NVRTC and reads its version.
func openNVRTC() (*compiler, error) {
	h, name, err := openLib("libnvrtc (the CUDA runtime compiler)", withCUDADirs(nvrtcNames)...)
	if err != nil {
		return nil, err
	}
	c := &compiler{lib: name}
	if err := bind(h, name, c.api.symbols()); err != nil {
		return nil, err
	}
	// Optional: the list of supported architectures (CUDA 11.2+).
	if p, err := purego.Dlsym(h, "nvrtcGetNumSupportedArchs"); err == nil {
		purego.RegisterFunc(&c.api.numSupportedArchs, p)
		if q, err := purego.Dlsym(h, "nvrtcGetSupportedArchs"); err == nil {
			purego.RegisterFunc(&c.api.supportedArchs, q)
		} else {
			c.api.numSupportedArchs = nil
		}
	}
	var maj, mnr int32
	if r := c.api.version(&maj, &mnr); r != 0 {
		return nil, fmt.Errorf("%s: nvrtcVersion failed: %s", name, nvrtcError(r))
	}
	c.major, c.minor = int(maj), int(mnr)
	return c, nil
}

// Version is NVRTC's "major.minor".
func (c *compiler) Version() string { return fmt.Sprintf("%d.%d", c.major, c.minor) }

// archs lists the virtual architectures (as 10*major+minor) this NVRTC
// compiles for, or nil when it cannot say.
func (c *compiler) archs() []int {
	if c.api.numSupportedArchs == nil {
		return nil
	}
	var n int32
	if c.api.numSupportedArchs(&n) != 0 || n <= 0 || n > 256 {
		return nil
	}
	a := make([]int32, n)
	if c.api.supportedArchs(&a[0]) != 0 {
		return nil
	}
	out := make([]int, n)
	for i, v := range a {
		out[i] = int(v)
	}
	slices.Sort(out)
	return out
}

// pickArch returns the newest architecture this NVRTC supports that is no
// newer than the device's (PTX for an older architecture runs on newer
// devices through the driver's JIT).
func (c *compiler) pickArch(device int) int {
	as := c.archs()
	if len(as) == 0 {
		return device
	}
	best := as[0]
	for _, a := range as {
		if a <= device {
			best = a
		}
	}
	return best
}

// compile turns CUDA C source into PTX for compute_<arch>. On a compile
// error the message holds NVRTC's log.
func (c *compiler) compile(src, name string, arch int) ([]byte, error) {
	csrc, cname := cString(src), cString(name)
	var prog uintptr
	if r := c.api.createProgram(&prog, &csrc[0], &cname[0], 0, nil, nil); r != 0 {
		return nil, fmt.Errorf("nvrtcCreateProgram: %s", nvrtcError(r))
	}
	defer c.api.destroyProgram(&prog)
	opts := []string{
		fmt.Sprintf("--gpu-architecture=compute_%d", arch),
	}
	// Each option is a NUL-terminated copy; the array holds their
	// addresses. The copies stay alive (cs) until the call returns.
	cs := make([][]byte, len(opts))
	ptrs := make([]uintptr, len(opts))
	for i, o := range opts {
		cs[i] = cString(o)
		ptrs[i] = uintptr(unsafe.Pointer(&cs[i][0]))
	}
	r := c.api.compileProgram(prog, int32(len(opts)), &ptrs[0])
	runtime.KeepAlive(cs)
	if r != 0 {
		return nil, fmt.Errorf("NVRTC %s compiling %s for compute_%d: %s\n%s", c.Version(), name, arch, nvrtcError(r), c.log(prog))
	}
	var n uintptr
	if r := c.api.getPTXSize(prog, &n); r != 0 || n == 0 {
		return nil, fmt.Errorf("nvrtcGetPTXSize: %s", nvrtcError(r))
	}
	ptx := make([]byte, n) // NUL included
	if r := c.api.getPTX(prog, &ptx[0]); r != 0 {
		return nil, fmt.Errorf("nvrtcGetPTX: %s", nvrtcError(r))
	}
	return ptx, nil
}

func (c *compiler) log(prog uintptr) string {
	var n uintptr
	if c.api.getLogSize(prog, &n) != 0 || n <= 1 {
		return "(no log)"
	}
	b := make([]byte, n)
	if c.api.getLog(prog, &b[0]) != 0 {
		return "(no log)"
	}
	return string(b[:n-1])
}

// cachedPTX returns the PTX of src for arch, from the disk cache under
// os.UserCacheDir()/llmlab/cuda when an earlier run compiled the same
// source with the same NVRTC, else compiled now and stored there (a cache
// that cannot be written only costs the compile next time).
func (c *compiler) cachedPTX(src, name string, arch int) ([]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00compute_%d\x00nvrtc %s\x00", src, arch, c.Version())
	key := hex.EncodeToString(h.Sum(nil))[:32]
	dir := ""
	if base, err := os.UserCacheDir(); err == nil && base != "" {
		dir = filepath.Join(base, "llmlab", "cuda")
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-sm%d-%s.ptx", name, arch, key))
	if dir != "" {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[len(b)-1] == 0 {
			return b, nil
		}
	}
	ptx, err := c.compile(src, name, arch)
	if err != nil {
		return nil, err
	}
	if dir != "" && os.MkdirAll(dir, 0o755) == nil {
		if f, err := os.CreateTemp(dir, "ptx-*"); err == nil {
			_, werr := f.Write(ptx)
			cerr := f.Close()
			if werr == nil && cerr == nil {
				os.Rename(f.Name(), path)
			} else {
				os.Remove(f.Name())
			}
		}
	}
	return ptx, nil
}

// nvrtcError names an nvrtcResult.
func nvrtcError(r int32) string {
	names := []string{"NVRTC_SUCCESS", "NVRTC_ERROR_OUT_OF_MEMORY", "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
		"NVRTC_ERROR_INVALID_INPUT", "NVRTC_ERROR_INVALID_PROGRAM", "NVRTC_ERROR_INVALID_OPTION",
		"NVRTC_ERROR_COMPILATION", "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
		"NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION", "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
		"NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID", "NVRTC_ERROR_INTERNAL_ERROR"}
	if r >= 0 && int(r) < len(names) {
		return names[r]
	}
	return fmt.Sprintf("nvrtcResult %d", r)
}
