//go:build linux || freebsd

package vulkan

// The slice of the Vulkan 1.0 C API that a compute backend needs, bound
// through purego. Structs are laid out as the C headers declare them on a
// 64-bit machine: Go's natural alignment gives the same offsets, since
// every field is a 4- or 8-byte scalar or pointer. Dispatchable handles
// (instance, device, queue, command buffer) are pointers; the others are
// 64-bit integers.

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

type (
	vkInstance       uintptr
	vkPhysicalDevice uintptr
	vkDevice         uintptr
	vkQueue          uintptr
	vkCommandBuffer  uintptr
	vkHandle         uint64 // any non-dispatchable handle
	vkResult         int32
)

const (
	sTypeApplicationInfo          = 0
	sTypeInstanceCreateInfo       = 1
	sTypeDeviceQueueCreateInfo    = 2
	sTypeDeviceCreateInfo         = 3
	sTypeSubmitInfo               = 4
	sTypeMemoryAllocateInfo       = 5
	sTypeFenceCreateInfo          = 8
	sTypeBufferCreateInfo         = 12
	sTypeShaderModuleCreateInfo   = 16
	sTypePipelineShaderStage      = 18
	sTypeComputePipelineCreate    = 29
	sTypePipelineLayoutCreateInfo = 30
	sTypeDescriptorSetLayoutInfo  = 32
	sTypeDescriptorPoolCreateInfo = 33
	sTypeDescriptorSetAllocInfo   = 34
	sTypeWriteDescriptorSet       = 35
	sTypeCommandPoolCreateInfo    = 39
	sTypeCommandBufferAllocInfo   = 40
	sTypeCommandBufferBeginInfo   = 42
	sTypeMemoryBarrier            = 46

	descriptorStorageBuffer = 7
	stageCompute            = 0x20
	bindPointCompute        = 1

	bufferUsageTransferSrc = 0x1
	bufferUsageTransferDst = 0x2
	bufferUsageStorage     = 0x20

	memDeviceLocal  = 0x1
	memHostVisible  = 0x2
	memHostCoherent = 0x4
	memHostCached   = 0x8

	queueCompute = 0x2

	pipelineStageCompute  = 0x800
	pipelineStageTransfer = 0x1000
	pipelineStageHost     = 0x4000
	accessShaderRead      = 0x20
	accessShaderWrite     = 0x40
	accessTransferRead    = 0x800
	accessTransferWrite   = 0x1000
	accessHostRead        = 0x2000
	accessHostWrite       = 0x4000

	descriptorPoolFreeSet  = 0x1
	commandPoolResetBuffer = 0x2
	commandBufferOneTime   = 0x1

	apiVersion10 = 1 << 22 // VK_MAKE_API_VERSION(0, 1, 0, 0)
	apiVersion11 = 1<<22 | 1<<12
	apiVersion12 = 1<<22 | 2<<12
	apiVersion13 = 1<<22 | 3<<12
)

type vkApplicationInfo struct {
	sType              uint32
	pNext              unsafe.Pointer
	pApplicationName   *byte
	applicationVersion uint32
	pEngineName        *byte
	engineVersion      uint32
	apiVersion         uint32
}

type vkInstanceCreateInfo struct {
	sType                   uint32
	pNext                   unsafe.Pointer
	flags                   uint32
	pApplicationInfo        *vkApplicationInfo
	enabledLayerCount       uint32
	ppEnabledLayerNames     unsafe.Pointer
	enabledExtensionCount   uint32
	ppEnabledExtensionNames unsafe.Pointer
}

type vkQueueFamilyProperties struct {
	queueFlags                  uint32
	queueCount                  uint32
	timestampValidBits          uint32
	minImageTransferGranularity [3]uint32
}

type vkMemoryType struct{ propertyFlags, heapIndex uint32 }

type vkMemoryHeap struct {
	size  uint64
	flags uint32
}

type vkPhysicalDeviceMemoryProperties struct {
	memoryTypeCount uint32
	memoryTypes     [32]vkMemoryType
	memoryHeapCount uint32
	memoryHeaps     [16]vkMemoryHeap
}

type vkDeviceQueueCreateInfo struct {
	sType            uint32
	pNext            unsafe.Pointer
	flags            uint32
	queueFamilyIndex uint32
	queueCount       uint32
	pQueuePriorities *float32
}

