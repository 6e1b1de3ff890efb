// Package vulkan is a tensor.Backend on any Vulkan 1.0 device, loaded at
// run time through purego (no cgo, no SDK): libvulkan.so.1 and whatever
// driver the machine has. The kernels are GLSL compute shaders in
// shaders/, compiled to SPIR-V by `go generate` (glslangValidator) and
// embedded; CI runs every op against the CPU backend on Mesa's lavapipe,
// a Vulkan device that runs on the CPU.
package vulkan
