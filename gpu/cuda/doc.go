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
// The backend is a tensor.Memory: tensors can live in its device memory
// (plain cuMemAlloc from a caching pool with size classes a quarter of a
// power of two apart, never managed memory). The autograd arena's slab,
// parameter gradients and AdamW moments are made there; parameters move
// there the first time a tape uses them (uploaded once); the KV cache of
// generation moves there too. Ops use such tensors in place and return
// without waiting: everything runs in order on one stream, and the host
// waits only where it reads (Copy to the host: the loss, the logits of a
// decode step, a checkpoint; a result into a host tensor). Zeroing and
// fills are cuMemsetD32 on the stream.
//
// Host tensors still work as arguments: inputs are copied to pooled
// scratch buffers for the op and host outputs copied back (with a wait).
// Int arrays (token ids, positions, targets, segment ids) are cached by
// contents, so a step uploads each once. Storage-only weights (DType F16,
// BF16, Q8, NF4) are immutable by contract: their widened float32 device
// copies are cached, keyed by the address and length of their data (the
// cache keeps a reference to that data, so an address is never reused
// while its entry lives), and each is uploaded once; so are RoPE tables.
// Stats counts the copies each way, the waits and the peak device memory
// of device tensors.
//
// # Failures
//
// The Backend interface has no error results. A CUDA error inside an op
// (out of memory, a failed launch) detected before any of its kernels was
// queued sends the op to the CPU backend, through host copies of its
// device tensors, and its result is still correct; the first such error is
// kept (Err) and every later op runs on the CPU that way. Shapes the
// kernels do not take (attention heads over 256) go the same way without
// giving up the device. An op whose outputs are on the device and whose
// kernels had started cannot be redone, and panics; so does a failure the
// stream reports when the host waits for it, which is also where a kernel
// fault queued earlier shows. Shapes that contradict each other are
// programming errors and panic, as on the CPU backend.
//
// MatMul computes in float32 through cublasSgemm; SetTF32 lets it use the
// tensor cores' TF32 mode (about 10 bits of mantissa in the products),
// which is faster and less exact; SetBF16 makes them bfloat16 tensor-core
// products through cublasGemmEx (mixed precision: float32 accumulation,
// float32 master weights). Batched products (attention-free here: only
// small batches reach MatMul) loop over one call per batch.
package cuda
