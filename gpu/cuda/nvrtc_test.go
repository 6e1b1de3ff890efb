//go:build linux && !android

package cuda

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

// TestKernelsCompile compiles kernels.cu with whatever NVRTC this machine
// has (no GPU needed) for compute_80 and, where this NVRTC knows it,
// compute_90, and checks that the PTX defines every kernel the backend
// looks up, and that the backend looks up every kernel.
func TestKernelsCompile(t *testing.T) {
	c, err := openNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here (install libnvrtc11.2 or the CUDA toolkit to run this): %v", err)
	}
	t.Logf("NVRTC %s (%s), architectures %v", c.Version(), c.lib, c.archs())
	var k kernels
	want := k.names()
	// Every extern "C" __global__ in the source, with the macro-made
	// attention kernels spelled out.
	var defined []string
	for _, m := range regexp.MustCompile(`extern "C" __global__ void (\w+)\(`).FindAllStringSubmatch(kernelSource, -1) {
		if strings.Contains(m[1], "##") {
			continue
		}
		defined = append(defined, m[1])
	}
	for _, m := range regexp.MustCompile(`extern "C" __global__ void (\w+)_##DL\(`).FindAllStringSubmatch(kernelSource, -1) {
		for _, dl := range []int{1, 2, 4, 8} {
			defined = append(defined, fmt.Sprintf("%s_%d", m[1], dl))
		}
	}
	for _, name := range defined {
		if _, ok := want[name]; !ok {
			t.Errorf("kernels.cu defines %s, which kernels.names does not list", name)
		}
	}
	for name := range want {
		if !slices.Contains(defined, name) {
			t.Errorf("kernels.names lists %s, which kernels.cu does not define", name)
		}
	}
	archs := []int{80}
	if as := c.archs(); as == nil || slices.Contains(as, 90) {
		archs = append(archs, 90)
	}
	for _, arch := range archs {
		t.Run(fmt.Sprintf("compute_%d", arch), func(t *testing.T) {
			ptx, err := c.compile(kernelSource, kernelFile, arch)
			if err != nil {
				t.Fatal(err)
			}
			for name := range want {
				if !bytes.Contains(ptx, []byte(".entry "+name+"(")) {
					t.Errorf("PTX has no entry %s", name)
				}
			}
		})
	}
}

// TestCompileErrorHasLog checks that a compile error carries NVRTC's log.
func TestCompileErrorHasLog(t *testing.T) {
	c, err := openNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here: %v", err)
	}
	_, err = c.compile(`extern "C" __global__ void k(float* x) { x[0] = undefined_name; }`, "bad.cu", 80)
	if err == nil || !strings.Contains(err.Error(), "undefined_name") {
		t.Fatalf("error %v does not quote the log", err)
	}
}

// TestPTXCache checks that a second request is served from the disk cache.
func TestPTXCache(t *testing.T) {
	c, err := openNVRTC()
	if err != nil {
		t.Skipf("no NVRTC here: %v", err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	src := `extern "C" __global__ void k(float* x) { x[threadIdx.x] = 1.f; }`
	a, err := c.cachedPTX(src, "tiny.cu", 80)
	if err != nil {
		t.Fatal(err)
	}
	c.api.compileProgram = nil // a compile now would crash: the cache must answer
	b, err := c.cachedPTX(src, "tiny.cu", 80)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("cached PTX differs (err %v)", err)
	}
}

// TestBindingSignatures registers every driver and cuBLAS function type
// against a libc symbol: purego checks a signature (argument kinds and
// counts: at most 15) when it is registered, so this catches one it cannot
// call without needing the NVIDIA libraries. Nothing is called.
func TestBindingSignatures(t *testing.T) {
	h, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Skipf("no libc.so.6: %v", err)
	}
	p, err := purego.Dlsym(h, "abs")
	if err != nil {
		t.Skip(err)
	}
	var d driverAPI
	var c cublasAPI
	var n nvrtcAPI
	syms := append(append(d.symbols(), c.symbols()...), n.symbols()...)
	syms = append(syms, symbol{"nvrtcGetNumSupportedArchs", &n.numSupportedArchs}, symbol{"nvrtcGetSupportedArchs", &n.supportedArchs})
	for _, s := range syms {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: purego cannot bind its Go type: %v", s.name, r)
				}
			}()
			purego.RegisterFunc(s.fptr, p)
		}()
	}
}

