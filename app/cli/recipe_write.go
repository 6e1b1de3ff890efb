package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/rlhf"
)

// recipePlan holds what both targets derive from a spec the same way.
type recipePlan struct {
	sp          *recipeSpec
	target      recipeTarget
	micro       int // sequences per GPU per micro-batch
	accum       int
	steps       int
	outputDir   string // where the other trainer writes its adapter
	notes       []string
	cmd, kind   string // kind: the dpo family member (dpo, simpo, orpo)
	alpha       float64
	main        string   // the recipe's main file
	launch      []string // command lines for sp.GPUs GPUs
	rewardTerms rlhf.Sum
}

func (p *recipePlan) note(format string, a ...any) {
	p.notes = append(p.notes, fmt.Sprintf(format, a...))
}

// writeRecipe writes the recipe files for target and the launch lines.
func writeRecipe(sp *recipeSpec, target recipeTarget) ([]recipeFile, []string, error) {
	r := &sp.R
	p := &recipePlan{sp: sp, target: target, cmd: r.Command, kind: r.Extra.Kind, micro: r.Batch, accum: max(r.Train.Accum, 1), steps: r.Train.Steps}
	p.outputDir = "output"
	if sp.Out != "" {
		p.outputDir = filepath.Join(sp.Out, "output")
	}
	if p.cmd == "dpo" && p.kind == "" {
		p.kind = "dpo"
	}
	p.alpha = 16 // the --alpha default; kto and rm do not record theirs
	if r.Extra.Alpha != nil {
		p.alpha = *r.Extra.Alpha
	} else if p.cmd != "grpo" && peftIs("lora", "dora")(r) {
		p.note("run.json of %s does not record --alpha: lora_alpha is llmlab's default, 16", p.cmd)
	}
	if r.Model == "demo" {
		p.note("base_model is the folder llmlab unpacks its embedded demo model into: copy it to the cluster with the data")
	}
	for _, u := range sp.Unknown {
		p.note("run.json field %s is not known to this version of recipe and is not carried over", u)
	}
	if p.cmd == "grpo" {
		p.steps = sp.F.Steps
		if p.steps <= 0 {
			p.steps = 30
			p.note("run.json of grpo holds no step count (a run may be resumed with more): max_steps is grpo's default, 30 (recipe --steps N sets it)")
		}
		p.micro, p.accum = r.Extra.Prompts*r.Extra.Group, 1
		if p.micro%sp.GPUs == 0 {
			p.micro /= sp.GPUs
		} else {
			p.note("%d completions a step do not split over %d GPUs: each GPU takes %d, so a step sees %d", p.micro, sp.GPUs, p.micro, p.micro*sp.GPUs)
		}
		terms, err := parseRewardSpec(r.Extra.Reward)
		if err != nil {
			return nil, nil, BadInput(fmt.Errorf("extra.reward: %w", err))
		}
		p.rewardTerms = terms
	} else if g := sp.GPUs; g > 1 {
		switch {
		case p.accum%g == 0:
			p.accum /= g
		case p.micro%g == 0:
			p.micro /= g
		default:
			p.note("the batch of %d x %d accumulated does not split over %d GPUs: the global batch grows to %d sequences", p.micro, p.accum, g, p.micro*p.accum*g)
		}
	}
	if err := p.check(); err != nil {
		return nil, nil, err
	}
	if target == toTRL {
		return p.trl()
	}
	return p.axolotl()
}

// check refuses what a target cannot express.
func (p *recipePlan) check() error {
	r := &p.sp.R
	peft := strings.ToLower(r.Extra.PEFT)
	if p.cmd == "rm" && peft != "none" && peft != "lora" && peft != "dora" {
		return BadInput(fmt.Errorf("rm with --peft %s: rm trains with none, lora or dora", peft))
	}
	if p.target != toAxolotl {
		return nil
	}
	switch peft {
	case "ia3", "prefix", "prompt":
		return BadInput(fmt.Errorf("--peft %s: Axolotl trains LoRA and QLoRA adapters only; use --to trl (PEFT's %s in TRL)", peft, map[string]string{"ia3": "IA3Config", "prefix": "PrefixTuningConfig", "prompt": "PromptTuningConfig"}[peft]))
	}
	switch {
	case p.cmd == "rm":
		return BadInput(fmt.Errorf("rm: Axolotl's Bradley–Terry reader (bradley_terry.chat_template) wants the prompt in an \"input\" field where llmlab's pairs have \"prompt\"; use --to trl (RewardTrainer reads them in place)"))
	case p.kind == "orpo":
		return BadInput(fmt.Errorf("orpo: Axolotl's ORPO reader (chat_template.argilla) wants chosen and rejected as whole conversations; use --to trl (ORPOTrainer reads llmlab's pairs in place)"))
	case (p.cmd == "dpo" || p.cmd == "kto") && !p.sp.Strings:
		return BadInput(fmt.Errorf("%s: %s holds conversations (message lists); Axolotl's pattern reader for them wants plain strings; use --to trl (it reads both)", p.cmd, p.sp.DataPath))
	case p.cmd == "grpo" && p.sp.Out == "":
		return Usagef("grpo for Axolotl is two files (the config and the reward module): give --out DIR")
	case p.cmd == "sft" && p.sp.Shape == data.ShapePromptCompletion && !p.sp.Strings:
		return BadInput(fmt.Errorf("sft: %s holds prompt/completion message lists; Axolotl reads conversations from a \"messages\" field; use --to trl (it reads them in place)", p.sp.DataPath))
	}
	return nil
}

// header is the comment block both targets start with.
func (p *recipePlan) header(comment string) []string {
	sp := p.sp
	what := p.cmd
	if p.cmd == "dpo" && p.kind != "dpo" {
		what = p.kind + " (llmlab dpo --loss " + p.kind + ")"
	}
	var h []string
	h = append(h, fmt.Sprintf("llmlab %s run, written for %s by `llmlab recipe` from: %s", what, map[recipeTarget]string{toAxolotl: "Axolotl", toTRL: "TRL"}[p.target], sp.From))
	h = append(h, fmt.Sprintf("base model %s (llmlab --model %s); data read in place from %s (%s records)", sp.ModelDir, sp.R.Model, sp.DataPath, sp.Shape))
	h = append(h, "")
	h = append(h, fmt.Sprintf("Launch on %d GPU(s), from this folder:", sp.GPUs))
	for _, l := range p.launch {
		h = append(h, "  "+l)
	}
	h = append(h, "")
	h = append(h, "Back into llmlab: "+p.backInto())
	if len(p.notes) > 0 {
		h = append(h, "", "Where llmlab and "+map[recipeTarget]string{toAxolotl: "Axolotl", toTRL: "TRL"}[p.target]+" differ:")
		for _, n := range p.notes {
			h = append(h, "- "+n)
		}
	}
	for i, l := range h {
		if l == "" {
			h[i] = comment
		} else {
			h[i] = comment + " " + l
		}
	}
	return h
}

