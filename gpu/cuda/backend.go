//go:build linux && !android

package cuda

import (
	_ "embed"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"unsafe"

	"llmlab/core/tensor"
)

//go:embed kernels.cu
var kernelSource string

// kernelFile names the program in NVRTC's messages and the PTX cache.
const kernelFile = "llmlab_kernels.cu"

// minDriver is the oldest driver API version accepted (CUDA 11.2: NVRTC
// 11.2's PTX and cuBLAS 11 need it).
const minDriver = 11020

// libcublasNames are the cuBLAS sonames tried, in order.
var libcublasNames = []string{"libcublas.so.12", "libcublas.so.13", "libcublas.so.11"}

// Backend runs tensor ops on one CUDA device. It is safe for concurrent
// use: ops are serialised (one stream).
type Backend struct {
	mu    sync.Mutex
	drv   driverAPI
	blas  cublasAPI
	nvrtc *compiler

	dev    int32
	ctx    uintptr // the device's primary context
	stream uintptr
	handle uintptr // cuBLAS
	module uintptr
	k      kernels
	name   string
	arch   int // compute capability as 10*major+minor
	maxShm int // dynamic shared memory a block may opt in to, bytes
	shmSet map[uintptr]int
	tf32   bool
	bf16   bool // MatMul on bfloat16 tensor cores (SetBF16)
	// hostOnly: SetResident(false), tensors stay on the host
	hostOnly bool
	closed   bool
	err      error       // the first CUDA error; once set every op runs on cpu
	cpu      *tensor.CPU // fallback after an error, and for shapes the kernels do not take
	pool     pool
	weights  map[weightKey]*weightEntry
	op       op
	one      float32 // cuBLAS alpha/beta, read through pointers
	zero     float32
	argVals  [32]uint64  // kernel parameter values ...
	argPtrs  [32]uintptr // ... and the array of their addresses cuLaunchKernel reads
	// checkArgs, when set (by tests), vets each launch's arguments against
	// the kernel's parameter list.
	checkArgs func(fn uintptr, args []any) error

	live      map[devptr]uintptr // Alloc'd buffers (device tensors) and their size classes
	intsCache map[intsKey]*intsEntry
	intsSeed  maphash.Seed
	adamTab   []int64 // AdamWAll's table, reused
	stats     Stats
	prof      *profile // SetProfile; nil when off

	attnCalls           []attnCall // dense attention's call list, reused
	attnBudget          int64      // dense attention's score buffer bound (attnDenseBytes; tests lower it)
	attnAlpha, attnBeta float32    // its products' alpha and beta, read through pointers
}

// Stats counts the traffic between host and device since Open: copies
// each way (an op's host inputs and outputs, int arrays, first uses of
// weights, and tensor.Memory's Copy), waits for the stream, fills, and
// how often an op found a float32 argument already on the device.
type Stats struct {
	Uploads, Downloads         int
	UploadBytes, DownloadBytes int64
	Syncs, Fills, Resident     int
	// CPUOps counts ops that ran on the CPU backend instead: shapes the
	// kernels decline, or every op after a device error.
	CPUOps int
	// LiveBytes is the device memory held now by device tensors, the
	// device copies of storage-only weights and the running op's scratch
	// (size classes, so up to 25% above what was asked), PeakBytes its
	// maximum. The pool's idle buffers and cuBLAS's workspace are not in
	// it.
	LiveBytes, PeakBytes int64
}

// Copies is the number of copies either way.
func (s Stats) Copies() int { return s.Uploads + s.Downloads }

// CopiedBytes is the number of bytes copied either way.
func (s Stats) CopiedBytes() int64 { return s.UploadBytes + s.DownloadBytes }

// ResetPeak sets PeakBytes to LiveBytes, to measure the peak of a phase.
func (b *Backend) ResetPeak() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stats.PeakBytes = b.stats.LiveBytes
}

// Stats returns the counts since Open.
func (b *Backend) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

var (
	_ tensor.Backend    = (*Backend)(nil)
	_ tensor.Memory     = (*Backend)(nil)
	_ tensor.ArgMaxer   = (*Backend)(nil)
	_ tensor.MultiAdamW = (*Backend)(nil)
)

// Open loads the CUDA libraries, takes device 0's primary context and
// compiles (or loads from the cache) the kernels. The error says which
// step failed: a missing library, no device, an old driver.
func Open() (*Backend, error) { return OpenDevice(0) }

