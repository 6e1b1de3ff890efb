package cli

import (
	"llmlab/core/chat"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tokenizer"
	"llmlab/lora"
)

// Model is a model loaded for a front end that runs it in-process (the
// desktop app's Models page and Playground), loaded exactly as `generate`
// and `chat` load --model, --adapter, --device and --threads.
type Model struct {
	Dir      string // the model folder ('demo' resolved to its unpacked copy)
	M        *model.Transformer
	Tok      *tokenizer.Tokenizer
	Adapter  *lora.Adapter  // the LoRA adapter applied; nil without one or for IA3
	Backend  tensor.Backend // for --device and --threads
	Template chat.Format    // the chat format `chat` would use (chooseFormat), or Plain
	// TemplateErr says why Template fell back to Plain (nil when the
	// model's own template, or the built-in fallback, renders).
	TemplateErr error

	close func() // closes the device LoadModel opened
}

// Close releases the model's compute device (a GPU's memory and queues);
// the model must not run afterwards. Closing twice is harmless.
func (m *Model) Close() {
	if m.close != nil {
		m.close()
		m.close = nil
	}
}

// LoadModel loads modelArg (a folder or 'demo') with an optional adapter
// folder (or 'demo') for inference. Errors are the CLI's sentences.
func LoadModel(modelArg, adapterArg, device string, threads int) (*Model, error) {
	mf := modelFlags{model: modelArg, adapter: adapterArg, device: device, threads: threads}
	// The model keeps its device open until Close.
	dev := &Env{}
	b, err := mf.backend(dev)
	if err != nil {
		return nil, err
	}
	l, err := mf.load(model.LoadOptions{KeepStored: true})
	if err != nil {
		dev.closeDevices()
		return nil, err
	}
	out := &Model{Dir: l.Dir, M: l.M, Tok: l.Tok, Adapter: l.Adapter, Backend: b, Template: chat.Format{Builtin: chat.Plain}, close: dev.closeDevices}
	if t, err := chooseFormat(l, ""); err == nil {
		out.Template = t
	} else {
		out.TemplateErr = err
	}
	return out, nil
}

// TrainingMemory is the memory in bytes a training step of m needs at
// batch x ctx, as the training commands estimate it before they start
// (peft: about 1% of the weights trainable).
func TrainingMemory(m *model.Transformer, batch, ctx int, peft bool) int64 {
	trainable := int64(m.NumParams())
	if peft {
		trainable /= 100
	}
	return estimateMemory(m, batch, ctx, trainable).total()
}
