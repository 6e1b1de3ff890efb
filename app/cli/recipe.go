package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"llmlab/core/chat"
	"llmlab/core/checkpoint"
	"llmlab/core/data"
	"llmlab/core/model"
	"llmlab/core/tokenizer"
	"llmlab/rlhf"
)

// `llmlab recipe` hands a run to a GPU cluster: it turns a run's run.json,
// or a training command's flags, into an Axolotl config or a TRL script
// with the same settings. Both paths meet in run.json's shape: the flags
// are parsed by the training command itself (Env.flagsOnly), turned into
// the record that command would write, and read back like a run folder's.
// recipeFields lists every run.json field with its counterpart in each
// target, or why it has none; a test holds it complete.

// recipeTarget is what a recipe is written for.
type recipeTarget int

const (
	toAxolotl recipeTarget = iota
	toTRL
)

func (t recipeTarget) String() string {
	if t == toTRL {
		return "trl"
	}
	return "axolotl"
}

func parseRecipeTarget(s string) (recipeTarget, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "axolotl":
		return toAxolotl, nil
	case "trl":
		return toTRL, nil
	}
	return 0, Usagef("--to %q: want axolotl or trl", s)
}

// recordExtra is run.json's "extra" object: the union of the settings the
// training commands record there (sft, dpo, kto, rm, grpo).
type recordExtra struct {
	PEFT             string          `json:"peft"`
	Rank             int             `json:"rank"`
	Alpha            *float64        `json:"alpha"` // kto and rm do not record it
	Targets          string          `json:"targets"`
	Template         string          `json:"template"`
	TrainOnAll       bool            `json:"train_on_all"`
	Pack             bool            `json:"pack"`
	Quant            string          `json:"quant"`
	VirtualTokens    int             `json:"virtual_tokens"`
	Bottleneck       int             `json:"bottleneck"`
	AdapterAct       string          `json:"adapter_act"`
	PrefixProjection bool            `json:"prefix_projection"`
	PromptInit       string          `json:"prompt_init"`
	DPO              *rlhf.DPOConfig `json:"dpo"`
	Kind             string          `json:"kind"` // dpo, simpo or orpo
	Gamma            float64         `json:"gamma"`
	ORPOLambda       float64         `json:"orpo_lambda"`
	Adapter          string          `json:"adapter"`
	KTO              *rlhf.KTOConfig `json:"kto"`
	Margin           float64         `json:"margin"`
	Reward           string          `json:"reward"` // grpo from here on
	Beta             float64         `json:"beta"`
	Clip             float64         `json:"clip"`
	LR               float64         `json:"lr"`
	Prompts          int             `json:"prompts"`
	Group            int             `json:"group"`
	MaxTokens        int             `json:"max_tokens"`
	Temperature      float64         `json:"temperature"`
	ModulesToSave    string          `json:"modules_to_save"`
	Seed             uint64          `json:"seed"`
}

// recipeRecord is run.json decoded with a typed extra.
type recipeRecord struct {
	runRecord
	Extra recordExtra `json:"extra"`
}

// flagExtras are settings a command's flags carry but its run.json does
// not; known only when the recipe is made from flags.
type flagExtras struct {
	RSLoRA        bool
	ModulesToSave []string
	EvalFrac      float64 // -1: not known
	Steps         int     // grpo: run.json leaves the step count out
}

// recipeSpec is everything a recipe is written from.
type recipeSpec struct {
	From      string // what the user gave: the run folder, or the command line
	R         recipeRecord
	F         flagExtras
	ModelDir  string // the base model's folder, absolute
	DataPath  string // absolute
	EvalPath  string // absolute; "" when the run splits its data
	Shape     data.Shape
	Strings   bool // prompt and answer fields are strings, not message lists
	HasAnswer bool // grpo records carry an "answer" field
	Tmpl      chat.Template
	OwnTmpl   bool     // the model's tokenizer declares Tmpl itself
	Unknown   []string // run.json fields this version does not know
	GPUs      int
	Out       string // the recipe folder ("" prints to standard output)
}

