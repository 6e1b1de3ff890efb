//go:build js && wasm

// Command wasm is llmlab's browser build: the same pure-Go core compiled
// to WebAssembly, driven by assets/web/worker.js. It exposes a global
// `llmlab` object whose functions load a model and an adapter from bytes
// (an HF folder's files, or a GGUF file the user picked, opened through
// core/source as the CLI opens --model), tokenize, and generate one token
// per call to step() so the worker can stream tokens and honour Stop
// between them.
package main

import (
	"bytes"
	"fmt"
	"syscall/js"

	"llmlab/core/autograd"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/source"
	"llmlab/core/tensor"
	"llmlab/core/tokenizer"
	"llmlab/core/train"
	"llmlab/lora"
)

// state is the one loaded model; the worker owns one instance.
type state struct {
	m       *model.Transformer
	tok     *tokenizer.Tokenizer
	chat    chat.Format // how chat prompts are rendered
	hasChat bool        // the model has a chat template
	gen     *generate.Generator
	adapter *lora.Adapter
	run     *generate.Run
	chunks  []string
	tune    *tuning
	file    pendingFile // a picked file being copied in
}

// tuning is a LoRA fine-tune in progress, advanced one step per call.
type tuning struct {
	src   *train.ExampleSource
	obj   train.LM
	opt   *optim.AdamW
	tape  *autograd.Tape
	sched optim.Schedule
	lr    float64
	step  int
	steps int
}

func bytesOf(v js.Value) []byte {
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

func errObj(err error) any { return map[string]any{"ok": false, "error": err.Error()} }

func (s *state) load(_ js.Value, args []js.Value) any {
	if len(args) < 4 {
		return map[string]any{"ok": false, "error": "load(config, weights, tokenizer, tokenizerConfig)"}
	}
	// Without SIMD, widening f16 weights element by element costs more than
	// the arithmetic, so models that fit (under 512 MB as f32) are widened
	// once at load; larger ones stay f16 and are widened in the kernels.
	weights := bytesOf(args[1])
	opts := model.LoadOptions{}
	if len(weights) > 256<<20 {
		opts.KeepStored = true
	}
	m, err := model.FromBytes(bytesOf(args[0]), weights, opts)
	if err != nil {
		return errObj(err)
	}
	tok, err := tokenizer.FromJSON(bytesOf(args[2]))
	if err != nil {
		return errObj(err)
	}
	if !args[3].IsUndefined() && !args[3].IsNull() {
		if err := tok.ApplyConfig(bytesOf(args[3])); err != nil {
			return errObj(err)
		}
	}
	// A folder's template is matched to a built-in one, as the demo's is.
	tmpl, chatErr := chat.Detect(tok.ChatTemplate())
	s.use(m, tok, chat.Format{Builtin: tmpl}, chatErr == nil)
	return map[string]any{"ok": true, "params": m.NumParams(), "vocab": tok.VocabSize(), "context": m.Cfg.MaxPos, "chat": chatErr == nil}
}

// use makes m the loaded model, dropping any adapter.
func (s *state) use(m *model.Transformer, tok *tokenizer.Tokenizer, f chat.Format, hasChat bool) {
	if s.run != nil {
		s.run.Stop()
	}
	s.m, s.tok, s.chat, s.hasChat, s.adapter, s.run, s.tune = m, tok, f, hasChat, nil, nil, nil
	s.gen = generate.New(m, tensor.NewCPU(1), tok)
}

// maxGGUFBytes is the largest GGUF file the page opens. WebAssembly has a
// 4 GiB address space; the file's bytes are copied into it once and the
// weights stay there in their stored types (f16 and the block types are
// not widened), beside the KV cache, activations and the engine.
const maxGGUFBytes = 1 << 30

// checkFile(name, size, firstBytes) says whether a picked file can be
// opened, before the worker reads it: {ok} or {ok: false, error}.
func (s *state) checkFile(_ js.Value, args []js.Value) any {
	if len(args) < 3 {
		return errObj(constErr("checkFile(name, size, firstBytes)"))
	}
	name, size := args[0].String(), args[1].Float()
	if size > maxGGUFBytes {
		return errObj(tooLarge(name, size))
	}
	if _, err := source.FromBytes(name, bytesOf(args[2])); err != nil {
		return errObj(err)
	}
	return map[string]any{"ok": true}
}

func tooLarge(name string, size float64) error {
	return fmt.Errorf("%s is %s; the browser build opens GGUF files of up to %s (WebAssembly's 4 GiB of memory holds the weights as stored, the KV cache and the engine); run larger ones with the llmlab binary", name, sizeText(size), sizeText(maxGGUFBytes))
}

func sizeText(n float64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", n/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", n/(1<<20))
}