// OpenDevice is Open for the device of the given ordinal.
func OpenDevice(ordinal int) (*Backend, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b := &Backend{cpu: tensor.NewCPU(0), one: 1, weights: map[weightKey]*weightEntry{}, shmSet: map[uintptr]int{},
		live: map[devptr]uintptr{}, intsCache: map[intsKey]*intsEntry{}, intsSeed: maphash.MakeSeed(), attnBudget: attnDenseBytes}
	b.pool.free = map[uintptr][]devptr{}
	if err := b.open(ordinal); err != nil {
		b.release()
		return nil, fmt.Errorf("cuda: %w", err)
	}
	return b, nil
}

func (b *Backend) open(ordinal int) error {
	h, _, err := openLib("libcuda.so.1 (the NVIDIA driver)", "libcuda.so.1")
	if err != nil {
		return err
	}
	if err := bind(h, "libcuda.so.1", b.drv.symbols()); err != nil {
		return err
	}
	d := &b.drv
	if r := d.cuInit(0); r != cuSuccess {
		if r == cuErrNoDevice {
			return errors.New("no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE)")
		}
		return fmt.Errorf("cuInit failed: %s (is the NVIDIA kernel driver loaded?)", b.errName(r))
	}
	var ver int32
	if r := d.cuDriverGetVersion(&ver); r != cuSuccess {
		return fmt.Errorf("cuDriverGetVersion: %s", b.errName(r))
	}
	if ver < minDriver {
		return fmt.Errorf("driver version %s too old (need CUDA %s or later)", cudaVersion(ver), cudaVersion(minDriver))
	}
	var count int32
	if r := d.cuDeviceGetCount(&count); r != cuSuccess || count == 0 {
		return errors.New("no CUDA device")
	}
	if ordinal < 0 || ordinal >= int(count) {
		return fmt.Errorf("no CUDA device %d (have %d)", ordinal, count)
	}
	if r := d.cuDeviceGet(&b.dev, int32(ordinal)); r != cuSuccess {
		return fmt.Errorf("cuDeviceGet(%d): %s", ordinal, b.errName(r))
	}
	var major, minor, shm int32
	d.cuDeviceGetAttribute(&major, attrCCMajor, b.dev)
	d.cuDeviceGetAttribute(&minor, attrCCMinor, b.dev)
	d.cuDeviceGetAttribute(&shm, attrMaxSharedPerBlockOptin, b.dev)
	b.arch = int(10*major + minor)
	b.maxShm = max(int(shm), 48<<10)
	if b.arch < 60 {
		return fmt.Errorf("device compute capability %d.%d is too old (need 6.0: double atomics and shuffles)", major, minor)
	}
	var nameBuf [256]byte
	d.cuDeviceGetName(&nameBuf[0], int32(len(nameBuf)), b.dev)
	devName := goString(&nameBuf[0])

	if r := d.cuDevicePrimaryCtxRetain(&b.ctx, b.dev); r != cuSuccess {
		b.ctx = 0
		return fmt.Errorf("cuDevicePrimaryCtxRetain: %s", b.errName(r))
	}
	if r := d.cuCtxSetCurrent(b.ctx); r != cuSuccess {
		return fmt.Errorf("cuCtxSetCurrent: %s", b.errName(r))
	}
	if r := d.cuStreamCreate(&b.stream, 0); r != cuSuccess {
		b.stream = 0
		return fmt.Errorf("cuStreamCreate: %s", b.errName(r))
	}

	hb, blasLib, err := openLib("libcublas", withCUDADirs(libcublasNames)...)
	if err != nil {
		return err
	}
	if err := bind(hb, blasLib, b.blas.symbols()); err != nil {
		return err
	}
	if s := b.blas.create(&b.handle); s != 0 {
		b.handle = 0
		return fmt.Errorf("cublasCreate: %s", cublasError(s))
	}
	if s := b.blas.setStream(b.handle, b.stream); s != 0 {
		return fmt.Errorf("cublasSetStream: %s", cublasError(s))
	}
	var bv int32
	b.blas.getVersion(b.handle, &bv)

	if b.nvrtc, err = openNVRTC(); err != nil {
		return err
	}
	arch := b.nvrtc.pickArch(b.arch)
	ptx, err := b.nvrtc.cachedPTX(kernelSource, kernelFile, arch)
	if err != nil {
		return err
	}
	if r := d.cuModuleLoadData(&b.module, &ptx[0]); r != cuSuccess {
		b.module = 0
		if r == cuErrUnsupportedPT {
			return fmt.Errorf("driver version %s too old for the PTX of NVRTC %s (%s): update the NVIDIA driver or use an older libnvrtc",
				cudaVersion(ver), b.nvrtc.Version(), b.nvrtc.lib)
		}
		return fmt.Errorf("cuModuleLoadData: %s", b.errName(r))
	}
	if err := b.k.load(b); err != nil {
		return err
	}
	b.name = fmt.Sprintf("cuda (%s, sm_%d, driver %s, cuBLAS %d.%d, NVRTC %s)", devName, b.arch, cudaVersion(ver),
		bv/10000, bv/100%100, b.nvrtc.Version())
	return nil
}