// recipeField is one run.json field and its counterparts.
type recipeField struct {
	Path    string // JSON path in run.json, "train.schedule.warmup"
	Axolotl string // the Axolotl config key that carries it ("" none)
	TRL     string // the TRL (or PEFT) argument that carries it ("" none)
	Why     string // why a target has none
	// Applies says whether the field matters for this run (nil: always);
	// the test checks counterparts only where they apply.
	Applies func(r *recipeRecord) bool
}

func peftIs(methods ...string) func(r *recipeRecord) bool {
	return func(r *recipeRecord) bool {
		for _, m := range methods {
			if strings.EqualFold(r.Extra.PEFT, m) {
				return true
			}
		}
		return false
	}
}

// recipeFields maps every run.json field to Axolotl and TRL.
func recipeFields() []recipeField {
	launcher := "the launcher places the run: accelerate launch --num_processes N picks the GPUs"
	book := "bookkeeping of the llmlab run (resume checks), not a training setting"
	noPrefix := "Axolotl trains LoRA and QLoRA adapters only; recipe refuses prefix and prompt tuning for it"
	fs := []recipeField{
		{Path: "command", Axolotl: "rl", TRL: "Trainer"},
		{Path: "model", Axolotl: "base_model", TRL: "from_pretrained"},
		{Path: "init", Why: "recipe translates fine-tuning and alignment runs; a pretraining run from a preset is refused"},
		{Path: "data", Axolotl: "datasets", TRL: "load_dataset"},
		{Path: "eval_data", Axolotl: "test_datasets", TRL: "EVAL_DATA", Applies: func(r *recipeRecord) bool { return r.EvalData != "" }},
		{Path: "batch", Axolotl: "micro_batch_size", TRL: "per_device_train_batch_size"},
		{Path: "ctx", Axolotl: "sequence_len", TRL: "max_length"},
		{Path: "device", Why: launcher},
		{Path: "threads", Why: "CPU threads of llmlab's own backend; " + launcher},
		{Path: "out", Axolotl: "output_dir", TRL: "output_dir"},
		{Path: "train.steps", Axolotl: "max_steps", TRL: "max_steps"},
		{Path: "train.accum", Axolotl: "gradient_accumulation_steps", TRL: "gradient_accumulation_steps"},
		{Path: "train.lr", Axolotl: "learning_rate", TRL: "learning_rate"},
		{Path: "train.schedule.kind", Axolotl: "lr_scheduler", TRL: "lr_scheduler_type"},
		{Path: "train.schedule.warmup", Axolotl: "warmup_steps", TRL: "warmup_steps"},
		{Path: "train.schedule.total", Axolotl: "max_steps", TRL: "max_steps"},
		{Path: "train.schedule.min_ratio", Axolotl: "cosine_min_lr_ratio", TRL: "min_lr_rate"},
		{Path: "train.clip", Axolotl: "max_grad_norm", TRL: "max_grad_norm"},
		{Path: "train.optim.lr", Axolotl: "learning_rate", TRL: "learning_rate"},
		{Path: "train.optim.beta1", Axolotl: "adam_beta1", TRL: "adam_beta1"},
		{Path: "train.optim.beta2", Axolotl: "adam_beta2", TRL: "adam_beta2"},
		{Path: "train.optim.eps", Axolotl: "adam_epsilon", TRL: "adam_epsilon"},
		{Path: "train.optim.weight_decay", Axolotl: "weight_decay", TRL: "weight_decay"},
		{Path: "train.seed", Axolotl: "seed", TRL: "seed"},
		{Path: "train.eval_every", Axolotl: "eval_steps", TRL: "eval_steps"},
		{Path: "train.save_every", Axolotl: "save_steps", TRL: "save_steps"},
		{Path: "train.keep_last", Axolotl: "save_total_limit", TRL: "save_total_limit"},
		{Path: "hash", Why: book},
		{Path: "created", Why: book},

		{Path: "extra.peft", Axolotl: "adapter", TRL: "peft_config"},
		{Path: "extra.rank", Axolotl: "lora_r", TRL: "r=", Applies: func(r *recipeRecord) bool {
			return r.Command == "grpo" || peftIs("lora", "dora")(r)
		}},
		{Path: "extra.alpha", Axolotl: "lora_alpha", TRL: "lora_alpha", Applies: peftIs("lora", "dora")},
		{Path: "extra.targets", Axolotl: "lora_target", TRL: "target_modules", Applies: peftIs("lora", "dora", "ia3", "adapter", "bottleneck")},
		{Path: "extra.template", Axolotl: "chat_template", TRL: "chat_template", Applies: func(r *recipeRecord) bool { return true }},
		{Path: "extra.train_on_all", Axolotl: "train_on_inputs", TRL: "completion_only_loss"},
		{Path: "extra.pack", Axolotl: "sample_packing", TRL: "packing"},
		{Path: "extra.quant", Axolotl: "load_in_", TRL: "BitsAndBytesConfig"},
		{Path: "extra.virtual_tokens", Why: noPrefix, TRL: "num_virtual_tokens", Applies: peftIs("prefix", "prompt")},
		{Path: "extra.bottleneck", Axolotl: "lora_r", TRL: "r=", Applies: peftIs("adapter", "bottleneck")},
		{Path: "extra.adapter_act", Why: "LoRA, the nearest equivalent of a bottleneck adapter in PEFT, is linear: the non-linearity has no counterpart", Applies: peftIs("adapter", "bottleneck")},
		{Path: "extra.prefix_projection", Why: noPrefix, TRL: "prefix_projection", Applies: peftIs("prefix")},
		{Path: "extra.prompt_init", Why: noPrefix, TRL: "prompt_tuning_init_text", Applies: func(r *recipeRecord) bool {
			return peftIs("prompt")(r) && r.Extra.PromptInit != ""
		}},
		{Path: "extra.dpo.loss", Axolotl: "dpo_loss_type", TRL: "loss_type", Applies: func(r *recipeRecord) bool { return r.Extra.Kind == "dpo" }},
		{Path: "extra.dpo.beta", Axolotl: "rl_beta", TRL: "beta="},
		{Path: "extra.dpo.label_smoothing", Axolotl: "dpo_label_smoothing", TRL: "label_smoothing", Applies: func(r *recipeRecord) bool { return r.Extra.Kind != "orpo" }},
		{Path: "extra.kind", Axolotl: "rl", TRL: "Trainer"},
		{Path: "extra.gamma", Axolotl: "simpo_gamma", TRL: "simpo_gamma", Applies: func(r *recipeRecord) bool { return r.Extra.Kind == "simpo" }},
		{Path: "extra.orpo_lambda", Axolotl: "orpo_alpha", TRL: "beta=", Applies: func(r *recipeRecord) bool { return r.Extra.Kind == "orpo" }},
		{Path: "extra.adapter", Axolotl: "lora_model_dir", TRL: "PeftModel.from_pretrained", Applies: func(r *recipeRecord) bool { return r.Extra.Adapter != "" }},
		{Path: "extra.kto.beta", Axolotl: "rl_beta", TRL: "beta="},
		{Path: "extra.kto.desirable_weight", Axolotl: "kto_desirable_weight", TRL: "desirable_weight"},
		{Path: "extra.kto.undesirable_weight", Axolotl: "kto_undesirable_weight", TRL: "undesirable_weight"},
		{Path: "extra.margin", Why: "Axolotl's Bradley–Terry reader wants an \"input\" field; recipe refuses rm for Axolotl", TRL: "margin"},
		{Path: "extra.reward", Axolotl: "reward_funcs", TRL: "reward_funcs"},
		{Path: "extra.beta", Axolotl: "beta", TRL: "beta="},
		{Path: "extra.clip", Axolotl: "epsilon", TRL: "epsilon"},
		{Path: "extra.lr", Axolotl: "learning_rate", TRL: "learning_rate"},
		{Path: "extra.prompts", Axolotl: "micro_batch_size", TRL: "per_device_train_batch_size"},
		{Path: "extra.group", Axolotl: "num_generations", TRL: "num_generations"},
		{Path: "extra.max_tokens", Axolotl: "max_completion_length", TRL: "max_completion_length"},
		{Path: "extra.temperature", Axolotl: "temperature", TRL: "temperature"},
		{Path: "extra.modules_to_save", Axolotl: "lora_modules_to_save", TRL: "modules_to_save", Applies: func(r *recipeRecord) bool { return r.Extra.ModulesToSave != "" }},
		{Path: "extra.seed", Axolotl: "seed", TRL: "seed"},
	}
	// grpo records no training config and no context: its loop has its
	// own settings, in extra.
	for i, f := range fs {
		if f.Path == "ctx" || strings.HasPrefix(f.Path, "train.") {
			fs[i].Applies = func(r *recipeRecord) bool { return r.Command != "grpo" }
		}
	}
	return fs
}