type vkDeviceCreateInfo struct {
	sType                   uint32
	pNext                   unsafe.Pointer
	flags                   uint32
	queueCreateInfoCount    uint32
	pQueueCreateInfos       *vkDeviceQueueCreateInfo
	enabledLayerCount       uint32
	ppEnabledLayerNames     unsafe.Pointer
	enabledExtensionCount   uint32
	ppEnabledExtensionNames unsafe.Pointer
	pEnabledFeatures        unsafe.Pointer
}

type vkBufferCreateInfo struct {
	sType                 uint32
	pNext                 unsafe.Pointer
	flags                 uint32
	size                  uint64
	usage                 uint32
	sharingMode           uint32
	queueFamilyIndexCount uint32
	pQueueFamilyIndices   *uint32
}

type vkMemoryRequirements struct {
	size           uint64
	alignment      uint64
	memoryTypeBits uint32
}

type vkMemoryAllocateInfo struct {
	sType           uint32
	pNext           unsafe.Pointer
	allocationSize  uint64
	memoryTypeIndex uint32
}

type vkShaderModuleCreateInfo struct {
	sType    uint32
	pNext    unsafe.Pointer
	flags    uint32
	codeSize uintptr
	pCode    *uint32
}

type vkDescriptorSetLayoutBinding struct {
	binding            uint32
	descriptorType     uint32
	descriptorCount    uint32
	stageFlags         uint32
	pImmutableSamplers unsafe.Pointer
}

type vkDescriptorSetLayoutCreateInfo struct {
	sType        uint32
	pNext        unsafe.Pointer
	flags        uint32
	bindingCount uint32
	pBindings    *vkDescriptorSetLayoutBinding
}

type vkPushConstantRange struct{ stageFlags, offset, size uint32 }

type vkPipelineLayoutCreateInfo struct {
	sType                  uint32
	pNext                  unsafe.Pointer
	flags                  uint32
	setLayoutCount         uint32
	pSetLayouts            *vkHandle
	pushConstantRangeCount uint32
	pPushConstantRanges    *vkPushConstantRange
}

type vkPipelineShaderStageCreateInfo struct {
	sType               uint32
	pNext               unsafe.Pointer
	flags               uint32
	stage               uint32
	module              vkHandle
	pName               *byte
	pSpecializationInfo unsafe.Pointer
}

type vkComputePipelineCreateInfo struct {
	sType              uint32
	pNext              unsafe.Pointer
	flags              uint32
	stage              vkPipelineShaderStageCreateInfo
	layout             vkHandle
	basePipelineHandle vkHandle
	basePipelineIndex  int32
}

type vkDescriptorPoolSize struct{ typ, count uint32 }

type vkDescriptorPoolCreateInfo struct {
	sType         uint32
	pNext         unsafe.Pointer
	flags         uint32
	maxSets       uint32
	poolSizeCount uint32
	pPoolSizes    *vkDescriptorPoolSize
}

type vkDescriptorSetAllocateInfo struct {
	sType              uint32
	pNext              unsafe.Pointer
	descriptorPool     vkHandle
	descriptorSetCount uint32
	pSetLayouts        *vkHandle
}

type vkDescriptorBufferInfo struct {
	buffer vkHandle
	offset uint64
	rng    uint64
}

type vkWriteDescriptorSet struct {
	sType            uint32
	pNext            unsafe.Pointer
	dstSet           vkHandle
	dstBinding       uint32
	dstArrayElement  uint32
	descriptorCount  uint32
	descriptorType   uint32
	pImageInfo       unsafe.Pointer
	pBufferInfo      *vkDescriptorBufferInfo
	pTexelBufferView unsafe.Pointer
}

type vkCommandPoolCreateInfo struct {
	sType            uint32
	pNext            unsafe.Pointer
	flags            uint32
	queueFamilyIndex uint32
}

type vkCommandBufferAllocateInfo struct {
	sType              uint32
	pNext              unsafe.Pointer
	commandPool        vkHandle
	level              uint32
	commandBufferCount uint32
}

type vkCommandBufferBeginInfo struct {
	sType            uint32
	pNext            unsafe.Pointer
	flags            uint32
	pInheritanceInfo unsafe.Pointer
}

type vkMemoryBarrier struct {
	sType         uint32
	pNext         unsafe.Pointer
	srcAccessMask uint32
	dstAccessMask uint32
}

type vkBufferCopy struct{ srcOffset, dstOffset, size uint64 }

