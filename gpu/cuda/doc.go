// Package cuda is a tensor.Backend for NVIDIA GPUs, loaded at run time
// without cgo: the driver API (libcuda.so.1), cuBLAS (libcublas.so.12, .13
// or .11) for the matrix products and NVRTC (libnvrtc.so.12, .13 or .11.2)
// to compile llmlab's own kernels (kernels.cu, embedded) on first use.
// The PTX is cached on disk under os.UserCacheDir()/llmlab/cuda, keyed by
// a hash of the source, the target architecture and NVRTC's version, so
// later runs skip the compile. A machine without the libraries or without
// a device gets an error from Open that says which, never a crash.
//
// # Residency (the limitation of this first version)
//
// The engine's tensors are host slices (tensor.Tensor holds []float32), so
// every op uploads its float32 inputs to device buffers, runs its kernels
// on one stream, and downloads its outputs before it returns. Buffers come
// from a pool of size classes (a quarter of a power of two apart), so a
// steady-state training step allocates no device memory; the transfers,
// not the kernels, bound the speed for all but the largest products.
// Storage-only weights (DType F16, BF16, Q8, NF4) are immutable by
// contract: their widened float32 device copies are cached, keyed by the
// address and length of their data (the cache keeps a reference to that
// data, so an address is never reused while its entry lives), and each is
// uploaded once. Keeping activations and float32 parameters on the device
// needs device-resident tensors in core/tensor and is left for later.
//
// # Failures
//
// The Backend interface has no error results. A CUDA error inside an op
// (out of memory, a failed launch) is detected before any output is
// written back, so the op is redone on the CPU backend and its result is
// still correct; the first such error is kept (Err) and every later op
// runs on the CPU. Shapes that contradict each other are programming
// errors and panic, as on the CPU backend.
//
// MatMul computes in float32 through cublasSgemm; SetTF32 lets it use the
// tensor cores' TF32 mode (about 10 bits of mantissa in the products),
// which is faster and less exact. Batched products loop over cublasSgemm:
// cublasSgemmStridedBatched takes 18 arguments, more than purego can pass.
package cuda