// leafPaths lists the dotted paths of v's leaves (arrays are leaves).
func leafPaths(prefix string, v any, out *[]string) {
	m, ok := v.(map[string]any)
	if !ok {
		*out = append(*out, prefix)
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		leafPaths(p, x, out)
	}
}

// recipeCommands are the training commands a recipe can come from; orpo
// and simpo are dpo with that --loss.
var recipeCommands = []string{"sft", "dpo", "kto", "rm", "grpo", "orpo", "simpo"}

func isRecipeCommand(s string) bool {
	for _, c := range recipeCommands {
		if s == c {
			return true
		}
	}
	return false
}

// runRecipe is `llmlab recipe RUN|CMD FLAGS... --to axolotl|trl [--out DIR] [--gpus N]`.
func runRecipe(e *Env) error {
	fs := newFlags(e, "recipe")
	to := fs.String("to", "", "axolotl (a YAML config) or trl (a Python script) (required)")
	out := fs.String("out", "", "folder for the recipe (default: print it)")
	gpus := fs.Int("gpus", 1, "GPUs the launch command line is written for")
	steps := fs.Int("steps", 0, "grpo from a run.json (which holds no step count): the steps to run (default: grpo's 30)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: llmlab recipe RUN_FOLDER|run.json --to axolotl|trl [--out DIR] [--gpus N]")
		fmt.Fprintln(w, "       llmlab recipe sft|dpo|kto|rm|grpo|orpo|simpo FLAGS... --to axolotl|trl [--out DIR] [--gpus N]")
		fmt.Fprintln(w, "(with a command, the recipe's own flags come first or from --to on; the rest are the command's)")
		fs.PrintDefaults()
	}
	// Recipe flags may come first...
	if err := fs.Parse(e.Args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &UsageError{err}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return Usagef("give a run folder, a run.json or a training command with its flags (see llmlab recipe -h)")
	}
	// ...or after the run, or from --to on after a command's flags.
	head, tail := rest[0], rest[1:]
	var cmdArgs []string
	if isRecipeCommand(head) {
		cut := len(tail)
		for i, a := range tail {
			if a == "--to" || a == "-to" || strings.HasPrefix(a, "--to=") || strings.HasPrefix(a, "-to=") {
				cut = i
				break
			}
		}
		cmdArgs, tail = tail[:cut], tail[cut:]
	}
	if err := parse(fs, tail); err != nil {
		return err
	}
	if *to == "" {
		return Usagef("--to is required: axolotl or trl")
	}
	target, err := parseRecipeTarget(*to)
	if err != nil {
		return err
	}
	if *gpus < 1 {
		return Usagef("--gpus %d: want at least 1", *gpus)
	}
	var sp *recipeSpec
	if isRecipeCommand(head) {
		sp, err = recipeFromFlags(e, head, cmdArgs)
	} else {
		sp, err = recipeFromRun(head)
	}
	if err != nil {
		return err
	}
	if *steps > 0 {
		sp.F.Steps = *steps
	}
	sp.GPUs = *gpus
	if *out != "" {
		if sp.Out, err = filepath.Abs(*out); err != nil {
			return err
		}
	}
	files, launch, err := writeRecipe(sp, target)
	if err != nil {
		return err
	}
	if sp.Out == "" {
		for _, f := range files {
			if len(files) > 1 {
				fmt.Fprintf(e.Stdout, "# ---- %s ----\n", f.Name)
			}
			e.Stdout.Write(f.Body)
		}
		return nil
	}
	if err := os.MkdirAll(sp.Out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(sp.Out, f.Name)
		if err := checkpoint.WriteFileAtomic(path, f.Body, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "wrote %s\n", path)
	}
	fmt.Fprintf(e.Stdout, "launch (in %s):\n", sp.Out)
	for _, l := range launch {
		fmt.Fprintf(e.Stdout, "  %s\n", l)
	}
	return nil
}