// Name describes the device and the libraries, e.g. "cuda (NVIDIA H200,
// sm_90, driver 12.4, cuBLAS 12.4, NVRTC 12.4)".
func (b *Backend) Name() string { return b.name }

// Err returns the first CUDA error an op hit (after which every op runs on
// the CPU), or nil.
func (b *Backend) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// SetTF32 lets cuBLAS use TF32 tensor-core math for MatMul (faster, with
// about 10 mantissa bits in the products) or, off (the default), exact
// float32.
func (b *Backend) SetTF32(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.handle == 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.drv.cuCtxSetCurrent(b.ctx)
	mode := int32(cublasDefaultMath)
	if on {
		mode = cublasTF32TensorOp
	}
	if b.blas.setMathMode(b.handle, mode) == 0 {
		b.tf32 = on
	}
}

// SetResident chooses whether tapes, optimizers and generation keep
// tensors in device memory (on, the default: see Residency in the package
// doc) or on the host, every op then copying its arguments in and its
// results out. Off is for code that still reads tensor data on the host
// in its hot path (custom autograd ops written for the CPU); it must be
// chosen before the first tape or optimizer uses the backend.
func (b *Backend) SetResident(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hostOnly = !on
}

// Resident reports the SetResident choice (tensor.MemoryOf reads it).
func (b *Backend) Resident() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.hostOnly
}

// SetBF16 turns on mixed precision for MatMul: both operands are rounded
// to bfloat16 on the device (a frozen weight once, cached) and multiplied
// on the tensor cores with float32 accumulation and a float32 result.
// Everything else (activations between ops, gradients, the float32
// master weights and AdamW) stays float32, so no loss scaling is needed.
// Products then carry bfloat16's 8 bits of mantissa in their inputs.
func (b *Backend) SetBF16(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bf16 = on
}

// Close frees the device memory and releases the context. The Backend
// must not be used afterwards.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.release()
}

// release frees whatever open got as far as creating.
func (b *Backend) release() {
	b.closed = true
	if b.ctx == 0 {
		return
	}
	d := &b.drv
	d.cuCtxSetCurrent(b.ctx)
	if b.stream != 0 {
		d.cuStreamSynchronize(b.stream)
	}
	b.dropWeights()
	b.dropInts()
	b.pool.drain(d)
	for p := range b.live {
		d.cuMemFree(p) // device tensors still held: they are invalid from now on
	}
	clear(b.live)
	if b.handle != 0 {
		b.blas.destroy(b.handle)
	}
	if b.module != 0 {
		d.cuModuleUnload(b.module)
	}
	if b.stream != 0 {
		d.cuStreamDestroy(b.stream)
	}
	d.cuDevicePrimaryCtxRelease(b.dev)
	b.ctx, b.stream, b.handle, b.module = 0, 0, 0, 0
}

// errName names a CUresult ("CUDA_ERROR_OUT_OF_MEMORY (2)").
func (b *Backend) errName(r cuResult) string {
	var p *byte
	if b.drv.cuGetErrorName != nil && b.drv.cuGetErrorName(r, &p) == cuSuccess && p != nil {
		return fmt.Sprintf("%s (%d)", goString(p), r)
	}
	return fmt.Sprintf("CUresult %d", r)
}

// cudaVersion formats a driver version number: 12040 -> "12.4".
func cudaVersion(v int32) string { return fmt.Sprintf("%d.%d", v/1000, v%1000/10) }