// backInto says how the trained result comes back into llmlab.
func (p *recipePlan) backInto() string {
	base := p.sp.R.Model
	if p.cmd == "rm" {
		return fmt.Sprintf("the script merges the adapter and writes %s as llmlab's reward-model layout (an HF causal-LM folder plus score.safetensors): llmlab score --model %s --data PAIRS.jsonl",
			filepath.Join(p.outputDir, "llmlab"), filepath.Join(p.outputDir, "llmlab"))
	}
	if strings.EqualFold(p.sp.R.Extra.PEFT, "none") && p.cmd != "grpo" {
		return fmt.Sprintf("%s is an HF model folder (config.json, model.safetensors, tokenizer files): llmlab chat --model %s", p.outputDir, p.outputDir)
	}
	return fmt.Sprintf("%s is a PEFT adapter folder (adapter_config.json, adapter_model.safetensors): llmlab chat --model %s --adapter %s (or llmlab merge --model %s --adapter %s --out DIR)",
		p.outputDir, base, p.outputDir, base, p.outputDir)
}

// parseRewardSpec reads grpo's recorded reward, "a + 0.5*b".
func parseRewardSpec(s string) (rlhf.Sum, error) {
	if s == "" {
		return rlhf.ParseRewards("exact")
	}
	return rlhf.ParseRewards(strings.Split(s, " + ")...)
}

// ---- Axolotl ----

// yamlMap builds a YAML mapping with comments, in order.
type yamlMap struct{ n *yaml.Node }

func newYAMLMap() yamlMap { return yamlMap{&yaml.Node{Kind: yaml.MappingNode}} }

func (m yamlMap) put(key string, v any, comment string) {
	k := &yaml.Node{Kind: yaml.ScalarNode, Value: key}
	var val *yaml.Node
	switch x := v.(type) {
	case yamlMap:
		val = x.n
	case []yamlMap:
		val = &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range x {
			val.Content = append(val.Content, e.n)
		}
	default:
		val = &yaml.Node{}
		if err := val.Encode(v); err != nil {
			panic(fmt.Sprintf("recipe: a %T does not encode as YAML: %v", v, err))
		}
	}
	if comment != "" {
		k.HeadComment = "# " + strings.ReplaceAll(comment, "\n", "\n# ")
	}
	m.n.Content = append(m.n.Content, k, val)
}

func (p *recipePlan) axolotl() ([]recipeFile, []string, error) {
	sp, r := p.sp, &p.sp.R
	p.main = "axolotl.yaml"
	p.launch = []string{fmt.Sprintf("accelerate launch --num_processes %d -m axolotl.cli.train %s", sp.GPUs, p.main)}
	if sp.GPUs > 1 {
		p.launch = append(p.launch,
			"or with DeepSpeed ZeRO-2 (axolotl fetch deepspeed_configs first):",
			fmt.Sprintf("accelerate launch --num_processes %d -m axolotl.cli.train %s --deepspeed deepspeed_configs/zero2.json", sp.GPUs, p.main))
	}
	m := newYAMLMap()
	m.put("base_model", sp.ModelDir, "")
	var files []recipeFile

	// The method.
	switch {
	case p.cmd == "sft":
		p.axolotlTemplate(m, "supervised fine-tuning: no rl key")
	case p.cmd == "dpo" && p.kind == "dpo":
		m.put("rl", "dpo", "")
		m.put("rl_beta", f32(r.Extra.DPO.Beta), "")
		m.put("dpo_loss_type", []string{r.Extra.DPO.Loss.String()}, "")
		m.put("dpo_label_smoothing", f32(r.Extra.DPO.LabelSmoothing), "")
	case p.kind == "simpo":
		m.put("rl", "simpo", "")
		m.put("rl_beta", f32(r.Extra.DPO.Beta), "")
		m.put("simpo_gamma", r.Extra.Gamma, "")
		m.put("cpo_alpha", 0.0, "pure SimPO, no NLL term, as llmlab's")
		m.put("dpo_label_smoothing", f32(r.Extra.DPO.LabelSmoothing), "")
	case p.cmd == "kto":
		m.put("rl", "kto", "")
		m.put("rl_beta", f32(r.Extra.KTO.Beta), "")
		m.put("kto_desirable_weight", f32(r.Extra.KTO.DesirableWeight), "")
		m.put("kto_undesirable_weight", f32(r.Extra.KTO.UndesirableWeight), "")
		m.put("remove_unused_columns", false, "")
	case p.cmd == "grpo":
		m.put("rl", "grpo", "")
		tr := newYAMLMap()
		tr.put("beta", r.Extra.Beta, "")
		tr.put("epsilon", r.Extra.Clip, "")
		tr.put("num_generations", r.Extra.Group, "")
		tr.put("max_completion_length", r.Extra.MaxTokens, "")
		tr.put("temperature", r.Extra.Temperature, "")
		tr.put("loss_type", "grpo", "each completion's token mean, then the mean over completions, as llmlab's")
		tr.put("use_vllm", false, "llmlab samples with the policy itself; vLLM is faster on a cluster")
		var fns []string
		var ws []float64
		for i, t := range p.rewardTerms {
			fns = append(fns, fmt.Sprintf("llmlab_rewards.reward_%d", i))
			ws = append(ws, f32(t.Weight))
		}
		tr.put("reward_funcs", fns, "llmlab's reward rules ("+r.Extra.Reward+"), written out in llmlab_rewards.py")
		tr.put("reward_weights", ws, "")
		m.put("trl", tr, "")
		files = append(files, recipeFile{"llmlab_rewards.py", []byte(p.rewardModule(true))})
	}
	if p.cmd != "sft" {
		p.axolotlTemplate(m, "")
	}

	// The data.
	ds := newYAMLMap()
	ds.put("path", sp.DataPath, "")
	ds.put("ds_type", "json", "")
	ds.put("split", "train", "")
	if err := p.axolotlDataset(ds, m); err != nil {
		return nil, nil, err
	}
	m.put("datasets", []yamlMap{ds}, "")
	if sp.EvalPath != "" {
		ev := newYAMLMap()
		ev.put("path", sp.EvalPath, "")
		ev.put("ds_type", "json", "")
		ev.put("split", "train", "")
		if err := p.axolotlDataset(ev, m); err != nil {
			return nil, nil, err
		}
		m.put("test_datasets", []yamlMap{ev}, "llmlab --eval-data: the held-out examples come from this file")
	} else if p.cmd != "kto" && p.cmd != "grpo" {
		frac := sp.F.EvalFrac
		c := ""
		if frac < 0 {
			frac = 0.05
			c = "llmlab's --eval-frac is not in run.json: its default"
		}
		m.put("val_set_size", frac, c)
	}
	m.put("output_dir", p.outputDir, runFolderNote(r.Out))

	// The adapter.
	p.axolotlPEFT(m)

	// The loop.
	m.put("sequence_len", p.seqLen(), "")
	if p.cmd == "sft" {
		m.put("sample_packing", r.Extra.Pack, "")
		m.put("train_on_inputs", r.Extra.TrainOnAll, "")
	} else {
		m.put("sample_packing", false, "")
	}
	m.put("micro_batch_size", p.micro, p.batchComment())
	m.put("gradient_accumulation_steps", p.accum, "")
	m.put("max_steps", p.steps, "llmlab counts optimizer steps; num_epochs is left to max_steps")
	if p.cmd == "grpo" {
		m.put("learning_rate", r.Extra.LR, "")
		m.put("lr_scheduler", "constant", "llmlab's GRPO keeps the rate constant")
		m.put("optimizer", "adamw_torch", "")
		m.put("adam_beta1", 0.9, "")
		m.put("adam_beta2", 0.99, "")
		m.put("adam_epsilon", 1e-8, "")
		m.put("weight_decay", 0.0, "")
		m.put("seed", r.Extra.Seed, "")
	} else {
		t := r.Train
		m.put("learning_rate", t.LR, "")
		switch t.Schedule.Kind.String() {
		case "cosine":
			m.put("lr_scheduler", "cosine", "")
			m.put("cosine_min_lr_ratio", t.Schedule.MinRatio, "")
		case "linear":
			m.put("lr_scheduler", "linear", fmt.Sprintf("llmlab's linear decay ends at %g of the peak; Axolotl's at 0 (cosine_min_lr_ratio is for cosine only)", t.Schedule.MinRatio))
		default:
			m.put("lr_scheduler", "constant_with_warmup", "constant after warmup: llmlab's min-lr-ratio (cosine_min_lr_ratio) does not apply")
		}
		m.put("warmup_steps", t.Schedule.Warmup, "")
		m.put("optimizer", "adamw_torch", "AdamW; like llmlab, Hugging Face's Trainer leaves biases and norms out of weight decay")
		m.put("adam_beta1", f32(t.Optim.Beta1), "")
		m.put("adam_beta2", f32(t.Optim.Beta2), "")
		m.put("adam_epsilon", f32(t.Optim.Eps), "")
		m.put("weight_decay", f32(t.Optim.WeightDecay), "")
		m.put("max_grad_norm", t.Clip, "")
		m.put("seed", t.Seed, "")
		if t.EvalEvery > 0 {
			m.put("eval_steps", t.EvalEvery, "")
		}
		if t.SaveEvery > 0 {
			m.put("save_steps", t.SaveEvery, "")
		}
		m.put("save_total_limit", max(t.KeepLast, 1), sched0(t.EvalEvery, t.SaveEvery))
	}
	m.put("bf16", "auto", "llmlab computes in float32; bf16 is what the GPUs are for")
	m.put("gradient_checkpointing", true, "")

	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m.n}, HeadComment: strings.Join(p.header("#"), "\n")}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, nil, err
	}
	enc.Close()
	return append([]recipeFile{{p.main, buf.Bytes()}}, files...), p.launch, nil
}

