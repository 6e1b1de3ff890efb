//go:build linux || freebsd

package vulkan

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Subgroup operation bits (VkSubgroupFeatureFlagBits).
var subgroupOpNames = []string{"basic", "vote", "arithmetic", "ballot", "shuffle", "shuffle-relative", "clustered", "quad"}

const (
	sTypePhysicalDeviceProperties2 = 1000059001
	sTypeSubgroupProperties        = 1000094000
	memHeapDeviceLocal             = 1
)

type vkExtensionProperties struct {
	name        [256]byte
	specVersion uint32
}

type vkSubgroupProperties struct {
	sType                     uint32
	pNext                     unsafe.Pointer
	subgroupSize              uint32
	supportedStages           uint32
	supportedOperations       uint32
	quadOperationsInAllStages uint32
}

type vkPhysicalDeviceProperties2 struct {
	sType      uint32
	pNext      unsafe.Pointer
	properties physProps
}

// instanceVersion is the loader's Vulkan version (1.0 when it cannot say).
func instanceVersion(h uintptr) uint32 {
	sym, err := purego.Dlsym(h, "vkEnumerateInstanceVersion")
	if err != nil {
		return apiVersion10
	}
	var f func(v *uint32) vkResult
	purego.RegisterFunc(&f, sym)
	var v uint32
	if f(&v) != 0 {
		return apiVersion10
	}
	return v
}

func versionString(v uint32) string { return fmt.Sprintf("%d.%d", v>>22&0x7f, v>>12&0x3ff) }

// readFeatures queries d's physical device. Subgroup properties need
// vkGetPhysicalDeviceProperties2, which Vulkan 1.1 instances and devices
// have; on 1.0 the size is left unreported.
func (d *Device) readFeatures(props *physProps) Features {
	a := d.a
	f := Features{API: versionString(props.apiVersion)}
	if a.getPhysicalDeviceProps2 != nil && d.instAPI >= apiVersion11 && props.apiVersion >= apiVersion11 {
		sg := vkSubgroupProperties{sType: sTypeSubgroupProperties}
		p2 := vkPhysicalDeviceProperties2{sType: sTypePhysicalDeviceProperties2, pNext: unsafe.Pointer(&sg)}
		a.getPhysicalDeviceProps2(d.pd, &p2)
		f.SubgroupSize = sg.subgroupSize
		// Kernels with subgroup sums (the *_sg shaders) need the basic and
		// arithmetic operations in compute shaders.
		const stageComputeBit, opsBasicArith = 0x20, 0x1 | 0x4
		d.sgArith = sg.supportedStages&stageComputeBit != 0 && sg.supportedOperations&opsBasicArith == opsBasicArith
		f.SubgroupKernels = d.sgArith
		for i, name := range subgroupOpNames {
			if sg.supportedOperations&(1<<i) != 0 {
				f.SubgroupOps = append(f.SubgroupOps, name)
			}
		}
	}
	var n uint32
	if a.enumerateDeviceExtensions(d.pd, nil, &n, nil) == 0 && n > 0 {
		exts := make([]vkExtensionProperties, n)
		if a.enumerateDeviceExtensions(d.pd, nil, &n, &exts[0]) == 0 {
			for _, e := range exts[:n] {
				switch string(bytes.TrimRight(e.name[:], "\x00")) {
				case "VK_KHR_cooperative_matrix":
					f.CoopMatrix = "KHR"
				case "VK_NV_cooperative_matrix":
					if f.CoopMatrix == "" {
						f.CoopMatrix = "NV"
					}
				case "VK_KHR_shader_float16_int8":
					f.Float16Int8 = true
				case "VK_KHR_16bit_storage":
					f.Storage16 = true
				case "VK_KHR_shader_integer_dot_product":
					f.IntegerDot = true
				case "VK_EXT_subgroup_size_control":
					f.SizeControl = true
				}
			}
		}
	}
	// Extensions promoted to core are features of every device of that
	// version, whether or not it still lists the extension.
	f.Storage16 = f.Storage16 || props.apiVersion >= apiVersion11
	f.Float16Int8 = f.Float16Int8 || props.apiVersion >= apiVersion12
	f.IntegerDot = f.IntegerDot || props.apiVersion >= apiVersion13
	f.SizeControl = f.SizeControl || props.apiVersion >= apiVersion13
	var mp vkPhysicalDeviceMemoryProperties
	a.getMemoryProps(d.pd, &mp)
	for _, h := range mp.memoryHeaps[:min(mp.memoryHeapCount, 16)] {
		if h.flags&memHeapDeviceLocal != 0 {
			f.DeviceMiB = max(f.DeviceMiB, h.size>>20)
		}
	}
	return f
}