// TestOpenWithoutDriver checks that Open fails cleanly, naming libcuda,
// on a machine without the NVIDIA driver (and works where there is one).
func TestOpenWithoutDriver(t *testing.T) {
	b, err := Open()
	if err == nil {
		t.Logf("CUDA is here: %s", b.Name())
		b.Close()
		return
	}
	t.Logf("Open: %v", err)
	if _, e := purego.Dlopen("libcuda.so.1", purego.RTLD_NOW|purego.RTLD_LOCAL); e != nil && !strings.Contains(err.Error(), "libcuda") {
		t.Fatalf("without libcuda.so.1, Open's error %q does not say so", err)
	}
}

func TestSizeClass(t *testing.T) {
	for _, tc := range []struct{ n, want uintptr }{
		{1, 256}, {256, 256}, {257, 320}, {512, 512}, {513, 640}, {1000, 1024}, {1025, 1280}, {3 << 20, 3 << 20}, {(3 << 20) + 1, 7 << 19},
	} {
		if got := sizeClass(tc.n); got != tc.want {
			t.Errorf("sizeClass(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
	for n := uintptr(1); n < 1<<22; n = n*5/4 + 1 {
		if s := sizeClass(n); s < n || s > n*5/4+256 {
			t.Errorf("sizeClass(%d) = %d: outside [n, 1.25n]", n, s)
		}
	}
}

// kernelParams reads each kernel's parameter kinds from kernels.cu:
// "ptr", "int32" (int), "int64" (i64) or "float32" (float).
func kernelParams(t testing.TB) map[string][]string {
	out := map[string][]string{}
	re := regexp.MustCompile(`extern "C" __global__ void (\w+?)(_##DL)?\(([^)]*)\)`)
	for _, m := range re.FindAllStringSubmatch(kernelSource, -1) {
		var kinds []string
		for _, p := range strings.Split(strings.ReplaceAll(m[3], "\\", " "), ",") {
			p = strings.TrimSpace(p)
			switch {
			case strings.Contains(p, "*"):
				kinds = append(kinds, "ptr")
			case strings.HasPrefix(p, "i64 "):
				kinds = append(kinds, "int64")
			case strings.HasPrefix(p, "int "):
				kinds = append(kinds, "int32")
			case strings.HasPrefix(p, "float "):
				kinds = append(kinds, "float32")
			default:
				t.Fatalf("kernel %s: parameter %q of unknown kind", m[1], p)
			}
		}
		if m[2] == "" {
			out[m[1]] = kinds
			continue
		}
		for _, dl := range []int{1, 2, 4, 8} {
			out[fmt.Sprintf("%s_%d", m[1], dl)] = kinds
		}
	}
	return out
}

// argChecker returns a Backend.checkArgs that compares every launch's Go
// argument types with the kernel's C parameters, one for one.
func argChecker(t testing.TB, b *Backend) func(fn uintptr, args []any) error {
	params := kernelParams(t)
	names := map[uintptr]string{}
	for name, p := range b.k.names() {
		names[*p] = name
	}
	return func(fn uintptr, args []any) error {
		name, ok := names[fn]
		if !ok {
			return fmt.Errorf("launch of an unknown function %#x", fn)
		}
		want := params[name]
		if len(args) != len(want) {
			return fmt.Errorf("kernel %s: %d arguments, it takes %d", name, len(args), len(want))
		}
		for i, a := range args {
			got := fmt.Sprintf("%T", a)
			if got == "cuda.devptr" {
				got = "ptr"
			}
			if got != want[i] {
				return fmt.Errorf("kernel %s: argument %d is %s, the parameter is %s", name, i, got, want[i])
			}
		}
		return nil
	}
}

func TestKernelParams(t *testing.T) {
	p := kernelParams(t)
	var k kernels
	for name := range k.names() {
		if len(p[name]) == 0 {
			t.Errorf("no parameters parsed for %s", name)
		}
	}
	if got := strings.Join(p["attn_fwd_4"], " "); got != "ptr ptr ptr ptr ptr ptr ptr ptr ptr int32 int32 int32 int32 int32 int32 int32 int32 float32 int32 float32" {
		t.Errorf("attn_fwd_4 parameters: %s", got)
	}
}
