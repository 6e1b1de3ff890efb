//go:build linux || freebsd

package vulkan

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unsafe"
)

// Device is one Vulkan device with a compute queue, ready to run the
// embedded compute shaders. It is not safe for concurrent use: a Backend
// serialises its ops, as the engine calls them one at a time.
type Device struct {
	a      *api
	inst   vkInstance
	pd     vkPhysicalDevice
	dev    vkDevice
	queue  vkQueue
	family uint32

	name      string
	kind      string // discrete, integrated, cpu...
	memType   uint32 // where buffers live
	stageType uint32 // host-visible, coherent: staging buffers (staging mode)
	local     bool   // buffers are host-visible and device-local (integrated GPUs, CPUs, resizable BAR)
	staging   bool   // buffers are device-local only; data moves through staging buffers
	// readMapped: the host reads buffers' mappings in place (the memory
	// is host-cached); else results come back through staging buffers
	readMapped bool
	maxRange   uint64 // maxStorageBufferRange
	align      uint64 // minStorageBufferOffsetAlignment

	cmdPool vkHandle
	cmd     vkCommandBuffer
	fence   vkHandle
	// descriptor pools: one more each time the last fills up within a
	// command buffer, so a whole step records into one; descUsed of them
	// (the last partly, sets of it) are in use until the wait.
	descPools []vkHandle
	descUsed  int

	kernels  map[string]*kernel
	dummy    *buffer              // bound where an input is absent (see order)
	free     map[uint64][]*buffer // pooled device buffers by size class (bytes)
	freeHost map[uint64][]*buffer // pooled staging buffers (staging mode)
	// limbo holds buffers released while commands are recorded: commands
	// not yet run may still read them, and the host may write a pooled
	// buffer at once, so they rejoin the pools after the wait.
	limbo []*buffer

	submits, waits int // queue submissions and fence waits since open

	infos  []vkDescriptorBufferInfo // dispatch's scratch
	writes []vkWriteDescriptorSet

	instAPI  uint32   // the Vulkan version the instance was created for
	sgArith  bool     // Vulkan 1.1 subgroup arithmetic in compute shaders (the *_sg kernels)
	bind32   bool     // a kernel may bind 32 storage buffers (adamw_multi)
	features Features // what the device offers (readFeatures)

	recording bool
	sets      int // descriptor sets used in the open command buffer
	// What the commands since the last barrier read and write: a command
	// that touches any of it as a hazard (reads what they write, writes
	// what they read or write) gets a barrier first; one that does not
	// runs alongside them (the updates of many tensors, say).
	reads, written []binding
	barriers       int // pipeline barriers recorded since open
	commands       int // dispatches, copies and fills recorded since open
	recorded       int // ... and into the open command buffer
	maxRecorded    int // at most (maxRecorded; tests lower it)
}

// kernel is one compute pipeline: a shader with nbuf storage buffers at
// bindings 0..nbuf-1 and up to maxPush bytes of push constants.
type kernel struct {
	name   string
	nbuf   int
	dsl    vkHandle
	layout vkHandle
	pipe   vkHandle
	module vkHandle
}

// buffer is a storage buffer, persistently mapped when its memory is
// host-visible.
type buffer struct {
	buf, mem vkHandle
	size     uint64         // its size class (sizeClass)
	host     bool           // a staging buffer (freeHost's pool)
	ptr      unsafe.Pointer // the mapping; nil for device-only memory
	addr     uintptr        // its address as device memory (Backend.Alloc), once it has one
}

// binding is the part of a buffer a kernel sees at one binding point.
type binding struct {
	b         *buffer
	off, size uint64
	ro        bool // the command only reads it (an input)
}

// whole binds all of b.
func whole(b *buffer) binding { return binding{b: b, size: b.size} }

const (
	maxPush     = 128 // bytes: the minimum every device supports
	maxSets     = 512 // descriptor sets per descriptor pool
	maxBindings = 32  // storage buffers a kernel binds, at most (adamw_multi)
)