type vkSubmitInfo struct {
	sType                uint32
	pNext                unsafe.Pointer
	waitSemaphoreCount   uint32
	pWaitSemaphores      unsafe.Pointer
	pWaitDstStageMask    unsafe.Pointer
	commandBufferCount   uint32
	pCommandBuffers      *vkCommandBuffer
	signalSemaphoreCount uint32
	pSignalSemaphores    unsafe.Pointer
}

type vkFenceCreateInfo struct {
	sType uint32
	pNext unsafe.Pointer
	flags uint32
}

// physProps mirrors the start of VkPhysicalDeviceProperties and, at their
// offsets, the limits this backend reads; the rest is padding.
type physProps struct {
	apiVersion    uint32
	driverVersion uint32
	vendorID      uint32
	deviceID      uint32
	deviceType    uint32
	deviceName    [256]byte
	uuid          [16]byte
	_             [4]byte // limits start 8-aligned, at 296
	limits        [504]byte
	sparse        [20]byte
	_             [4]byte
}

// Offsets into VkPhysicalDeviceLimits.
const (
	limMaxStorageBufferRange     = 28
	limMaxPerStageStorageBuffers = 76
	limMaxSetStorageBuffers      = 108
	limMaxPushConstantsSize      = 32
	limMaxComputeSharedMemory    = 216
	limMaxComputeWorkGroupCount  = 220
	limMaxComputeWorkGroupInvocs = 232
	limMinStorageBufferOffsetAln = 328 // VkDeviceSize, 8-aligned
)

func (p *physProps) u32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&p.limits[off])) }
func (p *physProps) u64(off int) uint64 { return *(*uint64)(unsafe.Pointer(&p.limits[off])) }