// fileBegin(name, size) makes room for a file the worker then copies in
// with fileWrite, a slice at a time: the file's bytes are held once, in
// the engine's memory, and never whole on the JavaScript side as well.
func (s *state) fileBegin(_ js.Value, args []js.Value) any {
	if len(args) < 2 {
		return errObj(constErr("fileBegin(name, size)"))
	}
	name, size := args[0].String(), args[1].Float()
	if size > maxGGUFBytes {
		return errObj(tooLarge(name, size))
	}
	if size < 0 || size != float64(int(size)) {
		return errObj(fmt.Errorf("%s: size %v", name, size))
	}
	s.file = pendingFile{} // let an earlier one go before allocating
	s.file = pendingFile{name: name, data: make([]byte, int(size))}
	return map[string]any{"ok": true}
}

// fileWrite(offset, bytes) copies the next slice of the file in.
func (s *state) fileWrite(_ js.Value, args []js.Value) any {
	if len(args) < 2 || s.file.data == nil {
		return errObj(constErr("fileWrite(offset, bytes) after fileBegin"))
	}
	off, n := args[0].Int(), args[1].Get("length").Int()
	if off != s.file.written || n > len(s.file.data)-off {
		return errObj(fmt.Errorf("%s: %d bytes at offset %d of %d (%d written)", s.file.name, n, off, len(s.file.data), s.file.written))
	}
	js.CopyBytesToGo(s.file.data[off:off+n], args[1])
	s.file.written += n
	return map[string]any{"ok": true}
}

// pendingFile is a file being copied in by fileWrite.
type pendingFile struct {
	name    string
	data    []byte
	written int
}

// loadGGUF(name[, bytes]) opens a GGUF file through core/source, as
// --model FILE.gguf is opened: the weights stay in the file's types (the
// quantized products run from the blocks), and the tokenizer and chat
// template are the file's. Without bytes it opens the file fileBegin and
// fileWrite copied in.
func (s *state) loadGGUF(_ js.Value, args []js.Value) any {
	if len(args) < 1 {
		return errObj(constErr("loadGGUF(name[, bytes])"))
	}
	name := args[0].String()
	var data []byte
	if len(args) > 1 && !args[1].IsUndefined() {
		if n := args[1].Get("length").Float(); n > maxGGUFBytes {
			return errObj(tooLarge(name, n))
		}
		data = bytesOf(args[1])
	} else {
		f := s.file
		s.file = pendingFile{}
		if f.data == nil || f.name != name || f.written != len(f.data) {
			return errObj(fmt.Errorf("%s: %d of %d bytes were copied in", name, f.written, len(f.data)))
		}
		data = f.data
	}
	src, err := source.FromBytes(name, data)
	if err != nil {
		return errObj(err)
	}
	op, err := src.Open(model.LoadOptions{KeepStored: true})
	if err != nil {
		return errObj(err)
	}
	hasChat := op.Chat.Own != nil
	s.use(op.M, op.Tok, op.Chat, hasChat)
	return map[string]any{"ok": true, "name": src.Name, "arch": op.Arch, "type": op.Type, "params": op.M.NumParams(),
		"vocab": op.Tok.VocabSize(), "context": op.M.Cfg.MaxPos, "chat": hasChat}
}

func (s *state) loadAdapter(_ js.Value, args []js.Value) any {
	if s.m == nil {
		return map[string]any{"ok": false, "error": "load a model first"}
	}
	if s.adapter != nil {
		s.adapter.Remove()
		s.adapter = nil
	}
	a, err := lora.LoadBytes(s.m, bytesOf(args[0]), bytesOf(args[1]))
	if err != nil {
		return errObj(err)
	}
	s.adapter = a
	return map[string]any{"ok": true, "layers": len(a.Layers)}
}

