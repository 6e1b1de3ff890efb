package vulkan

import (
	"fmt"
	"strings"
)

// Features is what a device offers that matters for fast kernels, as
// `llmlab devices` reports it: the subgroup size and operations (register
// tiling and reductions without shared memory), matrix-multiply units
// exposed as cooperative matrices (tensor cores, matrix cores), 16-bit and
// 8-bit arithmetic and storage, and the device-local memory size. It is read once
// when the device opens. Of these, subgroup arithmetic in compute shaders
// chooses kernels today (SubgroupKernels: decoding's products); the rest
// is reported for the kernels to come.
type Features struct {
	API          string   // the device's Vulkan version, "1.3"
	SubgroupSize uint32   // 0: not reported (a Vulkan 1.0 device or loader)
	SubgroupOps  []string // basic, vote, arithmetic, ballot, shuffle, ...
	CoopMatrix   string   // "KHR", "NV" or "" (VK_KHR/NV_cooperative_matrix)
	Float16Int8  bool     // VK_KHR_shader_float16_int8 (core in 1.2)
	Storage16    bool     // VK_KHR_16bit_storage (core in 1.1)
	IntegerDot   bool     // VK_KHR_shader_integer_dot_product (core in 1.3)
	SizeControl  bool     // VK_EXT_subgroup_size_control (core in 1.3)
	DeviceMiB    uint64   // the largest device-local heap
	// SubgroupKernels: the kernels with subgroup sums run (Vulkan 1.1,
	// basic and arithmetic operations in compute shaders).
	SubgroupKernels bool
}

// String is the one-line summary `llmlab devices` prints.
func (f Features) String() string {
	var p []string
	p = append(p, "Vulkan "+f.API)
	if f.SubgroupSize > 0 {
		sk := "subgroup kernels off"
		if f.SubgroupKernels {
			sk = "subgroup kernels on"
		}
		p = append(p, fmt.Sprintf("subgroup %d (%s; %s)", f.SubgroupSize, strings.Join(f.SubgroupOps, " "), sk))
	} else {
		p = append(p, "subgroup size not reported")
	}
	if f.CoopMatrix != "" {
		p = append(p, "cooperative matrix ("+f.CoopMatrix+")")
	} else {
		p = append(p, "no cooperative matrix")
	}
	var ext []string
	for _, e := range []struct {
		on   bool
		name string
	}{{f.Float16Int8, "fp16/int8 math"}, {f.Storage16, "16-bit storage"}, {f.IntegerDot, "int8 dot"}, {f.SizeControl, "subgroup size control"}} {
		if e.on {
			ext = append(ext, e.name)
		}
	}
	if len(ext) > 0 {
		p = append(p, strings.Join(ext, ", "))
	}
	p = append(p, fmt.Sprintf("%d MiB device-local", f.DeviceMiB))
	return strings.Join(p, "; ")
}
