//go:build linux && !android

package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/ebitengine/purego"
)

// This file binds the three NVIDIA libraries through purego. Every C
// signature is written out beside its Go type; sizes follow the LP64 ABI:
// CUdeviceptr is an unsigned 64-bit integer, handles (CUcontext, CUstream,
// CUmodule, CUfunction, cublasHandle_t, nvrtcProgram) are pointers and
// size_t is uintptr. Results (CUresult, cublasStatus_t, nvrtcResult) are C
// enums, i.e. 32-bit ints. purego (v0.11) passes up to 32 arguments on
// amd64 and arm64; cublasGemmEx, with 19, is the longest call here.

type cuResult int32

// devptr is a CUdeviceptr.
type devptr uint64

// driverAPI is the subset of libcuda.so.1 the backend uses.
type driverAPI struct {
	// CUresult cuInit(unsigned int flags)
	cuInit func(flags uint32) cuResult
	// CUresult cuDriverGetVersion(int *version)
	cuDriverGetVersion func(v *int32) cuResult
	// CUresult cuDeviceGetCount(int *count)
	cuDeviceGetCount func(n *int32) cuResult
	// CUresult cuDeviceGet(CUdevice *dev, int ordinal)
	cuDeviceGet func(dev *int32, ordinal int32) cuResult
	// CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
	cuDeviceGetAttribute func(v *int32, attrib int32, dev int32) cuResult
	// CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
	cuDeviceGetName func(name *byte, n int32, dev int32) cuResult
	// CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
	cuDeviceTotalMem func(bytes *uintptr, dev int32) cuResult
	// CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
	cuDevicePrimaryCtxRetain func(ctx *uintptr, dev int32) cuResult
	// CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
	cuDevicePrimaryCtxRelease func(dev int32) cuResult
	// CUresult cuCtxSetCurrent(CUcontext ctx)
	cuCtxSetCurrent func(ctx uintptr) cuResult
	// CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
	cuMemGetInfo func(free, total *uintptr) cuResult
	// CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
	cuMemAlloc func(p *devptr, n uintptr) cuResult
	// CUresult cuMemFree_v2(CUdeviceptr dptr)
	cuMemFree func(p devptr) cuResult
	// CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
	cuMemcpyHtoDAsync func(dst devptr, src unsafe.Pointer, n uintptr, s uintptr) cuResult
	// CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
	cuMemcpyDtoHAsync func(dst unsafe.Pointer, src devptr, n uintptr, s uintptr) cuResult
	// CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
	cuMemcpyDtoDAsync func(dst, src devptr, n uintptr, s uintptr) cuResult
	// CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int v, size_t n, CUstream s)
	cuMemsetD32Async func(dst devptr, v uint32, n uintptr, s uintptr) cuResult
	// CUresult cuStreamCreate(CUstream *s, unsigned int flags)
	cuStreamCreate func(s *uintptr, flags uint32) cuResult
	// CUresult cuStreamSynchronize(CUstream s)
	cuStreamSynchronize func(s uintptr) cuResult
	// CUresult cuStreamDestroy_v2(CUstream s)
	cuStreamDestroy func(s uintptr) cuResult
	// CUresult cuModuleLoadData(CUmodule *m, const void *image)
	cuModuleLoadData func(m *uintptr, image *byte) cuResult
	// CUresult cuModuleUnload(CUmodule m)
	cuModuleUnload func(m uintptr) cuResult
	// CUresult cuModuleGetFunction(CUfunction *f, CUmodule m, const char *name)
	cuModuleGetFunction func(f *uintptr, m uintptr, name *byte) cuResult
	// CUresult cuFuncSetAttribute(CUfunction f, CUfunction_attribute attrib, int value)
	cuFuncSetAttribute func(f uintptr, attrib int32, v int32) cuResult
	// CUresult cuLaunchKernel(CUfunction f, unsigned gx, gy, gz, bx, by, bz,
	//	unsigned sharedMemBytes, CUstream s, void **kernelParams, void **extra)
	cuLaunchKernel func(f uintptr, gx, gy, gz, bx, by, bz, shmem uint32, s uintptr, params *uintptr, extra *uintptr) cuResult
	// CUresult cuGetErrorName(CUresult error, const char **pStr)
	cuGetErrorName func(r cuResult, s **byte) cuResult
}