func cublasError(s int32) string {
	switch s {
	case 1:
		return "CUBLAS_STATUS_NOT_INITIALIZED (1)"
	case 3:
		return "CUBLAS_STATUS_ALLOC_FAILED (3)"
	case 7:
		return "CUBLAS_STATUS_INVALID_VALUE (7)"
	case 8:
		return "CUBLAS_STATUS_ARCH_MISMATCH (8)"
	case 13:
		return "CUBLAS_STATUS_EXECUTION_FAILED (13)"
	case 14:
		return "CUBLAS_STATUS_INTERNAL_ERROR (14)"
	case 15:
		return "CUBLAS_STATUS_NOT_SUPPORTED (15)"
	}
	return fmt.Sprintf("cublasStatus %d", s)
}

// kernels holds the module's functions.
type kernels struct {
	widenF16, widenBF16, dequantQ8, dequantNF4      uintptr
	toBF16                                          uintptr
	embeddingFwd, embeddingBwd                      uintptr
	layerNormFwd, layerNormBwdDx, layerNormBwdDwDb  uintptr
	rmsNormFwd, rmsNormBwdDx, rmsNormBwdDw, sumRows uintptr
	geluFwd, geluBwd, swigluFwd, swigluBwd, rope    uintptr
	gegluFwd, gegluBwd, softcapFwd, softcapBwd      uintptr
	reluFwd, reluBwd                                uintptr
	ceFwd, ceBwd                                    uintptr
	add, mul, addScaled, addBias, copyCols, adamw   uintptr
	sumSquares, clipNorm, scaleBy, argmaxRows       uintptr
	adamwMulti                                      uintptr
	attnBwdDi, attnSoftmax, attnDS                  uintptr
	attnFwd, attnBwdDq, attnBwdDkdv                 [4]uintptr // by DL 1, 2, 4, 8
}

// kernelNames maps each function of kernels.cu to its field. The
// compile test checks that every extern "C" kernel is listed.
func (k *kernels) names() map[string]*uintptr {
	m := map[string]*uintptr{
		"widen_f16": &k.widenF16, "widen_bf16": &k.widenBF16, "dequant_q8": &k.dequantQ8, "dequant_nf4": &k.dequantNF4,
		"to_bf16":       &k.toBF16,
		"embedding_fwd": &k.embeddingFwd, "embedding_bwd": &k.embeddingBwd,
		"layernorm_fwd": &k.layerNormFwd, "layernorm_bwd_dx": &k.layerNormBwdDx, "layernorm_bwd_dwdb": &k.layerNormBwdDwDb,
		"rmsnorm_fwd": &k.rmsNormFwd, "rmsnorm_bwd_dx": &k.rmsNormBwdDx, "rmsnorm_bwd_dw": &k.rmsNormBwdDw,
		"sum_rows": &k.sumRows, "gelu_fwd": &k.geluFwd, "gelu_bwd": &k.geluBwd,
		"swiglu_fwd": &k.swigluFwd, "swiglu_bwd": &k.swigluBwd, "rope": &k.rope,
		"geglu_fwd": &k.gegluFwd, "geglu_bwd": &k.gegluBwd, "softcap_fwd": &k.softcapFwd, "softcap_bwd": &k.softcapBwd,
		"relu_fwd": &k.reluFwd, "relu_bwd": &k.reluBwd,
		"ce_fwd": &k.ceFwd, "ce_bwd": &k.ceBwd,
		"add": &k.add, "mul": &k.mul, "add_scaled": &k.addScaled, "add_bias": &k.addBias,
		"copy_cols": &k.copyCols, "adamw": &k.adamw, "sum_squares": &k.sumSquares,
		"clip_norm": &k.clipNorm, "scale_by": &k.scaleBy, "argmax_rows": &k.argmaxRows,
		"adamw_multi": &k.adamwMulti,
		"attn_bwd_di": &k.attnBwdDi, "attn_softmax": &k.attnSoftmax, "attn_ds": &k.attnDS,
	}
	for i, dl := range []int{1, 2, 4, 8} {
		m[fmt.Sprintf("attn_fwd_%d", dl)] = &k.attnFwd[i]
		m[fmt.Sprintf("attn_bwd_dq_%d", dl)] = &k.attnBwdDq[i]
		m[fmt.Sprintf("attn_bwd_dkdv_%d", dl)] = &k.attnBwdDkdv[i]
	}
	return m
}

func (k *kernels) load(b *Backend) error {
	for name, p := range k.names() {
		cn := cString(name)
		if r := b.drv.cuModuleGetFunction(p, b.module, &cn[0]); r != cuSuccess {
			return fmt.Errorf("kernel %s: cuModuleGetFunction: %s", name, b.errName(r))
		}
	}
	return nil
}

// ptrOf is the address of a slice's first element (nil when empty).
func ptrOf[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}