func runFolderNote(out string) string {
	if out == "" {
		return ""
	}
	return "the llmlab run folder was " + out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sched0 explains llmlab's 0 for eval_every and save_every.
func sched0(evalEvery, saveEvery int) string {
	var s []string
	if evalEvery == 0 {
		s = append(s, "llmlab evaluates at the end only (eval_steps unset)")
	}
	if saveEvery == 0 {
		s = append(s, "llmlab checkpoints at the end only (save_steps unset)")
	}
	return strings.Join(s, "; ")
}

func (p *recipePlan) batchComment() string {
	if p.cmd == "grpo" {
		return fmt.Sprintf("llmlab: %d prompts x %d samples a step, over %d GPU(s)", p.sp.R.Extra.Prompts, p.sp.R.Extra.Group, p.sp.GPUs)
	}
	return fmt.Sprintf("llmlab: %d sequences x %d accumulated a step, over %d GPU(s)", p.sp.R.Batch, max(p.sp.R.Train.Accum, 1), p.sp.GPUs)
}

// seqLen is the context: grpo records none (its prompts and samples are
// short); Axolotl needs one.
func (p *recipePlan) seqLen() int {
	if p.sp.R.Ctx > 0 {
		return p.sp.R.Ctx
	}
	return 1024
}

// axolotlTemplate sets the chat template in Axolotl's terms: the model's
// own, or llmlab's built-in one written out as Jinja.
func (p *recipePlan) axolotlTemplate(m yamlMap, comment string) {
	if p.sp.OwnTmpl {
		p.note("chat template: the model's own (llmlab detected it as %s), chat_template: tokenizer_default", p.sp.Tmpl)
		m.put("chat_template", "tokenizer_default", comment)
		return
	}
	src, err := recipeJinja(p.sp.Tmpl)
	if err != nil { // every built-in template has one; a new one may not yet
		p.note("llmlab's %s template has no Jinja source here; chatml stands in", p.sp.Tmpl)
		m.put("chat_template", "chatml", comment)
		return
	}
	m.put("chat_template", "jinja", strings.TrimSpace(comment+"\nllmlab's "+p.sp.Tmpl.String()+" template, written out as Jinja: the same text"))
	m.put("chat_template_jinja", src, "")
}

// axolotlDataset fills in a dataset entry's type for the run's records.
func (p *recipePlan) axolotlDataset(ds, m yamlMap) error {
	sp := p.sp
	before, between, after, err := templateFormat(sp.Tmpl)
	if err != nil {
		return BadInput(err)
	}
	if sp.Tmpl.IncludesBOS() {
		for _, bos := range []string{"<|begin_of_text|>", "<s>", "<bos>"} {
			if strings.HasPrefix(before, bos) {
				before = before[len(bos):]
				p.note("the pattern leaves out %s: the tokenizer adds its BOS token", bos)
				break
			}
		}
	}
	// A pattern that writes what llmlab's template writes for one turn.
	pattern := func(field string) string {
		return pyFormat(before) + "{" + field + "}" + pyFormat(between)
	}
	end := pyFormat(after)
	patternNote := fmt.Sprintf("the %s template is written out as a pattern, so the text is what llmlab trains on", sp.Tmpl)
	switch p.cmd {
	case "sft":
		switch sp.Shape {
		case data.ShapeText:
			ds.put("type", "completion", "plain text: loss on every token, as llmlab's")
			ds.put("field", "text", "")
		case data.ShapeChat:
			ds.put("type", "chat_template", "")
			ds.put("field_messages", "messages", "")
			mp := newYAMLMap()
			mp.put("role", "role", "")
			mp.put("content", "content", "")
			ds.put("message_property_mappings", mp, "")
			roles := []string{"assistant"}
			if sp.R.Extra.TrainOnAll {
				roles = []string{"system", "user", "assistant"}
			}
			ds.put("roles_to_train", roles, "")
		case data.ShapeAlpaca, data.ShapePromptCompletion:
			t := newYAMLMap()
			ins, out := "instruction", "output"
			if sp.Shape == data.ShapePromptCompletion {
				ins, out = "prompt", "completion"
			} else {
				t.put("field_input", "input", "")
			}
			t.put("field_instruction", ins, "")
			t.put("field_output", out, "")
			if sp.Shape == data.ShapeAlpaca {
				// llmlab joins instruction and input with a blank line.
				t.put("format", pyFormat(before)+"{instruction}\n\n{input}"+pyFormat(between), patternNote)
			} else {
				t.put("format", pattern("instruction"), patternNote)
			}
			t.put("no_input_format", pattern("instruction"), "")
			ds.put("type", t, "")
			p.note("the answer ends with the tokenizer's end-of-sequence token where llmlab's %s template writes %q", sp.Tmpl, after)
		default:
			return BadInput(fmt.Errorf("sft: %s holds %s records", sp.DataPath, sp.Shape))
		}
	case "dpo":
		t := newYAMLMap()
		t.put("field_prompt", "prompt", "")
		t.put("field_chosen", "chosen", "")
		t.put("field_rejected", "rejected", "")
		t.put("prompt_format", pattern("prompt"), patternNote)
		t.put("chosen_format", "{chosen}"+end, "")
		t.put("rejected_format", "{rejected}"+end, "")
		ds.put("type", t, "user-defined preference pairs")
	case "kto":
		t := newYAMLMap()
		t.put("field_prompt", "prompt", "")
		t.put("field_completion", "completion", "")
		t.put("field_label", "label", "")
		t.put("prompt_format", pattern("prompt"), patternNote)
		t.put("completion_format", "{completion}"+end, "")
		ds.put("type", t, "user-defined KTO examples")
	case "grpo":
		ds.put("type", "llmlab_rewards.transform", "llmlab's reading of the records: the prompt is every turn before the last assistant turn, the answer that turn or the \"answer\" field")
	}
	return nil
}

// axolotlPEFT writes the adapter settings.
func (p *recipePlan) axolotlPEFT(m yamlMap) {
	r := &p.sp.R
	x := r.Extra
	if p.cmd == "grpo" {
		if x.Adapter != "" {
			m.put("adapter", "lora", "")
			m.put("lora_model_dir", absOr(x.Adapter), "continue the adapter llmlab's --adapter named (llmlab's reference is a frozen copy of it; TRL's is the base with the adapter off)")
			return
		}
		m.put("adapter", "lora", "")
		m.put("lora_r", x.Rank, "")
		m.put("lora_alpha", 2*x.Rank, "llmlab's grpo uses alpha = 2r")
		m.put("lora_dropout", 0.0, "")
		m.put("lora_target_linear", true, "")
		if x.ModulesToSave != "" {
			m.put("lora_modules_to_save", splitList(x.ModulesToSave), "")
		}
		return
	}
	method := strings.ToLower(x.PEFT)
	quant := strings.ToLower(x.Quant)
	switch method {
	case "none", "full", "":
		m.put("load_in_8bit", false, "full fine-tune: no adapter key")
		return
	}
	adapter := "lora"
	rank, alpha := x.Rank, p.alpha
	if method == "adapter" || method == "bottleneck" {
		p.note("bottleneck adapters (%d wide, %s) have no counterpart in Axolotl or PEFT; the nearest is LoRA of rank %d on the same modules, alpha %d", x.Bottleneck, orDash(x.AdapterAct), x.Bottleneck, 2*x.Bottleneck)
		rank, alpha = x.Bottleneck, float64(2*x.Bottleneck)
	}
	switch quant {
	case "nf4":
		adapter = "qlora"
		m.put("load_in_4bit", true, "QLoRA: the frozen base in 4-bit NF4, as llmlab's --quant nf4")
	case "int8", "q8":
		m.put("load_in_8bit", true, "llmlab's int8 is per-channel absmax; bitsandbytes' 8-bit is LLM.int8 (outliers in 16-bit)")
	default:
		m.put("load_in_8bit", false, "")
		m.put("load_in_4bit", false, "")
	}
	m.put("adapter", adapter, "")
	if x.Adapter != "" {
		m.put("lora_model_dir", absOr(x.Adapter), "continue the adapter llmlab's --adapter named")
	}
	m.put("lora_r", rank, "")
	m.put("lora_alpha", alpha, "")
	m.put("lora_dropout", 0.0, "")
	if x.Targets == "" || x.Targets == "all-linear" {
		m.put("lora_target_linear", true, "llmlab --targets all-linear")
	} else {
		m.put("lora_target_modules", splitList(x.Targets), "")
	}
	if method == "dora" {
		m.put("peft_use_dora", true, "")
	}
	if p.sp.F.RSLoRA {
		m.put("peft_use_rslora", true, "")
	}
	if len(p.sp.F.ModulesToSave) > 0 {
		m.put("lora_modules_to_save", p.sp.F.ModulesToSave, "")
	}
}

func absOr(path string) string {
	if path == "demo" {
		if d, err := demoAdapterDir(); err == nil {
			return d
		}
	}
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

// f32 widens a float32 setting by its shortest decimal form (0.1, not
// 0.10000000149011612).
func f32(x float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return f
}

// ---- TRL ----

// py is a Python literal.
func py(v any) string {
	switch x := v.(type) {
	case bool:
		if x {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case int, int64, uint64:
		return fmt.Sprint(x)
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = py(s)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []float64:
		parts := make([]string, len(x))
		for i, f := range x {
			parts[i] = py(f)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(x) // a JSON string is a Python string literal
		return strings.TrimSpace(b.String())
	}
	panic(fmt.Sprintf("recipe: no Python literal for %T", v))
}

// pyArgs writes keyword arguments, one a line.
type pyArgs struct {
	b      strings.Builder
	indent string
}

func (a *pyArgs) add(name string, v any, comment string) {
	val, ok := v.(pyExpr)
	s := string(val)
	if !ok {
		s = py(v)
	}
	fmt.Fprintf(&a.b, "%s%s=%s,", a.indent, name, s)
	if comment != "" {
		fmt.Fprintf(&a.b, "  # %s", comment)
	}
	a.b.WriteByte('\n')
}

// pyExpr is Python source written as is.
type pyExpr string

func (p *recipePlan) trl() ([]recipeFile, []string, error) {
	sp, r := p.sp, &p.sp.R
	x := r.Extra
	p.main = "train_trl.py"
	p.launch = []string{fmt.Sprintf("accelerate launch --num_processes %d %s", sp.GPUs, p.main)}
	if sp.GPUs > 1 {
		p.launch = append(p.launch, "or with DeepSpeed ZeRO-2:",
			fmt.Sprintf("accelerate launch --num_processes %d --use_deepspeed --zero_stage 2 %s", sp.GPUs, p.main))
	}
	trainer, config := "SFTTrainer", "SFTConfig"
	var imports []string
	switch {
	case p.cmd == "dpo" && p.kind == "dpo":
		trainer, config = "DPOTrainer", "DPOConfig"
	case p.kind == "simpo":
		trainer, config = "CPOTrainer", "CPOConfig"
		p.note("SimPO is TRL's CPOTrainer with loss_type simpo and cpo_alpha 0")
	case p.kind == "orpo":
		trainer, config = "ORPOTrainer", "ORPOConfig"
		p.note("ORPO's λ (llmlab --orpo-lambda) is TRL's ORPOConfig beta=")
	case p.cmd == "kto":
		trainer, config = "KTOTrainer", "KTOConfig"
	case p.cmd == "rm":
		trainer, config = "RewardTrainer", "RewardConfig"
	case p.cmd == "grpo":
		trainer, config = "GRPOTrainer", "GRPOConfig"
	}
	switch p.kind {
	case "simpo", "orpo":
		mod := map[string]string{"simpo": "cpo", "orpo": "orpo"}[p.kind]
		imports = []string{fmt.Sprintf("try:\n    from trl.experimental.%s import %s, %s\nexcept ImportError:  # TRL before the experimental split\n    from trl import %s, %s", mod, config, trainer, config, trainer)}
	default:
		imports = []string{fmt.Sprintf("from trl import %s, %s", config, trainer)}
	}

	// The arguments.
	a := &pyArgs{indent: "        "}
	a.add("output_dir", pyExpr("OUTPUT_DIR"), runFolderNote(r.Out))
	a.add("per_device_train_batch_size", p.micro, p.batchComment())
	a.add("gradient_accumulation_steps", p.accum, "")
	a.add("max_steps", p.steps, "llmlab counts optimizer steps")
	if p.cmd == "grpo" {
		a.add("learning_rate", x.LR, "")
		a.add("lr_scheduler_type", "constant", "llmlab's GRPO keeps the rate constant")
		a.add("optim", "adamw_torch", "")
		a.add("adam_beta1", 0.9, "")
		a.add("adam_beta2", 0.99, "")
		a.add("adam_epsilon", 1e-8, "")
		a.add("weight_decay", 0.0, "")
		a.add("seed", x.Seed, "")
		a.add("beta", x.Beta, "KL coefficient to the reference")
		a.add("epsilon", x.Clip, "ratio clip")
		a.add("num_generations", x.Group, "samples per prompt (llmlab --group)")
		a.add("max_completion_length", x.MaxTokens, "")
		a.add("temperature", x.Temperature, "")
		a.add("loss_type", "grpo", "each completion's token mean, then the mean over completions, as llmlab's")
		var ws []float64
		for _, t := range p.rewardTerms {
			ws = append(ws, f32(t.Weight))
		}
		a.add("reward_weights", ws, "")
		p.note("llmlab stops a sample at the chat template's end marker; TRL at the tokenizer's end-of-sequence token")
	} else {
		t := r.Train
		a.add("learning_rate", t.LR, "")
		switch t.Schedule.Kind.String() {
		case "cosine":
			a.add("lr_scheduler_type", "cosine_with_min_lr", "")
			a.add("lr_scheduler_kwargs", pyExpr(fmt.Sprintf("{\"min_lr_rate\": %s}", py(t.Schedule.MinRatio))), "")
		case "linear":
			a.add("lr_scheduler_type", "linear", fmt.Sprintf("llmlab's linear decay ends at %g of the peak; this one at 0 (min_lr_rate is for cosine_with_min_lr)", t.Schedule.MinRatio))
		default:
			a.add("lr_scheduler_type", "constant_with_warmup", "constant after warmup: llmlab's min-lr-ratio (min_lr_rate) does not apply")
		}
		a.add("warmup_steps", t.Schedule.Warmup, "")
		a.add("optim", "adamw_torch", "AdamW; like llmlab, the Trainer leaves biases and norms out of weight decay")
		a.add("adam_beta1", f32(t.Optim.Beta1), "")
		a.add("adam_beta2", f32(t.Optim.Beta2), "")
		a.add("adam_epsilon", f32(t.Optim.Eps), "")
		a.add("weight_decay", f32(t.Optim.WeightDecay), "")
		a.add("max_grad_norm", t.Clip, "")
		a.add("seed", t.Seed, "")
		a.add("max_length", r.Ctx, "llmlab --ctx")
		if t.EvalEvery > 0 {
			a.add("eval_strategy", "steps", "")
			a.add("eval_steps", t.EvalEvery, "")
		} else {
			a.add("eval_strategy", "no", "llmlab evaluates at the end only (eval_every 0; eval_steps unset)")
		}
		if t.SaveEvery > 0 {
			a.add("save_strategy", "steps", "")
			a.add("save_steps", t.SaveEvery, "")
		} else {
			a.add("save_strategy", "no", "llmlab checkpoints at the end only (save_every 0; save_steps unset)")
		}
		a.add("save_total_limit", max(t.KeepLast, 1), "")
		switch {
		case p.cmd == "sft":
			a.add("packing", x.Pack, "")
			if sp.Shape == data.ShapeText {
				a.add("dataset_text_field", "text", "")
			} else {
				a.add("completion_only_loss", !x.TrainOnAll, "llmlab --train-on-all is "+py(x.TrainOnAll))
			}
		case p.cmd == "dpo" && p.kind == "dpo":
			a.add("beta", f32(x.DPO.Beta), "")
			a.add("loss_type", []string{x.DPO.Loss.String()}, "")
			a.add("label_smoothing", f32(x.DPO.LabelSmoothing), "")
		case p.kind == "simpo":
			a.add("loss_type", "simpo", "")
			a.add("beta", f32(x.DPO.Beta), "")
			a.add("simpo_gamma", x.Gamma, "")
			a.add("cpo_alpha", 0.0, "")
			a.add("label_smoothing", f32(x.DPO.LabelSmoothing), "")
		case p.kind == "orpo":
			a.add("beta", x.ORPOLambda, "ORPO's λ")
		case p.cmd == "kto":
			a.add("beta", f32(x.KTO.Beta), "")
			a.add("desirable_weight", f32(x.KTO.DesirableWeight), "")
			a.add("undesirable_weight", f32(x.KTO.UndesirableWeight), "")
		}
	}
	a.add("bf16", true, "llmlab computes in float32; bf16 is what the GPUs are for")
	a.add("gradient_checkpointing", true, "")
	a.add("report_to", "none", "")

	// The model, the data and the adapter.
	var body strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&body, format+"\n", args...) }
	tmplCode := p.trlTemplate()
	peftCode, peftImport := p.trlPEFT()
	quantCode := p.trlQuant()
	dataCode := p.trlData()

	w("def main():")
	w("    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)")
	for _, l := range tmplCode {
		w("    %s", l)
	}
	w("    if tokenizer.pad_token is None:")
	w("        tokenizer.pad_token = tokenizer.eos_token")
	modelClass := "AutoModelForCausalLM"
	extra := ""
	if p.cmd == "rm" {
		modelClass, extra = "AutoModelForSequenceClassification", ", num_labels=1"
	}
	if quantCode != "" {
		w("    quant = %s", quantCode)
		w("    model = %s.from_pretrained(BASE_MODEL, dtype=torch.bfloat16, quantization_config=quant%s)", modelClass, extra)
	} else {
		w("    # the base is loaded as stored, unquantized (llmlab --quant none; BitsAndBytesConfig would quantize it)")
		w("    model = %s.from_pretrained(BASE_MODEL, dtype=torch.bfloat16%s)", modelClass, extra)
	}
	if p.cmd == "rm" {
		w("    model.config.pad_token_id = tokenizer.pad_token_id")
	}
	if x.Adapter != "" {
		w("    # continue the adapter llmlab's --adapter named; llmlab's reference is a frozen copy of it,")
		w("    # TRL's is the base with the adapter switched off")
		w("    model = PeftModel.from_pretrained(model, %s, is_trainable=True)", py(absOr(x.Adapter)))
		peftCode = []string{"peft_config = None  # the adapter above is trained"}
	}
	for _, l := range p.trlSplit() {
		w("    %s", l)
	}
	for _, l := range peftCode {
		w("    %s", l)
	}
	w("    args = %s(\n%s    )", config, a.b.String())
	w("    trainer = %s(", trainer)
	w("        model=model,")
	w("        args=args,")
	w("        train_dataset=train,")
	w("        eval_dataset=held_out,")
	w("        processing_class=tokenizer,")
	w("        peft_config=peft_config,")
	if p.cmd == "grpo" {
		w("        reward_funcs=REWARD_FUNCS,  # llmlab's reward rules: %s", x.Reward)
	}
	w("    )")
	w("    trainer.train()")
	w("    if held_out is not None:")
	w("        print(trainer.evaluate())  # the held-out loss at the end, as llmlab reports it")
	w("    trainer.save_model(OUTPUT_DIR)")
	if p.cmd == "rm" {
		w("    export_for_llmlab(trainer.model, tokenizer, os.path.join(OUTPUT_DIR, \"llmlab\"))")
	}
	w("")
	w("")
	w("if __name__ == \"__main__\":")
	w("    main()")

	var s strings.Builder
	for _, l := range p.header("#") {
		s.WriteString(l + "\n")
	}
	s.WriteString("import os\n")
	if p.cmd == "grpo" {
		s.WriteString("import re\n")
	}
	s.WriteString("\nimport torch\nfrom datasets import load_dataset\n")
	s.WriteString(peftImport + "\n")
	if quantCode != "" {
		s.WriteString("from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig\n")
	} else {
		s.WriteString("from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer\n")
	}
	for _, im := range imports {
		s.WriteString(im + "\n")
	}
	s.WriteString("\n")
	fmt.Fprintf(&s, "BASE_MODEL = %s\n", py(sp.ModelDir))
	fmt.Fprintf(&s, "DATA = %s\n", py(sp.DataPath))
	if sp.EvalPath != "" {
		fmt.Fprintf(&s, "EVAL_DATA = %s\n", py(sp.EvalPath))
	}
	fmt.Fprintf(&s, "OUTPUT_DIR = %s\n", py(p.outputDir))
	s.WriteString("\n\n")
	s.WriteString(p.trlHelpers())
	for _, l := range dataCode {
		s.WriteString(l + "\n")
	}
	s.WriteString(body.String())
	return []recipeFile{{p.main, []byte(s.String())}}, p.launch, nil
}

// trlTemplate sets the tokenizer's chat template where it is not the model's own.
func (p *recipePlan) trlTemplate() []string {
	sp := p.sp
	if p.cmd == "sft" && sp.Shape == data.ShapeText {
		return []string{"# plain text: no chat_template is applied"}
	}
	if sp.OwnTmpl {
		return []string{fmt.Sprintf("# the tokenizer's own chat_template (llmlab detected it as %s)", sp.Tmpl)}
	}
	src, err := recipeJinja(sp.Tmpl)
	if err != nil {
		p.note("llmlab's %s template has no Jinja source here and the model declares none; ChatML stands in (set tokenizer.chat_template to the model's template to match)", sp.Tmpl)
		src, _ = chat.ChatML.Jinja()
		return []string{fmt.Sprintf("# ChatML stands in for llmlab's %s template as the tokenizer's chat_template (see the note above)", sp.Tmpl),
			fmt.Sprintf("tokenizer.chat_template = %s", py(src))}
	}
	return []string{fmt.Sprintf("# llmlab trained with its %s template; the tokenizer gets it as its chat_template", sp.Tmpl),
		fmt.Sprintf("tokenizer.chat_template = %s", py(src))}
}

// trlQuant returns the BitsAndBytesConfig for --quant, or "".
func (p *recipePlan) trlQuant() string {
	switch strings.ToLower(p.sp.R.Extra.Quant) {
	case "nf4":
		p.note("--quant nf4: QLoRA through bitsandbytes' 4-bit NF4")
		return "BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=\"nf4\", bnb_4bit_compute_dtype=torch.bfloat16)"
	case "int8", "q8":
		p.note("llmlab's int8 is per-channel absmax; bitsandbytes' 8-bit is LLM.int8 (outliers in 16-bit)")
		return "BitsAndBytesConfig(load_in_8bit=True)"
	}
	return ""
}

// trlPEFT returns the lines that set peft_config, and the import.
func (p *recipePlan) trlPEFT() ([]string, string) {
	x := p.sp.R.Extra
	task := "CAUSAL_LM"
	if p.cmd == "rm" {
		task = "SEQ_CLS"
	}
	lora := func(rank int, alpha float64, targets string, extra string) []string {
		t := pyExpr(py("all-linear"))
		if targets != "" && targets != "all-linear" {
			t = pyExpr(py(splitList(targets)))
		}
		return []string{fmt.Sprintf("peft_config = LoraConfig(task_type=%s, r=%d, lora_alpha=%s, lora_dropout=0.0, target_modules=%s%s)", py(task), rank, py(alpha), t, extra)}
	}
	imp := "from peft import LoraConfig, PeftModel"
	if p.cmd == "grpo" {
		extra := ""
		if x.ModulesToSave != "" {
			extra = ", modules_to_save=" + py(splitList(x.ModulesToSave))
		}
		return lora(x.Rank, float64(2*x.Rank), "all-linear", extra), imp
	}
	switch strings.ToLower(x.PEFT) {
	case "none", "full", "":
		return []string{"peft_config = None  # full fine-tune (llmlab --peft none)"}, imp
	case "lora", "dora":
		extra := ""
		if strings.EqualFold(x.PEFT, "dora") {
			extra += ", use_dora=True"
		}
		if p.sp.F.RSLoRA {
			extra += ", use_rslora=True"
		}
		if len(p.sp.F.ModulesToSave) > 0 {
			extra += ", modules_to_save=" + py(p.sp.F.ModulesToSave)
		}
		return lora(x.Rank, p.alpha, x.Targets, extra), imp
	case "adapter", "bottleneck":
		p.note("bottleneck adapters (%d wide, %s) have no counterpart in PEFT; the nearest is LoRA of rank %d, alpha %d", x.Bottleneck, orDash(x.AdapterAct), x.Bottleneck, 2*x.Bottleneck)
		return lora(x.Bottleneck, float64(2*x.Bottleneck), x.Targets, ""), imp
	case "ia3":
		imp = "from peft import IA3Config, LoraConfig, PeftModel"
		if x.Targets == "" || x.Targets == "all-linear" {
			return []string{fmt.Sprintf("peft_config = IA3Config(task_type=%s)  # PEFT's default target_modules, as llmlab's", py(task))}, imp
		}
		return []string{fmt.Sprintf("peft_config = IA3Config(task_type=%s, target_modules=%s)", py(task), py(splitList(x.Targets)))}, imp
	case "prefix":
		imp = "from peft import LoraConfig, PeftModel, PrefixTuningConfig"
		return []string{fmt.Sprintf("peft_config = PrefixTuningConfig(task_type=%s, num_virtual_tokens=%d, prefix_projection=%s)", py(task), x.VirtualTokens, py(x.PrefixProjection))}, imp
	case "prompt":
		imp = "from peft import LoraConfig, PeftModel, PromptTuningConfig"
		if x.PromptInit != "" {
			return []string{fmt.Sprintf("peft_config = PromptTuningConfig(task_type=%s, num_virtual_tokens=%d, prompt_tuning_init=\"TEXT\", prompt_tuning_init_text=%s, tokenizer_name_or_path=BASE_MODEL)", py(task), x.VirtualTokens, py(x.PromptInit))}, imp
		}
		return []string{fmt.Sprintf("peft_config = PromptTuningConfig(task_type=%s, num_virtual_tokens=%d)", py(task), x.VirtualTokens)}, imp
	}
	return []string{"peft_config = None"}, imp
}

// trlData loads the records in place and shapes them as the trainer reads them.
func (p *recipePlan) trlData() []string {
	sp := p.sp
	l := []string{"def load(path):", "    data = load_dataset(\"json\", data_files=path, split=\"train\")"}
	if p.conversational() {
		l = append(l, "    # llmlab renders plain-string prompts and answers through the chat template; as messages, TRL does too",
			"    data = data.map(to_conversational, remove_columns=[c for c in (\"prompt\", \"completion\", \"chosen\", \"rejected\") if c in data.column_names])")
	}
	switch p.cmd {
	case "sft":
		switch sp.Shape {
		case data.ShapeAlpaca:
			l = append(l, "    data = data.map(alpaca_to_prompt_completion, remove_columns=data.column_names)")
		case data.ShapeChat:
			if sp.R.Extra.TrainOnAll {
				l = append(l, "    # llmlab --train-on-all: the loss covers the whole conversation")
			} else {
				l = append(l, "    data = data.map(chat_to_prompt_completion, remove_columns=data.column_names)")
				p.note("TRL's completion-only loss covers the last assistant turn of each conversation (the earlier turns are prompt); llmlab's covers every assistant turn")
			}
		}
	case "kto":
		l = append(l, "    data = data.map(lambda r: {\"label\": bool(r[\"label\"])})  # llmlab also reads 1/0 labels")
	case "rm":
		if m := sp.R.Extra.Margin; m != 0 {
			l = append(l, fmt.Sprintf("    data = data.map(lambda r: {\"margin\": %s})  # llmlab --margin: RewardTrainer reads a margin column", py(m)))
		} else {
			l = append(l, "    # llmlab --margin 0: no margin column")
		}
	case "grpo":
		l = append(l, "    data = data.map(to_task, remove_columns=data.column_names)")
	}
	l = append(l, "    return data", "", "")
	return l
}

// trlSplit is how main gets its training and held-out sets.
func (p *recipePlan) trlSplit() []string {
	sp := p.sp
	var l []string
	l = append(l, "data = load(DATA)")
	frac := sp.F.EvalFrac
	if frac < 0 {
		frac = 0.05
	}
	switch {
	case sp.R.EvalData != "":
		l = append(l, "train, held_out = data, load(EVAL_DATA)  # llmlab --eval-data")
	case (p.cmd == "sft" || p.cmd == "dpo" || p.cmd == "rm") && frac > 0:
		seed := sp.R.Train.Seed
		l = append(l, fmt.Sprintf("split = data.train_test_split(test_size=%s, seed=%d)  # llmlab --eval-frac%s", py(frac), seed, map[bool]string{true: " (not in run.json: its default)"}[sp.F.EvalFrac < 0]),
			"train, held_out = split[\"train\"], split[\"test\"]")
	default:
		l = append(l, "train, held_out = data, None")
	}
	return l
}

// conversational reports whether the records' plain-string prompts and
// answers must become messages for TRL to apply the chat template.
func (p *recipePlan) conversational() bool {
	sp := p.sp
	if !sp.Strings {
		return false
	}
	switch p.cmd {
	case "dpo", "kto", "rm":
		return true
	case "sft":
		return sp.Shape == data.ShapePromptCompletion
	}
	return false
}

// trlHelpers are the Python functions the script's data and rewards use.
func (p *recipePlan) trlHelpers() string {
	var s strings.Builder
	sp := p.sp
	if p.conversational() {
		s.WriteString(`def to_conversational(r):
    out = {}
    for key, role in (("prompt", "user"), ("completion", "assistant"), ("chosen", "assistant"), ("rejected", "assistant")):
        if isinstance(r.get(key), str):
            out[key] = [{"role": role, "content": r[key]}]
    return out


`)
	}
	if p.cmd == "sft" && sp.Shape == data.ShapeAlpaca {
		s.WriteString(`def alpaca_to_prompt_completion(r):
    # llmlab's reading: the instruction, a blank line and the input are the user turn
    text = r["instruction"]
    if r.get("input"):
        text += "\n\n" + r["input"]
    return {"prompt": [{"role": "user", "content": text}],
            "completion": [{"role": "assistant", "content": r["output"]}]}


`)
	}
	if p.cmd == "sft" && sp.Shape == data.ShapeChat && !sp.R.Extra.TrainOnAll {
		s.WriteString(`def chat_to_prompt_completion(r):
    msgs = r["messages"]
    last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return {"prompt": msgs[:last], "completion": msgs[last:last + 1]}


`)
	}
	if p.cmd == "grpo" {
		s.WriteString(p.rewardModule(false))
		s.WriteString("\n\n")
	}
	if p.cmd == "rm" {
		s.WriteString(`def export_for_llmlab(model, tokenizer, out):
    """Writes the reward model as llmlab reads it: the backbone as an HF
    causal-LM folder and the head as score.safetensors (score.weight)."""
    from safetensors.torch import save_file

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    state = {k: v.float() for k, v in model.state_dict().items()}
    head = {"score.weight": state.pop("score.weight").contiguous()}
    lm = AutoModelForCausalLM.from_pretrained(BASE_MODEL, dtype=torch.float32)
    lm.load_state_dict(state, strict=False)  # the same backbone names; lm_head stays the base's
    lm.save_pretrained(out)
    tokenizer.save_pretrained(out)
    save_file(head, os.path.join(out, "score.safetensors"), metadata={"format": "pt"})


`)
	}
	return s.String()
}

// rewardModule is llmlab's reward rules and task reading in Python, for
// TRL's reward_funcs (and Axolotl's, as the module llmlab_rewards.py).
func (p *recipePlan) rewardModule(module bool) string {
	var s strings.Builder
	if module {
		s.WriteString("# llmlab's GRPO reward rules and record reading, for Axolotl's trl.reward_funcs and\n# datasets type (written by `llmlab recipe`).\nimport re\n\n\n")
	}
	s.WriteString(`def _text(c):
    # a completion is a string, or a list of messages for conversational prompts
    return c if isinstance(c, str) else c[-1]["content"]


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def _last_number(s):
    for m in reversed(_NUMBER.findall(s)):
        try:
            return float(m.replace(",", ""))
        except ValueError:
            pass
    return None


def _conversation(r):
    # llmlab's reading of a record as a conversation
    if r.get("messages"):
        return list(r["messages"])
    if r.get("instruction") is not None:
        text = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        return [{"role": "user", "content": text}, {"role": "assistant", "content": r.get("output", "")}]
    turns = []
    for key, role in (("prompt", "user"), ("completion", "assistant")):
        v = r.get(key)
        if isinstance(v, str):
            turns.append({"role": role, "content": v})
        elif v:
            turns.extend(v)
    return turns


def to_task(r):
    """The prompt is every turn before the last assistant turn; the answer is
    that turn, or the record's "answer" field."""
    msgs = _conversation(r)
    answer = ""
    if msgs and msgs[-1]["role"] == "assistant":
        answer, msgs = msgs[-1]["content"], msgs[:-1]
    if r.get("answer") is not None:
        answer = str(r["answer"])
    return {"prompt": msgs, "answer": answer}


def transform(cfg, *args, **kwargs):
    # Axolotl's dataset transform hook
    def fn(example, tokenizer=None):
        return to_task(example)
    return fn, {"remove_columns": "__all__"}


`)
	for i, t := range p.rewardTerms {
		fmt.Fprintf(&s, "def reward_%d(completions, answer=None, **kwargs):\n", i)
		fmt.Fprintf(&s, "    # llmlab reward %s\n", t.Reward)
		fmt.Fprintf(&s, "    answers = answer if answer is not None else [\"\"] * len(completions)\n")
		fmt.Fprintf(&s, "    out = []\n")
		fmt.Fprintf(&s, "    for c, a in zip(completions, answers):\n")
		fmt.Fprintf(&s, "        c = _text(c)\n")
		switch rw := t.Reward.(type) {
		case rlhf.ExactMatch:
			if rw.FoldCase {
				s.WriteString("        out.append(1.0 if c.strip().casefold() == str(a).strip().casefold() else 0.0)\n")
			} else {
				s.WriteString("        out.append(1.0 if c.strip() == str(a).strip() else 0.0)\n")
			}
		case rlhf.NumberMatch:
			fmt.Fprintf(&s, "        want, got = _last_number(str(a)), _last_number(c)\n")
			fmt.Fprintf(&s, "        out.append(1.0 if want is not None and got is not None and abs(got - want) <= %s else 0.0)\n", py(rw.Tol))
		case *rlhf.Regex:
			fmt.Fprintf(&s, "        out.append(1.0 if re.search(%s, c) else 0.0)  # Go's RE2 syntax; Python's re reads the common subset alike\n", py(rw.Re.String()))
		case rlhf.LengthPenalty:
			fmt.Fprintf(&s, "        out.append(-%s * max(0, len(c) - %d))\n", py(f32(rw.Coef)), rw.Max)
		default:
			fmt.Fprintf(&s, "        raise NotImplementedError(%s)\n", py(t.Reward.String()))
		}
		s.WriteString("    return out\n\n\n")
	}
	var names []string
	for i := range p.rewardTerms {
		names = append(names, fmt.Sprintf("reward_%d", i))
	}
	fmt.Fprintf(&s, "REWARD_FUNCS = [%s]\n", strings.Join(names, ", "))
	return s.String()
}
