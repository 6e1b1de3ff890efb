// Package vulkan is a tensor.Backend on any Vulkan 1.0 device, loaded at
// run time through purego (no cgo, no SDK): libvulkan.so.1 and whatever
// driver the machine has. The kernels are GLSL compute shaders in
// shaders/, compiled to SPIR-V by `go generate` (glslangValidator) and
// embedded; CI runs every op against the CPU backend on Mesa's lavapipe,
// a Vulkan device that runs on the CPU, under the Khronos validation layer
// with synchronization validation.
//
// Tensors live on the device (tensor.Memory): buffers come from a pool of
// size classes, in device-local memory with staging buffers for the copies
// on a discrete GPU, in host-visible device memory (mapped, no staging) on
// an integrated GPU, a GPU with resizable BAR or lavapipe. Ops on device
// tensors record commands into one command buffer, with a pipeline
// barrier only before a command that depends on one since the last
// barrier; the buffer is submitted, and the host waits on its fence, only
// where the host reads a value. A training step so submits once and reads
// back its loss; a greedy decode step, its token ids (ArgMax). Buffers
// released while commands are recorded rejoin the pool after the wait, so
// nothing the pending commands read is overwritten by the host.
package vulkan