// recipeFile is one file of a recipe.
type recipeFile struct {
	Name string
	Body []byte
}

// recipeFromRun reads a run folder's run.json (or the file itself).
func recipeFromRun(arg string) (*recipeSpec, error) {
	path := arg
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		path = filepath.Join(arg, "run.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, BadInput(fmt.Errorf("%s: %w (want a run folder, a run.json, or one of %s with its flags)", arg, err, strings.Join(recipeCommands, ", ")))
	}
	sp, err := specFromJSON(b, path)
	if err != nil {
		return nil, err
	}
	sp.From = arg
	sp.F.EvalFrac = -1
	return sp, nil
}

// recipeFromFlags lets the training command parse and check its own flags
// (it stops before opening a device or loading weights), then builds the
// run.json that command would write.
func recipeFromFlags(e *Env, cmd string, args []string) (*recipeSpec, error) {
	name := cmd
	switch cmd {
	case "orpo", "simpo":
		name, args = "dpo", append([]string{"--loss", cmd}, args...)
	}
	from := "llmlab " + cmd + " " + strings.Join(args, " ")
	if cmd != name {
		from = "llmlab " + cmd + " " + strings.Join(args[2:], " ")
	}
	hasOut := false
	for _, a := range args {
		if a == "--out" || a == "-out" || strings.HasPrefix(a, "--out=") || strings.HasPrefix(a, "-out=") {
			hasOut = true
		}
	}
	if !hasOut { // the command insists on a run folder; nothing is written there
		args = append(args, "--out", "runs/"+cmd)
	}
	ce := &Env{Ctx: e.Ctx, Args: args, Stdin: e.Stdin, Stdout: io.Discard, Stderr: e.Stderr, flagsOnly: true}
	err := commands()[name].run(ce)
	if err == nil {
		return nil, fmt.Errorf("llmlab %s ran to the end with recipe's flag check", name)
	}
	if !errors.Is(err, errFlagsOnly) {
		return nil, err
	}
	rec, fx, err := recordFromFlags(name, ce.flags)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	sp, err := specFromJSON(b, "")
	if err != nil {
		return nil, err
	}
	sp.From = from
	sp.F = fx
	return sp, nil
}