func (d *driverAPI) symbols() []symbol {
	return []symbol{
		{"cuInit", &d.cuInit},
		{"cuDriverGetVersion", &d.cuDriverGetVersion},
		{"cuDeviceGetCount", &d.cuDeviceGetCount},
		{"cuDeviceGet", &d.cuDeviceGet},
		{"cuDeviceGetAttribute", &d.cuDeviceGetAttribute},
		{"cuDeviceGetName", &d.cuDeviceGetName},
		{"cuDeviceTotalMem_v2", &d.cuDeviceTotalMem},
		{"cuDevicePrimaryCtxRetain", &d.cuDevicePrimaryCtxRetain},
		{"cuDevicePrimaryCtxRelease_v2", &d.cuDevicePrimaryCtxRelease},
		{"cuCtxSetCurrent", &d.cuCtxSetCurrent},
		{"cuMemGetInfo_v2", &d.cuMemGetInfo},
		{"cuMemAlloc_v2", &d.cuMemAlloc},
		{"cuMemFree_v2", &d.cuMemFree},
		{"cuMemcpyHtoDAsync_v2", &d.cuMemcpyHtoDAsync},
		{"cuMemcpyDtoHAsync_v2", &d.cuMemcpyDtoHAsync},
		{"cuMemcpyDtoDAsync_v2", &d.cuMemcpyDtoDAsync},
		{"cuMemsetD32Async", &d.cuMemsetD32Async},
		{"cuStreamCreate", &d.cuStreamCreate},
		{"cuStreamSynchronize", &d.cuStreamSynchronize},
		{"cuStreamDestroy_v2", &d.cuStreamDestroy},
		{"cuModuleLoadData", &d.cuModuleLoadData},
		{"cuModuleUnload", &d.cuModuleUnload},
		{"cuModuleGetFunction", &d.cuModuleGetFunction},
		{"cuFuncSetAttribute", &d.cuFuncSetAttribute},
		{"cuLaunchKernel", &d.cuLaunchKernel},
		{"cuGetErrorName", &d.cuGetErrorName},
	}
}

// CUdevice_attribute and CUfunction_attribute values (cuda.h).
const (
	attrMaxSharedPerBlockOptin = 97 // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
	attrCCMajor                = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	attrCCMinor                = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
	attrSMCount                = 16 // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
	funcMaxDynamicShared       = 8  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
)

// CUresult values the backend tells apart.
const (
	cuSuccess          cuResult = 0
	cuErrOutOfMemory   cuResult = 2
	cuErrNoDevice      cuResult = 100
	cuErrUnsupportedPT cuResult = 222 // CUDA_ERROR_UNSUPPORTED_PTX_VERSION
)

// cublasAPI is the subset of libcublas the backend uses.
type cublasAPI struct {
	// cublasStatus_t cublasCreate_v2(cublasHandle_t *h)
	create func(h *uintptr) int32
	// cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
	destroy func(h uintptr) int32
	// cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s)
	setStream func(h uintptr, s uintptr) int32
	// cublasStatus_t cublasGetVersion_v2(cublasHandle_t h, int *version)
	getVersion func(h uintptr, v *int32) int32
	// cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
	setMathMode func(h uintptr, mode int32) int32
	// cublasStatus_t cublasSgemm_v2(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
	//	int m, int n, int k, const float *alpha, const float *A, int lda,
	//	const float *B, int ldb, const float *beta, float *C, int ldc)
	sgemm func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a devptr, lda int32, b devptr, ldb int32, beta *float32, c devptr, ldc int32) int32
	// cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
	//	int m, int n, int k, const void *alpha, const void *A, cudaDataType Atype, int lda,
	//	const void *B, cudaDataType Btype, int ldb, const void *beta, void *C, cudaDataType Ctype,
	//	int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
	// (19 arguments: purego passes up to 32 on amd64 and arm64)
	gemmEx func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a devptr, atype, lda int32, b devptr, btype, ldb int32,
		beta *float32, c devptr, ctype, ldc int32, compute, algo int32) int32
	// cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
	//	cublasOperation_t tb, int m, int n, int k, const float *alpha, const float *A, int lda,
	//	long long strideA, const float *B, int ldb, long long strideB, const float *beta, float *C,
	//	int ldc, long long strideC, int batchCount)
	sgemmSB func(h uintptr, ta, tb int32, m, n, k int32, alpha *float32, a devptr, lda int32, sa int64, b devptr, ldb int32, sb int64,
		beta *float32, c devptr, ldc int32, sc int64, count int32) int32
}

func (c *cublasAPI) symbols() []symbol {
	return []symbol{
		{"cublasCreate_v2", &c.create},
		{"cublasDestroy_v2", &c.destroy},
		{"cublasSetStream_v2", &c.setStream},
		{"cublasGetVersion_v2", &c.getVersion},
		{"cublasSetMathMode", &c.setMathMode},
		{"cublasSgemm_v2", &c.sgemm},
		{"cublasGemmEx", &c.gemmEx},
		{"cublasSgemmStridedBatched", &c.sgemmSB},
	}
}

// cudaDataType and cublasComputeType_t values (library_types.h,
// cublas_api.h), and CUBLAS_GEMM_DEFAULT.
const (
	cudaR32F         = 0
	cudaR16BF        = 14
	cublasCompute32F = 68
	cublasGemmDflt   = -1
)

