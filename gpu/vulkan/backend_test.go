//go:build linux || freebsd

package vulkan

import (
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
	run := "TestOps|TestOpsStaging|TestOpsTiled|TestViews|TestDecodeTraffic"
	if !testing.Short() {
		run += "|TestTrainingMatchesCPU|TestStepTraffic|TestGenerateMatchesCPU"
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