// flagValue returns a parsed flag's value.
func flagValue[T any](fs *flag.FlagSet, name string) T {
	var zero T
	f := fs.Lookup(name)
	if f == nil {
		return zero
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if v, ok := g.Get().(T); ok {
			return v
		}
	}
	return zero
}

// recordFromFlags builds the run.json a training command writes for the
// flags in fs. It mirrors what sft, dpo, kto, rm and grpo put there (a
// test compares the two on real runs).
func recordFromFlags(cmd string, fs *flag.FlagSet) (runRecord, flagExtras, error) {
	str := func(n string) string { return flagValue[string](fs, n) }
	num := func(n string) float64 { return flagValue[float64](fs, n) }
	integer := func(n string) int { return flagValue[int](fs, n) }
	boolean := func(n string) bool { return flagValue[bool](fs, n) }
	fx := flagExtras{RSLoRA: boolean("rslora"), ModulesToSave: splitList(str("modules-to-save")), EvalFrac: -1}
	if fs.Lookup("eval-frac") != nil {
		fx.EvalFrac = num("eval-frac")
	}
	modelArg, dataPath := str("model"), str("data")
	dir, err := resolveModelDir(modelArg)
	if err != nil {
		return runRecord{}, fx, err
	}
	tmpl, err := recipeTemplate(dir, str("template"))
	if err != nil {
		return runRecord{}, fx, err
	}
	if cmd == "grpo" {
		var rewards []string
		if f := fs.Lookup("reward"); f != nil {
			rewards = *f.Value.(*stringList)
		}
		if len(rewards) == 0 {
			rewards = []string{"exact"}
		}
		reward, err := rlhf.ParseRewards(rewards...)
		if err != nil {
			return runRecord{}, fx, BadInput(err)
		}
		prompts, group := integer("prompts"), integer("group")
		fx.Steps = integer("steps")
		rec := runRecord{Command: "grpo", Model: modelArg, Data: []string{dataPath}, Batch: prompts * group, Device: str("device"), Threads: integer("threads"), Out: str("out"),
			Extra: map[string]any{"adapter": str("adapter"), "template": tmpl.String(), "reward": reward.String(), "beta": num("beta"), "clip": num("clip"), "lr": num("lr"),
				"prompts": prompts, "group": group, "max_tokens": integer("max-tokens"), "temperature": num("temperature"), "rank": integer("rank"), "modules_to_save": str("modules-to-save"), "seed": flagValue[uint64](fs, "seed")}}
		return rec, fx, nil
	}
	tf := trainFlags{steps: integer("steps"), batch: integer("batch"), ctx: integer("ctx"), accum: integer("accum"), warmup: integer("warmup"),
		saveEvery: integer("save-every"), evalEvery: integer("eval-every"), keep: integer("keep"), lr: num("lr"), minLR: num("min-lr-ratio"),
		clip: num("clip"), wd: num("weight-decay"), seed: flagValue[uint64](fs, "seed"), out: str("out"), schedule: str("schedule")}
	cfg, err := tf.config()
	if err != nil {
		return runRecord{}, fx, err
	}
	mc, err := model.LoadConfig(dir)
	if err != nil {
		return runRecord{}, fx, BadInput(fmt.Errorf("--model %s: %w", modelArg, err))
	}
	ctx := min(tf.ctx, mc.MaxPos)
	pf := peftFlags{method: str("peft"), rank: integer("rank"), alpha: num("alpha"), targets: str("targets"), quant: str("quant"),
		virtual: integer("virtual-tokens"), bottleneck: integer("bottleneck"), act: str("adapter-act"), projection: boolean("prefix-projection"), promptInit: str("prompt-init")}
	rec := runRecord{Command: cmd, Model: modelArg, Data: []string{dataPath}, Batch: tf.batch, Ctx: ctx, Train: cfg}
	switch cmd {
	case "sft":
		rec.EvalData = str("eval-data")
		if v := pf.virtualTokens(); v > 0 {
			ctx = min(ctx, mc.MaxPos-v)
			rec.Ctx = ctx
		}
		rec.Extra = map[string]any{"peft": pf.method, "rank": pf.rank, "alpha": pf.alpha, "targets": pf.targets, "template": tmpl.String(), "train_on_all": boolean("train-on-all"), "pack": boolean("pack"),
			"quant": pf.quant, "virtual_tokens": pf.virtualTokens(), "bottleneck": pf.bottleneck, "adapter_act": pf.act, "prefix_projection": pf.projection, "prompt_init": pf.promptInit}
	case "dpo":
		kind, lossName := "dpo", str("loss")
		if lossName == "simpo" || lossName == "orpo" {
			kind, lossName = lossName, "sigmoid"
		}
		lossKind, err := rlhf.ParseDPOLoss(lossName)
		if err != nil {
			return runRecord{}, fx, BadInput(err)
		}
		dcfg := rlhf.DPOConfig{Loss: lossKind, Beta: float32(num("beta")), LabelSmoothing: float32(num("label-smoothing"))}
		rec.Extra = map[string]any{"dpo": dcfg, "kind": kind, "gamma": num("gamma"), "orpo_lambda": num("orpo-lambda"), "peft": pf.method, "rank": pf.rank, "alpha": pf.alpha, "targets": pf.targets, "template": tmpl.String()}
		if a := str("adapter"); a != "" {
			rec.Extra["adapter"] = a
		}
	case "kto":
		kcfg := rlhf.KTOConfig{Beta: float32(num("beta")), DesirableWeight: float32(num("desirable-weight")), UndesirableWeight: float32(num("undesirable-weight"))}
		rec.Extra = map[string]any{"kto": kcfg, "peft": pf.method, "rank": pf.rank, "targets": pf.targets, "template": tmpl.String()}
		if a := str("adapter"); a != "" {
			rec.Extra["adapter"] = a
		}
	case "rm":
		rec.Extra = map[string]any{"margin": num("margin"), "peft": pf.method, "rank": pf.rank, "targets": pf.targets, "template": tmpl.String()}
	default:
		return runRecord{}, fx, Usagef("recipe does not know the command %q", cmd)
	}
	return rec, fx, nil
}

