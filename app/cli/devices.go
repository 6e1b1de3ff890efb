package cli

import (
	"encoding/json"
	"fmt"
	"runtime"

	"llmlab/core/tensor"
	"llmlab/gpu/blas"
)

// runDevices lists the compute backends found and which one is chosen.
func runDevices(e *Env) error {
	fs := newFlags(e, "devices")
	jsonOut := fs.Bool("json", false, "one JSON object per backend")
	if err := parse(fs, e.Args); err != nil {
		return err
	}
	type row struct {
		Backend  string   `json:"backend"`
		OK       bool     `json:"ok"`
		Chosen   bool     `json:"chosen"`
		Detail   string   `json:"detail"`
		Features []string `json:"features,omitempty"`
	}
	rows := []row{{
		Backend: "cpu", OK: true, Chosen: true,
		Detail:   fmt.Sprintf("%s/%s, %d cores, GEMM kernel %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), tensor.CPUFeatures()[0]),
		Features: tensor.CPUFeatures(),
	}}
	if l, err := blas.Open(); err == nil {
		rows = append(rows, row{Backend: "blas", OK: true, Detail: l.Name() + " found: --device blas sends large float32 products to it (bench uses it as the GEMM reference)"})
	} else {
		rows = append(rows, row{Backend: "blas", Detail: err.Error()})
	}
	rows = append(rows,
		row{Backend: "cuda", Detail: "not built into this version"},
		row{Backend: "vulkan", Detail: "not built into this version"})
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
		fmt.Fprintf(e.Stdout, "%s %-8s %s", mark, r.Backend, r.Detail)
		if len(r.Features) > 0 {
			fmt.Fprintf(e.Stdout, "  features: %v", r.Features)
		}
		fmt.Fprintln(e.Stdout)
	}
	return nil
}