// cuBLAS enum values (cublas_api.h).
const (
	cublasOpN             = 0
	cublasOpT             = 1
	cublasDefaultMath     = 0
	cublasTF32TensorOp    = 3 // CUBLAS_TF32_TENSOR_OP_MATH
	cublasStatusNotInited = 1
)

// nvrtcAPI is the subset of libnvrtc the backend uses.
type nvrtcAPI struct {
	// nvrtcResult nvrtcVersion(int *major, int *minor)
	version func(major, minor *int32) int32
	// nvrtcResult nvrtcCreateProgram(nvrtcProgram *prog, const char *src, const char *name,
	//	int numHeaders, const char * const *headers, const char * const *includeNames)
	createProgram func(prog *uintptr, src *byte, name *byte, numHeaders int32, headers, includeNames *uintptr) int32
	// nvrtcResult nvrtcCompileProgram(nvrtcProgram prog, int numOptions, const char * const *options)
	compileProgram func(prog uintptr, numOptions int32, options *uintptr) int32
	// nvrtcResult nvrtcGetPTXSize(nvrtcProgram prog, size_t *size)
	getPTXSize func(prog uintptr, size *uintptr) int32
	// nvrtcResult nvrtcGetPTX(nvrtcProgram prog, char *ptx)
	getPTX func(prog uintptr, ptx *byte) int32
	// nvrtcResult nvrtcGetProgramLogSize(nvrtcProgram prog, size_t *size)
	getLogSize func(prog uintptr, size *uintptr) int32
	// nvrtcResult nvrtcGetProgramLog(nvrtcProgram prog, char *log)
	getLog func(prog uintptr, log *byte) int32
	// nvrtcResult nvrtcDestroyProgram(nvrtcProgram *prog)
	destroyProgram func(prog *uintptr) int32
	// nvrtcResult nvrtcGetNumSupportedArchs(int *n) (CUDA 11.2 and later; may be nil)
	numSupportedArchs func(n *int32) int32
	// nvrtcResult nvrtcGetSupportedArchs(int *archs) (may be nil)
	supportedArchs func(archs *int32) int32
}

func (n *nvrtcAPI) symbols() []symbol {
	return []symbol{
		{"nvrtcVersion", &n.version},
		{"nvrtcCreateProgram", &n.createProgram},
		{"nvrtcCompileProgram", &n.compileProgram},
		{"nvrtcGetPTXSize", &n.getPTXSize},
		{"nvrtcGetPTX", &n.getPTX},
		{"nvrtcGetProgramLogSize", &n.getLogSize},
		{"nvrtcGetProgramLog", &n.getLog},
		{"nvrtcDestroyProgram", &n.destroyProgram},
	}
}

// symbol names a C function and the Go function variable it binds to.
type symbol struct {
	name string
	fptr any
}

// openLib opens the first of names that loads; the error lists why each
// failed. Handles are never closed: the NVIDIA libraries keep threads and
// state that must outlive an unload.
func openLib(what string, names ...string) (uintptr, string, error) {
	var why []string
	for _, name := range names {
		if strings.Contains(name, "/") {
			if _, err := os.Stat(name); err != nil {
				continue // a folder tried in case: no need to list it
			}
		}
		h, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err == nil {
			return h, name, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", name, err))
	}
	return 0, "", fmt.Errorf("%s not found (%s)", what, strings.Join(why, "; "))
}

// withCUDADirs returns the sonames followed by the same names in the
// toolkit's usual folders ($CUDA_HOME or $CUDA_PATH, then
// /usr/local/cuda), where cuBLAS and NVRTC often live without being on
// the loader's path. The driver (libcuda) is always on it.
func withCUDADirs(names []string) []string {
	var dirs []string
	for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if d := os.Getenv(env); d != "" {
			dirs = append(dirs, d)
		}
	}
	dirs = append(dirs, "/usr/local/cuda")
	out := append([]string(nil), names...)
	for _, d := range dirs {
		for _, sub := range []string{"lib64", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"} {
			for _, n := range names {
				out = append(out, filepath.Join(d, sub, n))
			}
		}
	}
	return out
}

// bind resolves every symbol of syms in h. A missing symbol is an error,
// never a panic.
func bind(h uintptr, lib string, syms []symbol) error {
	for _, s := range syms {
		p, err := purego.Dlsym(h, s.name)
		if err != nil || p == 0 {
			return fmt.Errorf("%s has no %s (too old?)", lib, s.name)
		}
		purego.RegisterFunc(s.fptr, p)
	}
	return nil
}

// cString returns s as a NUL-terminated byte slice.
func cString(s string) []byte { return append([]byte(s), 0) }

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var b []byte
	for i := uintptr(0); i < 4096; i++ {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}