// ErrUnavailable is returned (wrapped) when Vulkan cannot be used here.
var ErrUnavailable = errors.New("vulkan unavailable")

// openDevice creates an instance and a device on the best physical device:
// a discrete GPU, then an integrated one, then anything with a compute
// queue (lavapipe, Mesa's CPU device, is the last resort).
func openDevice(forceStaging bool) (*Device, error) {
	a, err := loadAPI()
	if err != nil {
		return nil, err
	}
	d := &Device{a: a, kernels: map[string]*kernel{}, free: map[uint64][]*buffer{}, freeHost: map[uint64][]*buffer{}, maxRecorded: maxRecorded}
	// Vulkan 1.1 where the loader has it: its properties query reports
	// subgroup sizes. Nothing else here needs more than 1.0.
	d.instAPI = apiVersion10
	if instanceVersion(a.lib) >= apiVersion11 {
		d.instAPI = apiVersion11
	}
	app := vkApplicationInfo{sType: sTypeApplicationInfo, pApplicationName: cstr("llmlab"), pEngineName: cstr("llmlab"), apiVersion: d.instAPI}
	ici := vkInstanceCreateInfo{sType: sTypeInstanceCreateInfo, pApplicationInfo: &app}
	if err := check("vkCreateInstance", a.createInstance(&ici, nil, &d.inst)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", a.enumeratePhysicalDevices(d.inst, &n, nil)); err != nil || n == 0 {
		d.Close()
		if err == nil {
			err = errors.New("no Vulkan device")
		}
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	pds := make([]vkPhysicalDevice, n)
	if err := check("vkEnumeratePhysicalDevices", a.enumeratePhysicalDevices(d.inst, &n, &pds[0])); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	rank := map[uint32]int{2: 0, 1: 1, 3: 2, 0: 3, 4: 4} // discrete, integrated, virtual, other, cpu
	best, bestRank := -1, 99
	var props physProps
	for i, pd := range pds[:n] {
		var p physProps
		a.getPhysicalDeviceProps(pd, &p)
		if _, ok := computeFamily(a, pd); !ok {
			continue
		}
		if r := rank[p.deviceType]; r < bestRank {
			best, bestRank, props = i, r, p
		}
	}
	if best < 0 {
		d.Close()
		return nil, fmt.Errorf("%w: no Vulkan device has a compute queue", ErrUnavailable)
	}
	d.pd = pds[best]
	d.family, _ = computeFamily(a, d.pd)
	d.name = string(bytes.TrimRight(props.deviceName[:], "\x00"))
	d.kind = [...]string{"other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU"}[min(props.deviceType, 4)]
	d.maxRange = uint64(props.u32(limMaxStorageBufferRange))
	d.bind32 = props.u32(limMaxPerStageStorageBuffers) >= 32 && props.u32(limMaxSetStorageBuffers) >= 32
	d.align = max(props.u64(limMinStorageBufferOffsetAln), 4)
	if props.u32(limMaxPushConstantsSize) < maxPush || props.u32(limMaxComputeWorkGroupInvocs) < 256 || props.u32(limMaxComputeSharedMemory) < 16384 {
		d.Close()
		return nil, fmt.Errorf("%w: %s: limits too small (push constants %d, workgroup invocations %d, shared memory %d; need 128, 256, 16384)",
			ErrUnavailable, d.name, props.u32(limMaxPushConstantsSize), props.u32(limMaxComputeWorkGroupInvocs), props.u32(limMaxComputeSharedMemory))
	}

	if err := d.chooseMemory(forceStaging); err != nil {
		d.Close()
		return nil, err
	}
	d.features = d.readFeatures(&props)

	prio := float32(1)
	qci := vkDeviceQueueCreateInfo{sType: sTypeDeviceQueueCreateInfo, queueFamilyIndex: d.family, queueCount: 1, pQueuePriorities: &prio}
	dci := vkDeviceCreateInfo{sType: sTypeDeviceCreateInfo, queueCreateInfoCount: 1, pQueueCreateInfos: &qci}
	if err := check("vkCreateDevice", a.createDevice(d.pd, &dci, nil, &d.dev)); err != nil {
		d.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, d.name, err)
	}
	a.getDeviceQueue(d.dev, d.family, 0, &d.queue)

	cpi := vkCommandPoolCreateInfo{sType: sTypeCommandPoolCreateInfo, flags: commandPoolResetBuffer, queueFamilyIndex: d.family}
	if err := check("vkCreateCommandPool", a.createCommandPool(d.dev, &cpi, nil, &d.cmdPool)); err != nil {
		d.Close()
		return nil, err
	}
	cai := vkCommandBufferAllocateInfo{sType: sTypeCommandBufferAllocInfo, commandPool: d.cmdPool, commandBufferCount: 1}
	if err := check("vkAllocateCommandBuffers", a.allocateCommandBuffers(d.dev, &cai, &d.cmd)); err != nil {
		d.Close()
		return nil, err
	}
	fci := vkFenceCreateInfo{sType: sTypeFenceCreateInfo}
	if err := check("vkCreateFence", a.createFence(d.dev, &fci, nil, &d.fence)); err != nil {
		d.Close()
		return nil, err
	}
	if _, err := d.descPool(0); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// chooseMemory picks where buffers live. Unified: one host-visible,
// coherent type that is the device's own memory (any such type on a CPU or
// integrated device; on a discrete GPU only a device-local one whose heap
// is at least 1 GiB, i.e. resizable BAR, not the 256 MiB window): the host
// maps every buffer. Otherwise staging: buffers in device-local memory,
// and copy commands to and from host-visible staging buffers.
// forceStaging takes the staging path even where unified memory exists
// (tests use it to run that path on lavapipe).
func (d *Device) chooseMemory(forceStaging bool) error {
	var mp vkPhysicalDeviceMemoryProperties
	d.a.getMemoryProps(d.pd, &mp)
	const none = math.MaxUint32
	host, unified, devLocal := uint32(none), uint32(none), uint32(none)
	hostMem := d.kind == "CPU" || d.kind == "integrated GPU"
	for i := uint32(0); i < mp.memoryTypeCount; i++ {
		f := mp.memoryTypes[i].propertyFlags
		heap := mp.memoryHeaps[mp.memoryTypes[i].heapIndex].size
		visible := f&(memHostVisible|memHostCoherent) == memHostVisible|memHostCoherent
		local := f&memDeviceLocal != 0
		if visible && (host == none || f&memHostCached != 0 && mp.memoryTypes[host].propertyFlags&memHostCached == 0) {
			host = i
		}
		if visible && unified == none && (hostMem || local && heap >= 1<<30) {
			unified = i
		}
		if local && devLocal == none {
			devLocal = i
		}
	}
	switch {
	case host == none:
		return fmt.Errorf("%w: %s has no host-visible coherent memory", ErrUnavailable, d.name)
	case unified != none && !forceStaging:
		d.memType, d.local = unified, true
	case forceStaging:
		d.memType, d.stageType, d.staging = host, host, true
	case devLocal != none:
		d.memType, d.stageType, d.staging = devLocal, host, true
	default: // no device-local memory at all: kernels read host memory
		d.memType = host
	}
	// The host reads mapped memory in place only when it is cached (a CPU
	// device, most integrated GPUs); reads of a discrete GPU's mapped
	// memory (resizable BAR) cross the bus uncached, far slower than a copy
	// into cached host memory, so results come back through staging there.
	d.stageType = host
	d.readMapped = mp.memoryTypes[d.memType].propertyFlags&memHostCached != 0
	return nil
}

func computeFamily(a *api, pd vkPhysicalDevice) (uint32, bool) {
	var n uint32
	a.getQueueFamilyProps(pd, &n, nil)
	if n == 0 {
		return 0, false
	}
	fams := make([]vkQueueFamilyProperties, n)
	a.getQueueFamilyProps(pd, &n, &fams[0])
	for i, f := range fams[:n] {
		if f.queueFlags&queueCompute != 0 && f.queueCount > 0 {
			return uint32(i), true
		}
	}
	return 0, false
}

// cstr returns a NUL-terminated copy of s.
func cstr(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

// Name describes the device.
func (d *Device) Name() string {
	mem := "host memory"
	switch {
	case d.local:
		mem = "tensors in mapped device memory"
	case d.staging:
		mem = "tensors in device-local memory, staging copies"
	}
	return fmt.Sprintf("%s (%s, %s)", d.name, d.kind, mem)
}

// Close releases every Vulkan object; the Device is unusable afterwards.
func (d *Device) Close() {
	a := d.a
	if d.dev != 0 {
		a.deviceWaitIdle(d.dev)
		for _, k := range d.kernels {
			a.destroyPipeline(d.dev, k.pipe, nil)
			a.destroyPipelineLayout(d.dev, k.layout, nil)
			a.destroyDescSetLayout(d.dev, k.dsl, nil)
			a.destroyShaderModule(d.dev, k.module, nil)
		}
		d.kernels = nil
		for _, pool := range []map[uint64][]*buffer{d.free, d.freeHost} {
			for _, list := range pool {
				for _, b := range list {
					d.destroy(b)
				}
			}
		}
		for _, b := range d.limbo {
			d.destroy(b)
		}
		d.free, d.freeHost, d.limbo = nil, nil, nil
		for _, p := range d.descPools {
			a.destroyDescriptorPool(d.dev, p, nil)
		}
		d.descPools = nil
		if d.fence != 0 {
			a.destroyFence(d.dev, d.fence, nil)
		}
		if d.cmdPool != 0 {
			a.destroyCommandPool(d.dev, d.cmdPool, nil)
		}
		a.destroyDevice(d.dev, nil)
		d.dev = 0
	}
	if d.inst != 0 {
		a.destroyInstance(d.inst, nil)
		d.inst = 0
	}
}

// sizeClass rounds n up to 256 bytes or to a quarter step of its power
// of two (at most 25% slack), so buffers of nearby sizes are shared.
func sizeClass(n uint64) uint64 {
	if n <= 256 {
		return 256
	}
	p := uint64(1) << (bits.Len64(n-1) - 1) // largest power of two < n
	step := p / 4
	return (n + step - 1) / step * step
}

// alloc returns a device buffer of at least n bytes from the pool, mapped
// unless the device is in staging mode.
func (d *Device) alloc(n uint64) (*buffer, error) {
	return d.take(d.free, sizeClass(max(n, 4)), false)
}

// allocHost returns a mapped buffer of at least n bytes for data the host
// writes: a staging buffer in staging mode, else a device buffer (which
// is mapped then).
func (d *Device) allocHost(n uint64) (*buffer, error) {
	if !d.staging {
		return d.alloc(n)
	}
	return d.take(d.freeHost, sizeClass(max(n, 4)), true)
}

// readable returns where the host reads src once the commands recorded
// so far have run: src itself when its mapping is read in place
// (readMapped), else a staging buffer in cached host memory that a
// recorded copy fills (st, to release after the read).
func (d *Device) readable(src binding) (at binding, st *buffer, err error) {
	if src.b.ptr != nil && d.readMapped {
		return src, nil, nil
	}
	if st, err = d.take(d.freeHost, sizeClass(max(src.size, 4)), true); err != nil {
		return binding{}, nil, err
	}
	at = binding{b: st, size: src.size}
	if err = d.copyBuffer(src, at, src.size); err != nil {
		d.release(st)
		return binding{}, nil, err
	}
	return at, st, nil
}

func (d *Device) take(pool map[uint64][]*buffer, size uint64, host bool) (*buffer, error) {
	if l := pool[size]; len(l) > 0 {
		b := l[len(l)-1]
		pool[size] = l[:len(l)-1]
		return b, nil
	}
	typ, mapped := d.memType, !d.staging
	if host {
		typ, mapped = d.stageType, true
	}
	b, err := d.newBuffer(size, typ, mapped)
	if err != nil && (len(d.free) > 0 || len(d.freeHost) > 0) {
		// Out of memory, perhaps: give the pooled buffers back and retry
		// (none is in use: those released while recording are in limbo).
		d.drain()
		b, err = d.newBuffer(size, typ, mapped)
	}
	if err != nil {
		return nil, err
	}
	b.host = host
	return b, nil
}

// drain frees every pooled buffer.
func (d *Device) drain() {
	for _, pool := range []map[uint64][]*buffer{d.free, d.freeHost} {
		for k, list := range pool {
			for _, b := range list {
				d.destroy(b)
			}
			delete(pool, k)
		}
	}
}

// newBuffer creates a buffer of size bytes in memory type typ, mapped
// when mapped is set.
func (d *Device) newBuffer(size uint64, typ uint32, mapped bool) (*buffer, error) {
	b := &buffer{size: size}
	bci := vkBufferCreateInfo{sType: sTypeBufferCreateInfo, size: size, usage: bufferUsageStorage | bufferUsageTransferSrc | bufferUsageTransferDst}
	if err := check("vkCreateBuffer", d.a.createBuffer(d.dev, &bci, nil, &b.buf)); err != nil {
		return nil, err
	}
	var req vkMemoryRequirements
	d.a.getBufferMemReqs(d.dev, b.buf, &req)
	if req.memoryTypeBits&(1<<typ) == 0 {
		d.a.destroyBuffer(d.dev, b.buf, nil)
		return nil, fmt.Errorf("vulkan: storage buffers cannot live in memory type %d", typ)
	}
	mai := vkMemoryAllocateInfo{sType: sTypeMemoryAllocateInfo, allocationSize: req.size, memoryTypeIndex: typ}
	if err := check(fmt.Sprintf("vkAllocateMemory (%d bytes)", req.size), d.a.allocateMemory(d.dev, &mai, nil, &b.mem)); err != nil {
		d.a.destroyBuffer(d.dev, b.buf, nil)
		return nil, err
	}
	if err := check("vkBindBufferMemory", d.a.bindBufferMemory(d.dev, b.buf, b.mem, 0)); err != nil {
		d.destroy(b)
		return nil, err
	}
	if !mapped {
		return b, nil
	}
	if err := check("vkMapMemory", d.a.mapMemory(d.dev, b.mem, 0, req.size, 0, &b.ptr)); err != nil {
		d.destroy(b)
		return nil, err
	}
	return b, nil
}

// release returns b to its pool; while commands are recorded, after the
// wait (see limbo).
func (d *Device) release(b *buffer) {
	if d.recording {
		d.limbo = append(d.limbo, b)
		return
	}
	d.pool(b)
}

func (d *Device) pool(b *buffer) {
	if b.host {
		d.freeHost[b.size] = append(d.freeHost[b.size], b)
	} else {
		d.free[b.size] = append(d.free[b.size], b)
	}
}

func (d *Device) destroy(b *buffer) {
	if b.ptr != nil {
		d.a.unmapMemory(d.dev, b.mem)
	}
	d.a.destroyBuffer(d.dev, b.buf, nil)
	d.a.freeMemory(d.dev, b.mem, nil)
}

// copyBuffer records a copy of n bytes (after every earlier command).
func (d *Device) copyBuffer(src, dst binding, n uint64) error {
	if n == 0 {
		return nil
	}
	if err := d.begin(); err != nil {
		return err
	}
	src.ro, dst.ro = true, false
	d.order(src, binding{b: dst.b, off: dst.off, size: n})
	r := vkBufferCopy{srcOffset: src.off, dstOffset: dst.off, size: n}
	d.a.cmdCopyBuffer(d.cmd, src.b.buf, dst.b.buf, 1, &r)
	return nil
}

// fill records setting every 32-bit word of a binding to bits.
func (d *Device) fill(dst binding, bits uint32) error {
	if dst.size == 0 {
		return nil
	}
	if err := d.begin(); err != nil {
		return err
	}
	dst.ro = false
	d.order(dst)
	d.a.cmdFillBuffer(d.cmd, dst.b.buf, dst.off, dst.size, bits)
	return nil
}

// order records a barrier before a command that uses bds (ro: read only;
// else read and written) when it conflicts with a command since the last
// barrier, and notes what it uses. The dummy buffer, bound where an input
// is absent, is never written and never conflicts.
func (d *Device) order(bds ...binding) {
	hazard := false
	for _, x := range bds {
		if x.b == d.dummy || x.size == 0 {
			continue
		}
		for _, w := range d.written {
			hazard = hazard || overlap(x, w)
		}
		if !x.ro {
			for _, r := range d.reads {
				hazard = hazard || overlap(x, r)
			}
		}
	}
	if hazard {
		d.barrier()
	}
	d.commands++
	for _, x := range bds {
		if x.b == d.dummy || x.size == 0 {
			continue
		}
		if x.ro {
			d.reads = append(d.reads, x)
		} else {
			d.written = append(d.written, x)
		}
	}
}

func overlap(a, b binding) bool {
	return a.b == b.b && a.off < b.off+b.size && b.off < a.off+a.size
}

// barrier makes every earlier command's writes visible to, and every
// earlier command finish its reads before, the commands after it.
func (d *Device) barrier() {
	mb := vkMemoryBarrier{sType: sTypeMemoryBarrier, srcAccessMask: accessShaderWrite | accessTransferWrite,
		dstAccessMask: accessShaderRead | accessShaderWrite | accessTransferRead | accessTransferWrite}
	stages := uint32(pipelineStageCompute | pipelineStageTransfer)
	d.a.cmdPipelineBarrier(d.cmd, stages, stages, 0, 1, &mb, 0, nil, 0, nil)
	d.reads, d.written = d.reads[:0], d.written[:0]
	d.barriers++
}

// kernel returns the named pipeline, creating it on first use from the
// embedded SPIR-V.
func (d *Device) kernel(name string, nbuf int) (*kernel, error) {
	if k := d.kernels[name]; k != nil {
		if k.nbuf != nbuf {
			return nil, fmt.Errorf("vulkan: kernel %s used with %d buffers, created with %d", name, nbuf, k.nbuf)
		}
		return k, nil
	}
	code, err := spirv(name)
	if err != nil {
		return nil, err
	}
	k := &kernel{name: name, nbuf: nbuf}
	smi := vkShaderModuleCreateInfo{sType: sTypeShaderModuleCreateInfo, codeSize: uintptr(len(code) * 4), pCode: &code[0]}
	if err := check("vkCreateShaderModule "+name, d.a.createShaderModule(d.dev, &smi, nil, &k.module)); err != nil {
		return nil, err
	}
	binds := make([]vkDescriptorSetLayoutBinding, nbuf)
	for i := range binds {
		binds[i] = vkDescriptorSetLayoutBinding{binding: uint32(i), descriptorType: descriptorStorageBuffer, descriptorCount: 1, stageFlags: stageCompute}
	}
	dli := vkDescriptorSetLayoutCreateInfo{sType: sTypeDescriptorSetLayoutInfo, bindingCount: uint32(nbuf), pBindings: &binds[0]}
	if err := check("vkCreateDescriptorSetLayout "+name, d.a.createDescriptorSetLayout(d.dev, &dli, nil, &k.dsl)); err != nil {
		return nil, err
	}
	pr := vkPushConstantRange{stageFlags: stageCompute, size: maxPush}
	pli := vkPipelineLayoutCreateInfo{sType: sTypePipelineLayoutCreateInfo, setLayoutCount: 1, pSetLayouts: &k.dsl, pushConstantRangeCount: 1, pPushConstantRanges: &pr}
	if err := check("vkCreatePipelineLayout "+name, d.a.createPipelineLayout(d.dev, &pli, nil, &k.layout)); err != nil {
		return nil, err
	}
	cpi := vkComputePipelineCreateInfo{sType: sTypeComputePipelineCreate, layout: k.layout, basePipelineIndex: -1,
		stage: vkPipelineShaderStageCreateInfo{sType: sTypePipelineShaderStage, stage: stageCompute, module: k.module, pName: cstr("main")}}
	if err := check("vkCreateComputePipelines "+name, d.a.createComputePipelines(d.dev, 0, 1, &cpi, nil, &k.pipe)); err != nil {
		return nil, err
	}
	d.kernels[name] = k
	return k, nil
}

// maxRecorded bounds the commands of one command buffer: a caller that
// records for long without reading anything (so nothing submits) gets a
// submit and wait here, which keeps the descriptor pools and the buffers
// in limbo from growing without end. A training step records a few
// hundred commands per layer.
const maxRecorded = 1 << 16

// begin opens the command buffer if it is not open.
func (d *Device) begin() error {
	if d.recording && d.recorded >= d.maxRecorded {
		if err := d.submit(); err != nil {
			return err
		}
	}
	if d.recording {
		d.recorded++
		return nil
	}
	bi := vkCommandBufferBeginInfo{sType: sTypeCommandBufferBeginInfo, flags: commandBufferOneTime}
	if err := check("vkBeginCommandBuffer", d.a.beginCommandBuffer(d.cmd, &bi)); err != nil {
		return err
	}
	d.recording, d.sets, d.descUsed, d.recorded = true, 0, 0, 1
	d.reads, d.written = d.reads[:0], d.written[:0]
	return nil
}

// descPool returns descriptor pool i, creating it when there is none.
func (d *Device) descPool(i int) (vkHandle, error) {
	if i < len(d.descPools) {
		return d.descPools[i], nil
	}
	var p vkHandle
	size := vkDescriptorPoolSize{typ: descriptorStorageBuffer, count: maxSets * maxBindings}
	dpi := vkDescriptorPoolCreateInfo{sType: sTypeDescriptorPoolCreateInfo, maxSets: maxSets, poolSizeCount: 1, pPoolSizes: &size}
	if err := check("vkCreateDescriptorPool", d.a.createDescriptorPool(d.dev, &dpi, nil, &p)); err != nil {
		return 0, err
	}
	d.descPools = append(d.descPools, p)
	return p, nil
}

// dispatch records one run of k over groups workgroups, with push
// constants pc and buffers bound in order. A barrier before it makes every
// earlier dispatch's writes visible, so recorded dispatches run in order.
func (d *Device) dispatch(k *kernel, groups [3]uint32, pc []uint32, bufs ...binding) error {
	if len(bufs) != k.nbuf {
		return fmt.Errorf("vulkan: kernel %s takes %d buffers, got %d", k.name, k.nbuf, len(bufs))
	}
	if len(pc)*4 > maxPush {
		return fmt.Errorf("vulkan: kernel %s: %d bytes of push constants (at most %d)", k.name, len(pc)*4, maxPush)
	}
	if err := d.begin(); err != nil {
		return err
	}
	if d.sets == maxSets {
		d.descUsed++
		d.sets = 0
	}
	pool, err := d.descPool(d.descUsed)
	if err != nil {
		return err
	}
	var set vkHandle
	dsa := vkDescriptorSetAllocateInfo{sType: sTypeDescriptorSetAllocInfo, descriptorPool: pool, descriptorSetCount: 1, pSetLayouts: &k.dsl}
	if err := check("vkAllocateDescriptorSets", d.a.allocateDescriptorSets(d.dev, &dsa, &set)); err != nil {
		return err
	}
	d.sets++
	infos := slices.Grow(d.infos[:0], len(bufs))[:len(bufs)]
	writes := slices.Grow(d.writes[:0], len(bufs))[:len(bufs)]
	d.infos, d.writes = infos, writes // reused: vkUpdateDescriptorSets copies them
	for i, b := range bufs {
		infos[i] = vkDescriptorBufferInfo{buffer: b.b.buf, offset: b.off, rng: b.size}
		writes[i] = vkWriteDescriptorSet{sType: sTypeWriteDescriptorSet, dstSet: set, dstBinding: uint32(i), descriptorCount: 1,
			descriptorType: descriptorStorageBuffer, pBufferInfo: &infos[i]}
	}
	d.a.updateDescriptorSets(d.dev, uint32(len(writes)), &writes[0], 0, nil)
	d.order(bufs...)
	d.a.cmdBindPipeline(d.cmd, bindPointCompute, k.pipe)
	d.a.cmdBindDescriptorSets(d.cmd, bindPointCompute, k.layout, 0, 1, &set, 0, nil)
	if len(pc) > 0 {
		d.a.cmdPushConstants(d.cmd, k.layout, stageCompute, 0, uint32(len(pc)*4), unsafe.Pointer(&pc[0]))
	}
	d.a.cmdDispatch(d.cmd, max(groups[0], 1), max(groups[1], 1), max(groups[2], 1))
	return nil
}

// submit ends the command buffer, runs it and waits for it (the one
// place the host waits for the device); afterwards the host sees every
// write, and the buffers released meanwhile rejoin the pools.
func (d *Device) submit() error {
	if !d.recording {
		return nil
	}
	mb := vkMemoryBarrier{sType: sTypeMemoryBarrier, srcAccessMask: accessShaderWrite | accessTransferWrite, dstAccessMask: accessHostRead}
	d.a.cmdPipelineBarrier(d.cmd, pipelineStageCompute|pipelineStageTransfer, pipelineStageHost, 0, 1, &mb, 0, nil, 0, nil)
	d.recording = false
	if err := check("vkEndCommandBuffer", d.a.endCommandBuffer(d.cmd)); err != nil {
		return err
	}
	si := vkSubmitInfo{sType: sTypeSubmitInfo, commandBufferCount: 1, pCommandBuffers: &d.cmd}
	d.submits++
	if err := check("vkQueueSubmit", d.a.queueSubmit(d.queue, 1, &si, d.fence)); err != nil {
		return err
	}
	d.waits++
	if err := check("vkWaitForFences", d.a.waitForFences(d.dev, 1, &d.fence, 1, math.MaxUint64)); err != nil {
		return err
	}
	if err := check("vkResetFences", d.a.resetFences(d.dev, 1, &d.fence)); err != nil {
		return err
	}
	if err := check("vkResetCommandBuffer", d.a.resetCommandBuffer(d.cmd, 0)); err != nil {
		return err
	}
	for _, b := range d.limbo {
		d.pool(b)
	}
	clear(d.limbo)
	d.limbo = d.limbo[:0]
	for _, p := range d.descPools[:min(d.descUsed+1, len(d.descPools))] {
		if err := check("vkResetDescriptorPool", d.a.resetDescriptorPool(d.dev, p, 0)); err != nil {
			return err
		}
	}
	return nil
}

// groups1D spreads n invocations of a local size of local over a 2-D grid
// (each dimension is limited to 65535 workgroups); shaders rebuild the
// linear index as (wg.y * numWG.x + wg.x) * local + lid.
func groups1D(n, local int) [3]uint32 {
	g := (n + local - 1) / local
	x := min(g, 65535)
	return [3]uint32{uint32(x), uint32((g + x - 1) / max(x, 1)), 1}
}

// spirv returns the embedded SPIR-V words of a shader.
func spirv(name string) ([]uint32, error) {
	b, err := shaderFS.ReadFile("shaders/" + name + ".spv")
	if err != nil {
		return nil, fmt.Errorf("vulkan: no compiled shader %q (run go generate ./gpu/vulkan/): %v", name, err)
	}
	if len(b)%4 != 0 || len(b) < 20 || !strings.HasPrefix(string(b[:4]), "\x03\x02\x23\x07") {
		return nil, fmt.Errorf("vulkan: shaders/%s.spv is not SPIR-V", name)
	}
	words := make([]uint32, len(b)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(b)), b)
	return words, nil
}
