package gpu

import (
	"bytes"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	ps := Detect(1)
	if len(ps) != len(Devices) {
		t.Fatalf("%d probes, want %d", len(ps), len(Devices))
	}
	for i, p := range ps {
		if p.Backend != Devices[i] {
			t.Errorf("probe %d is %s, want %s", i, p.Backend, Devices[i])
		}
		if p.Detail == "" {
			t.Errorf("%s: no detail", p.Backend)
		}
		t.Logf("%-6s ok=%v auto=%v %s", p.Backend, p.OK, p.Auto, p.Detail)
	}
	if cpu := ps[len(ps)-1]; !cpu.OK || !cpu.Auto {
		t.Errorf("cpu probe %+v", cpu)
	}
}

// A device that cannot be opened falls back to the CPU with the reason.
func TestOpenFallsBack(t *testing.T) {
	for _, p := range Detect(1) {
		var warn bytes.Buffer
		b, closeFn, err := Open(p.Backend, 1, &warn)
		if err != nil {
			t.Fatalf("%s: %v", p.Backend, err)
		}
		if p.OK && b.Name() == "cpu" && p.Backend != "cpu" {
			t.Errorf("%s works but Open gave the CPU (%s)", p.Backend, warn.String())
		}
		if !p.OK && (b.Name() != "cpu" || !strings.Contains(warn.String(), "using the CPU")) {
			t.Errorf("%s is unavailable: got backend %s, warning %q", p.Backend, b.Name(), warn.String())
		}
		closeFn()
	}
	if _, _, err := Open("tpu", 1, nil); err == nil || !strings.Contains(err.Error(), "cuda, vulkan, blas, cpu") {
		t.Errorf("unknown device: %v", err)
	}
	b, closeFn, err := Open("auto", 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	t.Logf("auto: %s", b.Name())
}