// recipeTemplate is the built-in template a recipe writes for the target
// trainer (--template, else the one the model's chat_template is
// recognised as), read without loading the model's weights.
func recipeTemplate(dir, name string) (chat.Template, error) {
	if name != "" {
		t, err := chat.Parse(name)
		if err != nil {
			return 0, BadInput(err)
		}
		return t, nil
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return 0, BadInput(fmt.Errorf("%s: %w", dir, err))
	}
	t, err := chat.Detect(tok.ChatTemplate())
	if err != nil {
		return 0, BadInput(fmt.Errorf("%s: %w", dir, err))
	}
	return t, nil
}

// specFromJSON reads a run.json document (file names it for errors) and
// checks the model and the data it names.
func specFromJSON(b []byte, file string) (*recipeSpec, error) {
	name := file
	if name == "" {
		name = "the run record"
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, BadInput(fmt.Errorf("%s: %w", name, err))
	}
	sp := &recipeSpec{}
	if err := json.Unmarshal(b, &sp.R); err != nil {
		return nil, BadInput(fmt.Errorf("%s: %w", name, err))
	}
	known := map[string]bool{}
	for _, f := range recipeFields() {
		known[f.Path] = true
	}
	var paths []string
	leafPaths("", raw, &paths)
	sort.Strings(paths)
	for _, p := range paths {
		if !known[p] {
			sp.Unknown = append(sp.Unknown, p)
		}
	}
	r := &sp.R
	switch r.Command {
	case "sft", "dpo", "kto", "rm", "grpo":
	case "pretrain":
		return nil, BadInput(fmt.Errorf("%s: a pretrain run; recipe translates fine-tuning and alignment runs (sft, dpo, kto, orpo, simpo, rm, grpo)", name))
	case "":
		return nil, BadInput(fmt.Errorf("%s: no \"command\": not a run.json of llmlab", name))
	default:
		return nil, BadInput(fmt.Errorf("%s: a %s run; recipe translates sft, dpo, kto, orpo, simpo, rm and grpo runs", name, r.Command))
	}
	if r.Command == "dpo" && r.Extra.Kind == "" {
		r.Extra.Kind = "dpo"
	}
	if r.Command == "dpo" && r.Extra.DPO == nil || r.Command == "kto" && r.Extra.KTO == nil {
		return nil, BadInput(fmt.Errorf("%s: a %s run without its extra.%s settings", name, r.Command, r.Command))
	}
	if len(r.Data) != 1 {
		return nil, BadInput(fmt.Errorf("%s: %d data files; a %s run reads one", name, len(r.Data), r.Command))
	}
	dir, err := resolveModelDir(r.Model)
	if err != nil {
		return nil, err
	}
	if sp.ModelDir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if sp.DataPath, err = filepath.Abs(r.Data[0]); err != nil {
		return nil, err
	}
	if r.EvalData != "" {
		if _, err := data.LoadJSONL(r.EvalData); err != nil {
			return nil, BadInput(err)
		}
		if sp.EvalPath, err = filepath.Abs(r.EvalData); err != nil {
			return nil, err
		}
	}
	ds, err := data.LoadJSONL(r.Data[0])
	if err != nil {
		return nil, BadInput(err)
	}
	sp.Shape = ds.Shape
	sp.Strings, sp.HasAnswer, err = peekFields(r.Data[0])
	if err != nil {
		return nil, BadInput(err)
	}
	if r.Extra.Template == (chat.Format{Own: &chat.Model{}}).String() {
		// The run rendered through the model's own template: a recipe hands
		// it on as the tokenizer's chat_template, and writes patterns with
		// the built-in template it is recognised as.
		tok, err := tokenizer.Load(sp.ModelDir)
		if err != nil {
			return nil, BadInput(fmt.Errorf("%s: %w", name, err))
		}
		if sp.Tmpl, err = chat.Detect(tok.ChatTemplate()); err != nil {
			return nil, BadInput(fmt.Errorf("%s: the run trained through the model's own chat template, which is none of llmlab's built-in ones, so a recipe cannot write it out: %w", name, err))
		}
		sp.OwnTmpl = true
		return sp, nil
	}
	if sp.Tmpl, err = chat.Parse(r.Extra.Template); err != nil {
		return nil, BadInput(fmt.Errorf("%s: extra.template: %w", name, err))
	}
	if tok, err := tokenizer.Load(sp.ModelDir); err == nil {
		if t, err := chat.Detect(tok.ChatTemplate()); err == nil && t == sp.Tmpl {
			sp.OwnTmpl = true
		}
	}
	return sp, nil
}