// api holds the bound entry points.
type api struct {
	lib uintptr // the loader's handle, for optional entry points

	// optional (Vulkan 1.1): nil when the loader lacks it
	getPhysicalDeviceProps2   func(pd vkPhysicalDevice, out *vkPhysicalDeviceProperties2)
	enumerateDeviceExtensions func(pd vkPhysicalDevice, layer *byte, n *uint32, out *vkExtensionProperties) vkResult
	createInstance            func(info *vkInstanceCreateInfo, alloc unsafe.Pointer, out *vkInstance) vkResult
	destroyInstance           func(inst vkInstance, alloc unsafe.Pointer)
	enumeratePhysicalDevices  func(inst vkInstance, n *uint32, out *vkPhysicalDevice) vkResult
	getPhysicalDeviceProps    func(pd vkPhysicalDevice, out *physProps)
	getQueueFamilyProps       func(pd vkPhysicalDevice, n *uint32, out *vkQueueFamilyProperties)
	getMemoryProps            func(pd vkPhysicalDevice, out *vkPhysicalDeviceMemoryProperties)
	createDevice              func(pd vkPhysicalDevice, info *vkDeviceCreateInfo, alloc unsafe.Pointer, out *vkDevice) vkResult
	destroyDevice             func(d vkDevice, alloc unsafe.Pointer)
	getDeviceQueue            func(d vkDevice, family, index uint32, out *vkQueue)
	deviceWaitIdle            func(d vkDevice) vkResult
	createBuffer              func(d vkDevice, info *vkBufferCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyBuffer             func(d vkDevice, b vkHandle, alloc unsafe.Pointer)
	getBufferMemReqs          func(d vkDevice, b vkHandle, out *vkMemoryRequirements)
	allocateMemory            func(d vkDevice, info *vkMemoryAllocateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	freeMemory                func(d vkDevice, m vkHandle, alloc unsafe.Pointer)
	bindBufferMemory          func(d vkDevice, b, m vkHandle, off uint64) vkResult
	mapMemory                 func(d vkDevice, m vkHandle, off, size uint64, flags uint32, out *unsafe.Pointer) vkResult
	unmapMemory               func(d vkDevice, m vkHandle)
	createShaderModule        func(d vkDevice, info *vkShaderModuleCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyShaderModule       func(d vkDevice, m vkHandle, alloc unsafe.Pointer)
	createDescriptorSetLayout func(d vkDevice, info *vkDescriptorSetLayoutCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyDescSetLayout      func(d vkDevice, l vkHandle, alloc unsafe.Pointer)
	createPipelineLayout      func(d vkDevice, info *vkPipelineLayoutCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyPipelineLayout     func(d vkDevice, l vkHandle, alloc unsafe.Pointer)
	createComputePipelines    func(d vkDevice, cache vkHandle, n uint32, info *vkComputePipelineCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyPipeline           func(d vkDevice, p vkHandle, alloc unsafe.Pointer)
	createDescriptorPool      func(d vkDevice, info *vkDescriptorPoolCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyDescriptorPool     func(d vkDevice, p vkHandle, alloc unsafe.Pointer)
	resetDescriptorPool       func(d vkDevice, p vkHandle, flags uint32) vkResult
	allocateDescriptorSets    func(d vkDevice, info *vkDescriptorSetAllocateInfo, out *vkHandle) vkResult
	updateDescriptorSets      func(d vkDevice, nw uint32, w *vkWriteDescriptorSet, nc uint32, c unsafe.Pointer)
	createCommandPool         func(d vkDevice, info *vkCommandPoolCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyCommandPool        func(d vkDevice, p vkHandle, alloc unsafe.Pointer)
	allocateCommandBuffers    func(d vkDevice, info *vkCommandBufferAllocateInfo, out *vkCommandBuffer) vkResult
	resetCommandBuffer        func(c vkCommandBuffer, flags uint32) vkResult
	beginCommandBuffer        func(c vkCommandBuffer, info *vkCommandBufferBeginInfo) vkResult
	endCommandBuffer          func(c vkCommandBuffer) vkResult
	cmdBindPipeline           func(c vkCommandBuffer, point uint32, p vkHandle)
	cmdBindDescriptorSets     func(c vkCommandBuffer, point uint32, layout vkHandle, first, n uint32, sets *vkHandle, nd uint32, dyn unsafe.Pointer)
	cmdPushConstants          func(c vkCommandBuffer, layout vkHandle, stages, off, size uint32, values unsafe.Pointer)
	cmdDispatch               func(c vkCommandBuffer, x, y, z uint32)
	cmdPipelineBarrier        func(c vkCommandBuffer, src, dst, dep uint32, nm uint32, m *vkMemoryBarrier, nb uint32, b unsafe.Pointer, ni uint32, i unsafe.Pointer)
	cmdCopyBuffer             func(c vkCommandBuffer, src, dst vkHandle, n uint32, r *vkBufferCopy)
	cmdFillBuffer             func(c vkCommandBuffer, dst vkHandle, off, size uint64, data uint32)
	queueSubmit               func(q vkQueue, n uint32, s *vkSubmitInfo, fence vkHandle) vkResult
	createFence               func(d vkDevice, info *vkFenceCreateInfo, alloc unsafe.Pointer, out *vkHandle) vkResult
	destroyFence              func(d vkDevice, f vkHandle, alloc unsafe.Pointer)
	waitForFences             func(d vkDevice, n uint32, f *vkHandle, all uint32, timeout uint64) vkResult
	resetFences               func(d vkDevice, n uint32, f *vkHandle) vkResult
}

// libNames lists the loader's file names, most specific first.
func libNames() []string {
	return []string{"libvulkan.so.1", "libvulkan.so"}
}

// loadAPI opens the Vulkan loader and binds every entry point; a missing
// symbol is an error naming it (never a panic).
func loadAPI() (a *api, err error) {
	var h uintptr
	var why []string
	for _, name := range libNames() {
		h, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err == nil {
			break
		}
		why = append(why, fmt.Sprintf("%s: %v", name, err))
	}
	if h == 0 {
		return nil, fmt.Errorf("%w: Vulkan loader not found (%v); install libvulkan1 and a driver (mesa-vulkan-drivers has a CPU device)", ErrUnavailable, why)
	}
	a = &api{}
	bind := func(fptr any, name string) {
		if err != nil {
			return
		}
		sym, e := purego.Dlsym(h, name)
		if e != nil {
			err = fmt.Errorf("%w: %s: %v", ErrUnavailable, name, e)
			return
		}
		purego.RegisterFunc(fptr, sym)
	}
	bind(&a.createInstance, "vkCreateInstance")
	bind(&a.destroyInstance, "vkDestroyInstance")
	bind(&a.enumeratePhysicalDevices, "vkEnumeratePhysicalDevices")
	bind(&a.getPhysicalDeviceProps, "vkGetPhysicalDeviceProperties")
	bind(&a.getQueueFamilyProps, "vkGetPhysicalDeviceQueueFamilyProperties")
	bind(&a.getMemoryProps, "vkGetPhysicalDeviceMemoryProperties")
	bind(&a.createDevice, "vkCreateDevice")
	bind(&a.destroyDevice, "vkDestroyDevice")
	bind(&a.getDeviceQueue, "vkGetDeviceQueue")
	bind(&a.deviceWaitIdle, "vkDeviceWaitIdle")
	bind(&a.createBuffer, "vkCreateBuffer")
	bind(&a.destroyBuffer, "vkDestroyBuffer")
	bind(&a.getBufferMemReqs, "vkGetBufferMemoryRequirements")
	bind(&a.allocateMemory, "vkAllocateMemory")
	bind(&a.freeMemory, "vkFreeMemory")
	bind(&a.bindBufferMemory, "vkBindBufferMemory")
	bind(&a.mapMemory, "vkMapMemory")
	bind(&a.unmapMemory, "vkUnmapMemory")
	bind(&a.createShaderModule, "vkCreateShaderModule")
	bind(&a.destroyShaderModule, "vkDestroyShaderModule")
	bind(&a.createDescriptorSetLayout, "vkCreateDescriptorSetLayout")
	bind(&a.destroyDescSetLayout, "vkDestroyDescriptorSetLayout")
	bind(&a.createPipelineLayout, "vkCreatePipelineLayout")
	bind(&a.destroyPipelineLayout, "vkDestroyPipelineLayout")
	bind(&a.createComputePipelines, "vkCreateComputePipelines")
	bind(&a.destroyPipeline, "vkDestroyPipeline")
	bind(&a.createDescriptorPool, "vkCreateDescriptorPool")
	bind(&a.destroyDescriptorPool, "vkDestroyDescriptorPool")
	bind(&a.resetDescriptorPool, "vkResetDescriptorPool")
	bind(&a.allocateDescriptorSets, "vkAllocateDescriptorSets")
	bind(&a.updateDescriptorSets, "vkUpdateDescriptorSets")
	bind(&a.createCommandPool, "vkCreateCommandPool")
	bind(&a.destroyCommandPool, "vkDestroyCommandPool")
	bind(&a.allocateCommandBuffers, "vkAllocateCommandBuffers")
	bind(&a.resetCommandBuffer, "vkResetCommandBuffer")
	bind(&a.beginCommandBuffer, "vkBeginCommandBuffer")
	bind(&a.endCommandBuffer, "vkEndCommandBuffer")
	bind(&a.cmdBindPipeline, "vkCmdBindPipeline")
	bind(&a.cmdBindDescriptorSets, "vkCmdBindDescriptorSets")
	bind(&a.cmdPushConstants, "vkCmdPushConstants")
	bind(&a.cmdDispatch, "vkCmdDispatch")
	bind(&a.cmdPipelineBarrier, "vkCmdPipelineBarrier")
	bind(&a.cmdCopyBuffer, "vkCmdCopyBuffer")
	bind(&a.cmdFillBuffer, "vkCmdFillBuffer")
	bind(&a.queueSubmit, "vkQueueSubmit")
	bind(&a.createFence, "vkCreateFence")
	bind(&a.destroyFence, "vkDestroyFence")
	bind(&a.waitForFences, "vkWaitForFences")
	bind(&a.resetFences, "vkResetFences")
	bind(&a.enumerateDeviceExtensions, "vkEnumerateDeviceExtensionProperties")
	if err != nil {
		return nil, err
	}
	a.lib = h
	if sym, e := purego.Dlsym(h, "vkGetPhysicalDeviceProperties2"); e == nil {
		purego.RegisterFunc(&a.getPhysicalDeviceProps2, sym)
	}
	return a, nil
}

// check turns a VkResult into an error naming the call.
func check(what string, r vkResult) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("vulkan: %s: %s", what, resultName(r))
}

func resultName(r vkResult) string {
	switch r {
	case -1:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case -2:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case -3:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case -4:
		return "VK_ERROR_DEVICE_LOST"
	case -5:
		return "VK_ERROR_MEMORY_MAP_FAILED"
	case -6:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case -7:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case -8:
		return "VK_ERROR_FEATURE_NOT_PRESENT"
	case -9:
		return "VK_ERROR_INCOMPATIBLE_DRIVER (no Vulkan driver installed)"
	case -10:
		return "VK_ERROR_TOO_MANY_OBJECTS"
	case 2:
		return "VK_TIMEOUT"
	}
	return fmt.Sprintf("VkResult %d", r)
}
