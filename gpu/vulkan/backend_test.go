//go:build linux || freebsd

package vulkan

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/tensor"
	"llmlab/core/tensor/backendtest"
)

func openOrSkip(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(tensor.NewCPU(1))
	if err != nil {
		t.Skipf("no Vulkan device here (install libvulkan1 and mesa-vulkan-drivers for lavapipe): %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestOps checks every op against the CPU backend.
func TestOps(t *testing.T) {
	b := openOrSkip(t)
	t.Logf("device: %s", b.Name())
	backendtest.Run(t, b)
}

// TestOpsTiled runs the op checks with every product on the
// register-tiled matmul kernel, whose 64×64 tiles the checks' small,
// odd shapes only partly fill.
func TestOpsTiled(t *testing.T) {
	b := openOrSkip(t)
	b.tiledMin = 1
	backendtest.Run(t, b)
}

// TestOpsStaging runs the op checks through the staging path that
// discrete GPUs take (device-only buffers, copy commands), forced here.
func TestOpsStaging(t *testing.T) {
	openOrSkip(t).Close()
	b, err := open(tensor.NewCPU(1), true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.d.staging {
		t.Fatalf("%s: not in staging mode", b.Name())
	}
	backendtest.Run(t, b)
}

// TestValidation reruns the op and training tests under the Khronos
// validation layer (Debian: vulkan-validationlayers), when it is installed,
// and fails on any message it prints: API misuse that a lenient driver
// tolerates would break on another.
func TestValidation(t *testing.T) {
	if os.Getenv("LLMLAB_VK_CHILD") != "" {
		t.Skip("running as the child")
	}
	const layer = "VK_LAYER_KHRONOS_validation"
	found := false
	for _, dir := range []string{"/usr/share/vulkan/explicit_layer.d", "/usr/local/share/vulkan/explicit_layer.d", "/etc/vulkan/explicit_layer.d"} {
		if _, err := os.Stat(filepath.Join(dir, "VkLayer_khronos_validation.json")); err == nil {
			found = true
		}
	}
	if !found {
		t.Skip("no Vulkan validation layer here (install vulkan-validationlayers to run this)")
	}
	openOrSkip(t).Close()
	run := "TestOps|TestOpsStaging|TestOpsTiled|TestViews|TestDecodeTraffic|TestMatVec|TestLongRecording|TestAdamWAll"
	if !testing.Short() {
		run += "|TestTrainingMatchesCPU|TestStepTraffic|TestGenerateMatchesCPU|TestPEFTMatchesCPU"
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^("+run+")$", "-test.count=1")
	// Synchronization validation too: it reports a command that reads or
	// writes what an earlier one wrote with no barrier between them, which
	// is what the backend's barrier placement (Device.order) must prevent.
	cmd.Env = append(os.Environ(), "VK_INSTANCE_LAYERS="+layer, "LLMLAB_VK_CHILD=1",
		"VK_LAYER_ENABLES=VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests under the validation layer failed: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "VUID") || strings.Contains(line, "SYNC-HAZARD") || strings.Contains(line, "Validation Error") || strings.Contains(line, "Validation Warning") {
			t.Errorf("validation layer: %s", line)
		}
	}
}

// TestFeatures: the device's features are read when it opens. Every
// device names its Vulkan version; a 1.1 device on a 1.1 loader reports
// its subgroup size (a power of two) with at least the basic operations.
func TestFeatures(t *testing.T) {
	b := openOrSkip(t)
	f := b.Features()
	t.Logf("%s: %s", b.Name(), f)
	if f.API == "" || f.API == "0.0" {
		t.Fatalf("no Vulkan version: %+v", f)
	}
	if b.d.instAPI >= apiVersion11 && f.API != "1.0" {
		if s := f.SubgroupSize; s == 0 || s&(s-1) != 0 || len(f.SubgroupOps) == 0 || f.SubgroupOps[0] != "basic" {
			t.Errorf("subgroup size %d, operations %v", s, f.SubgroupOps)
		}
	}
	if f.DeviceMiB == 0 {
		t.Errorf("no device-local memory reported: %+v", f)
	}
}

// TestMatVec checks the products of a few rows against weights stored
// (N, K), which run on the subgroup kernel where the device has subgroup
// arithmetic, against the CPU backend and the plain kernel: one to eight
// rows, batches, accumulation, K not a multiple of the workgroup.
func TestMatVec(t *testing.T) {
	b := openOrSkip(t)
	if !b.d.sgArith {
		t.Logf("%s has no subgroup arithmetic in compute shaders: the plain kernel runs", b.Name())
	}
	cpu := tensor.NewCPU(1)
	for _, m := range []int{1, 3, 8} {
		for _, o := range []tensor.MatMulOpts{{TransB: true}, {TransB: true, Accumulate: true}, {TransB: true, Batch: 2}} {
			const N, K = 37, 300
			bt := max(o.Batch, 1)
			a, w := tensor.New(bt*m, K), tensor.New(bt*N, K)
			for i := range a.F32 {
				a.F32[i] = float32(math.Sin(float64(i) * 0.37))
			}
			for i := range w.F32 {
				w.F32[i] = float32(math.Cos(float64(i) * 0.71))
			}
			want := tensor.New(bt*m, N)
			for i := range want.F32 {
				want.F32[i] = float32(i%5) - 2
			}
			got, plain := want.Clone(), want.Clone()
			cpu.MatMul(want, a, w, o)
			b.MatMul(got, a, w, o)
			b.noSubgroups = true
			b.MatMul(plain, a, w, o)
			b.noSubgroups = false
			for i := range want.F32 {
				for _, g := range []float32{got.F32[i], plain.F32[i]} {
					if d := math.Abs(float64(g - want.F32[i])); d > 1e-4*math.Max(1, math.Abs(float64(want.F32[i]))) {
						t.Fatalf("M=%d %+v: element %d: %v (subgroup kernel) and %v (plain), want %v", m, o, i, got.F32[i], plain.F32[i], want.F32[i])
					}
				}
			}
		}
	}
}

// TestShadersCompiled: the committed SPIR-V is what gen_shaders.sh makes
// of the committed GLSL (when glslangValidator is here), and every shader
// has both.
func TestShadersCompiled(t *testing.T) {
	srcs, _ := filepath.Glob("shaders/*.comp")
	spvs, _ := filepath.Glob("shaders/*.spv")
	if len(srcs) == 0 || len(srcs) != len(spvs) {
		t.Fatalf("%d shaders and %d SPIR-V files", len(srcs), len(spvs))
	}
	if _, err := exec.LookPath("glslangValidator"); err != nil {
		t.Skip("no glslangValidator here (Debian: glslang-tools) to recompile the shaders")
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", filepath.Join(dir, "gen_shaders.sh")).CombinedOutput(); err != nil {
		t.Fatalf("gen_shaders.sh: %v\n%s", err, out)
	}
	for _, src := range srcs {
		spv := strings.TrimSuffix(src, ".comp") + ".spv"
		want, err := os.ReadFile(filepath.Join(dir, spv))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(spv)
		if err != nil {
			t.Fatalf("%s has no compiled %s: %v", src, spv, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what gen_shaders.sh makes of %s: run go generate ./gpu/vulkan/", spv, src)
		}
	}
}