func (s *state) setAdapter(_ js.Value, args []js.Value) any {
	if s.adapter == nil {
		return false
	}
	s.adapter.SetEnabled(args[0].Bool())
	return s.adapter.Enabled()
}

func (s *state) tokenize(_ js.Value, args []js.Value) any {
	if s.tok == nil {
		return errObj(errNoModel)
	}
	ids := s.tok.Encode(args[0].String(), false)
	outIDs, pieces := make([]any, len(ids)), make([]any, len(ids))
	for i, id := range ids {
		outIDs[i], pieces[i] = int(id), s.tok.Decode([]int32{id})
	}
	return map[string]any{"ok": true, "ids": outIDs, "pieces": pieces}
}

// start(prompt, {temperature, topK, topP, maxTokens, seed, chat, system})
func (s *state) start(_ js.Value, args []js.Value) any {
	if s.m == nil {
		return errObj(errNoModel)
	}
	prompt, o := args[0].String(), args[1]
	num := func(k string, d float64) float64 {
		if v := o.Get(k); v.Type() == js.TypeNumber {
			return v.Float()
		}
		return d
	}
	var ids []int32
	var stops []string
	// As `llmlab generate [--chat]` builds its prompt (app/cli/generate.go).
	var stopIDs []int32
	if b := o.Get("chat"); b.Type() == js.TypeBoolean && b.Bool() {
		if !s.hasChat {
			return errObj(constErr("the model has no chat template"))
		}
		var msgs []chat.Message
		if sys := o.Get("system"); sys.Type() == js.TypeString && sys.String() != "" {
			msgs = append(msgs, chat.Message{Role: chat.RoleSystem, Content: sys.String()})
		}
		msgs = append(msgs, chat.Message{Role: chat.RoleUser, Content: prompt})
		var err error
		if ids, err = data.EncodeChatPrompt(s.tok, s.chat, msgs); err != nil {
			return errObj(err)
		}
		stopIDs, stops = s.chat.Stops(s.tok)
	} else {
		ids = s.tok.Encode(prompt, true)
		if eos := s.tok.EOS(); len(ids) > 1 && ids[len(ids)-1] == eos {
			ids = ids[:len(ids)-1]
		}
		if eos := s.tok.EOS(); eos >= 0 {
			stopIDs = []int32{eos}
		}
	}
	if len(ids) == 0 {
		return errObj(constErr("the prompt encodes to no tokens"))
	}
	req := generate.Request{Prompts: [][]int32{ids}, MaxTokens: int(num("maxTokens", 64)), Seed: uint64(num("seed", 1)),
		Sampling:    generate.Sampling{Temperature: num("temperature", 0.8), TopK: int(num("topK", 40)), TopP: num("topP", 0.95)},
		StopStrings: stops, StopIDs: stopIDs}
	s.chunks = s.chunks[:0]
	req.OnText = func(_ int, text string) bool { s.chunks = append(s.chunks, text); return true }
	r, err := s.gen.Begin(req)
	if err != nil {
		return errObj(err)
	}
	s.run = r
	return map[string]any{"ok": true, "promptTokens": len(ids)}
}

// step() generates one token: {ok, text, done, ...result when done}.
func (s *state) step(_ js.Value, _ []js.Value) any {
	if s.run == nil {
		return errObj(errNoRun)
	}
	done, err := s.run.Step()
	if err != nil {
		s.run = nil
		return errObj(err)
	}
	out := map[string]any{"ok": true, "done": done}
	if done {
		res := s.run.Finish()
		s.run = nil
		ids := make([]any, len(res.IDs[0]))
		for i, id := range res.IDs[0] {
			ids[i] = int(id)
		}
		out["ids"], out["tokens"], out["tokensPerSecond"], out["finish"] = ids, res.Tokens, res.TokensPerSecond(), res.Finish[0]
		out["fullText"] = res.Text[0]
	}
	text := ""
	for _, c := range s.chunks {
		text += c
	}
	s.chunks = s.chunks[:0]
	out["text"] = text
	return out
}

