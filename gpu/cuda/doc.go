// Package cuda is a tensor.Backend for NVIDIA GPUs, loaded at run time
// without cgo: the driver API (libcuda.so.1), cuBLAS (libcublas.so.12, .13
// or .11) for the matrix products and NVRTC (libnvrtc.so.12, .13 or .11.2)
// to compile llmlab's own kernels (kernels.cu, embedded) on first use.
// The PTX is cached on disk under os.UserCacheDir()/llmlab/cuda, keyed by
// a hash of the source, the target architecture and NVRTC's version, so
// later runs skip the compile. A machine without the libraries or without
// a device gets an error from Open that says which, never a crash.
//
// # Residency
//
// The engine's tensors are host slices (tensor.Tensor holds []float32).
// The backend is a tensor.Allocator: on devices with managed (unified)
// memory, AllocF32 hands out cuMemAllocManaged memory, which the host uses
// as an ordinary slice and kernels use in place, the driver migrating
// pages to whichever side touches them. The autograd arena takes its slab
// from it, and parameter gradients, AdamW moments and trainable weights
// move there at their first use, so from a run's second step on the
// activations, gradients and weights of training stay on the GPU; ops
// synchronise the stream before returning, so the host may read results.
// Any other float32 array is uploaded to pooled device buffers for the op
// and its outputs downloaded before it returns (the pool has size classes
// a quarter of a power of two apart, so a steady-state step allocates no
// device memory). Storage-only weights (DType F16, BF16, Q8, NF4) are
// immutable by contract: their widened float32 device copies are cached,
// keyed by the address and length of their data (the cache keeps a
// reference to that data, so an address is never reused while its entry
// lives), and each is uploaded once. Stats counts both kinds of access.
//
// # Failures
//
// The Backend interface has no error results. A CUDA error inside an op
// (out of memory, a failed launch) is detected before any output is
// written back, so the op is redone on the CPU backend and its result is
// still correct; the first such error is kept (Err) and every later op
// runs on the CPU. The exception is an op whose outputs are in managed
// memory and whose kernels had started: they may have written part of an
// output, so the op cannot be redone, and it panics. Shapes that contradict each other are programming
// errors and panic, as on the CPU backend.
//
// MatMul computes in float32 through cublasSgemm; SetTF32 lets it use the
// tensor cores' TF32 mode (about 10 bits of mantissa in the products),
// which is faster and less exact; SetBF16 makes them bfloat16 tensor-core
// products through cublasGemmEx (mixed precision: float32 accumulation,
// float32 master weights). Batched products (attention-free here: only
// small batches reach MatMul) loop over one call per batch.
package cuda
