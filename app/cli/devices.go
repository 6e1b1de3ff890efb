package cli

import (
	"encoding/json"
	"fmt"

	"llmlab/core/tensor"
	"llmlab/gpu"
)

// runDevices lists the compute backends found and which one is chosen.
func runDevices(e *Env) error {
	fs := newFlags(e, "devices")
	jsonOut := fs.Bool("json", false, "one JSON object per backend")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	type row struct {
		gpu.Probe
		Chosen   bool     `json:"chosen"`
		Features []string `json:"features,omitempty"`
	}
	chosen := "cpu"
	probes := gpu.Detect(1)
	for _, p := range probes {
		if p.OK && p.Auto {
			chosen = p.Backend
			break
		}
	}
	var rows []row
	for _, p := range probes {
		r := row{Probe: p, Chosen: p.Backend == chosen}
		if p.Backend == "cpu" {
			r.Features = tensor.CPUFeatures()
		}
		rows = append(rows, r)
	}
	if !*jsonOut {
		fmt.Fprintln(e.Stdout, "  backend usable  device (* = the one --device auto takes)")
	}
	for _, r := range rows {
		if *jsonOut {
			if err := json.NewEncoder(e.Stdout).Encode(r); err != nil {
				return err
			}
			continue
		}
		mark := " "
		if r.Chosen {
			mark = "*"
		}
		state := "no "
		if r.OK {
			state = "yes"
		}
		fmt.Fprintf(e.Stdout, "%s %-7s %s  %s", mark, r.Backend, state, r.Detail)
		if len(r.Features) > 0 {
			fmt.Fprintf(e.Stdout, "  features: %v", r.Features)
		}
		fmt.Fprintln(e.Stdout)
	}
	return nil
}