// peekFields reads the first record of a JSONL file: whether its prompt
// and answer fields are plain strings (not message lists), and whether it
// has an "answer" field.
func peekFields(path string) (strs, answer bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return false, false, fmt.Errorf("%s: %w", path, err)
		}
		strs = true
		for _, k := range []string{"prompt", "completion", "chosen", "rejected"} {
			if v, ok := m[k]; ok && len(v) > 0 && v[0] != '"' {
				strs = false
			}
		}
		_, answer = m["answer"]
		return strs, answer, nil
	}
	return false, false, sc.Err()
}

// templateFormat renders t around one user turn: the text before the
// prompt, the text between prompt and answer and the text after the
// answer, so that a target that formats records with a pattern (Axolotl's
// user-defined types) writes what llmlab's template writes.
func templateFormat(t chat.Template) (before, between, after string, err error) {
	const p, a = "\x00P\x00", "\x00A\x00"
	pre, err := t.Text([]chat.Message{{Role: chat.RoleUser, Content: p}}, true)
	if err != nil {
		return "", "", "", err
	}
	full, err := t.Text([]chat.Message{{Role: chat.RoleUser, Content: p}, {Role: chat.RoleAssistant, Content: a}}, false)
	if err != nil {
		return "", "", "", err
	}
	i := strings.Index(pre, p)
	j := strings.Index(full, a)
	if i < 0 || j < 0 || !strings.HasPrefix(full, pre) || j < len(pre) {
		return "", "", "", fmt.Errorf("the %s template does not render a prompt and an answer in order", t)
	}
	return pre[:i], pre[i+len(p):] + full[len(pre):j], full[j+len(a):], nil
}

// pyFormat escapes s for Python's str.format.
func pyFormat(s string) string {
	return strings.NewReplacer("{", "{{", "}", "}}").Replace(s)
}
