package cli

import (
	"io"
	"testing"

	"llmlab/gpu"
)

// A command opens each --device once, however many of its parts ask, and
// RunIO closes what it opened when the command ends (the desktop app runs
// command after command in one process).
func TestEnvOpensADeviceOnce(t *testing.T) {
	devices := []string{"cpu"}
	for _, p := range gpu.Detect(1) {
		if p.Backend == "vulkan" && p.OK {
			devices = append(devices, "vulkan")
		}
	}
	for _, dev := range devices {
		e := &Env{Args: []string{"sub"}}
		a, err := e.backend(dev, 1, io.Discard)
		if err != nil {
			t.Fatalf("%s: %v", dev, err)
		}
		b, _ := e.backend(dev, 1, io.Discard)
		if a != b {
			t.Errorf("%s: two backends for one command", dev)
		}
		if c, _ := e.backend(dev, 2, io.Discard); c == a {
			t.Errorf("%s: the 2-thread backend is the 1-thread one", dev)
		}
		if len(e.devices) != 2 {
			t.Errorf("%s: %d devices open, want 2", dev, len(e.devices))
		}
		// A subcommand's Env uses its command's devices.
		if s, _ := e.shift().backend(dev, 1, io.Discard); s != a {
			t.Errorf("%s: the subcommand opened its own device", dev)
		}
		e.closeDevices()
		if len(e.devices) != 0 {
			t.Errorf("%s: %d devices open after closeDevices", dev, len(e.devices))
		}
		if d, _ := e.backend(dev, 1, io.Discard); d == a {
			t.Errorf("%s: a closed backend was handed out again", dev)
		}
		e.closeDevices()
	}
}

// A model loaded for the desktop app keeps its device until Close, and
// closing twice is harmless.
func TestModelClose(t *testing.T) {
	m, err := LoadModel("demo", "", "cpu", 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.close == nil {
		t.Fatal("LoadModel gave no way to close its device")
	}
	m.Close()
	m.Close()
	if m.close != nil {
		t.Error("Close left the closer")
	}
}
