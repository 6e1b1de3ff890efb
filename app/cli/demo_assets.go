package cli

import "errors"

// demoModelDir unpacks the embedded demo model (once) and returns its folder.
func demoModelDir() (string, error) {
	return "", BadInput(errors.New("the embedded demo model is not built into this binary yet (make demo-model)"))
}

// demoAdapterDir unpacks the embedded demo LoRA adapter.
func demoAdapterDir() (string, error) {
	return "", BadInput(errors.New("the embedded demo adapter is not built into this binary yet (llmlab demo)"))
}