// tuneStart(instructJSONL, {steps, rank, lr}) applies a fresh LoRA adapter
// (replacing any loaded one) and prepares SFT on the chat records.
func (s *state) tuneStart(_ js.Value, args []js.Value) any {
	if s.m == nil {
		return errObj(errNoModel)
	}
	o := args[1]
	num := func(k string, d float64) float64 {
		if v := o.Get(k); v.Type() == js.TypeNumber {
			return v.Float()
		}
		return d
	}
	if !s.hasChat {
		return errObj(constErr("the model has no chat template to tune in"))
	}
	ds, err := data.ReadJSONL(bytes.NewReader(bytesOf(args[0])), "instruct_train.jsonl")
	if err != nil {
		return errObj(err)
	}
	exs, _, err := data.BuildSFT(s.tok, ds, data.BuildOpts{Ctx: min(128, s.m.Cfg.MaxPos)}.With(s.chat))
	if err != nil {
		return errObj(err)
	}
	if s.adapter != nil {
		s.adapter.Remove()
	}
	rank := int(num("rank", 8))
	a, err := lora.Apply(s.m, lora.Config{Rank: rank, Alpha: float64(2 * rank), Targets: []string{"all-linear"},
		ModulesToSave: []string{"embed_tokens"}, Seed: 1})
	if err != nil {
		return errObj(err)
	}
	s.adapter = a
	steps, lr := int(num("steps", 40)), num("lr", 3e-3)
	b := tensor.NewCPU(1)
	s.tune = &tuning{
		src:   &train.ExampleSource{Examples: exs, Rows: 8, Seed: 1, Pad: max(s.tok.EOS(), 0)},
		obj:   train.LM{M: s.m},
		opt:   optim.NewAdamW(optim.AdamWConfig{LR: float32(lr), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}, a.Params()),
		tape:  autograd.NewTape(b),
		sched: optim.Schedule{Kind: optim.Cosine, Warmup: max(1, steps/10), Total: steps, MinRatio: 0.1},
		lr:    lr, steps: steps,
	}
	return map[string]any{"ok": true, "examples": len(exs), "trainable": len(a.Params())}
}

// tuneStep() runs one optimizer step: {ok, step, steps, loss, done}.
func (s *state) tuneStep(_ js.Value, _ []js.Value) any {
	tu := s.tune
	if tu == nil {
		return errObj(constErr("no tuning running; call tuneStart first"))
	}
	batch, err := tu.src.Next()
	if err != nil {
		return errObj(err)
	}
	tu.tape.Reset()
	loss, _, err := tu.obj.Loss(tu.tape, batch)
	if err != nil {
		return errObj(err)
	}
	if err := tu.tape.Backward(loss); err != nil {
		return errObj(err)
	}
	b := tu.tape.B
	optim.ClipGradNorm(b, tu.opt.Params, 1)
	tu.step++
	tu.opt.Update(b, float32(tu.sched.LR(tu.lr, tu.step)))
	tu.opt.ZeroGrad()
	done := tu.step >= tu.steps
	if done {
		s.tune = nil
	}
	return map[string]any{"ok": true, "step": tu.step, "steps": tu.steps, "loss": float64(loss.Value.F32[0]), "done": done}
}

func (s *state) stop(_ js.Value, _ []js.Value) any {
	if s.run != nil {
		s.run.Stop()
	}
	return true
}

type constErr string

func (e constErr) Error() string { return string(e) }

const (
	errNoModel = constErr("no model loaded")
	errNoRun   = constErr("no generation running; call start first")
)

func main() {
	s := &state{}
	api := map[string]any{}
	for name, fn := range map[string]func(js.Value, []js.Value) any{
		"load": s.load, "loadGGUF": s.loadGGUF, "checkFile": s.checkFile, "fileBegin": s.fileBegin, "fileWrite": s.fileWrite, "loadAdapter": s.loadAdapter, "setAdapter": s.setAdapter,
		"tokenize": s.tokenize, "start": s.start, "step": s.step, "stop": s.stop,
		"tuneStart": s.tuneStart, "tuneStep": s.tuneStep,
	} {
		api[name] = js.FuncOf(fn)
	}
	js.Global().Set("llmlab", js.ValueOf(api))
	if ready := js.Global().Get("llmlabReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // keep the exported functions alive
}
