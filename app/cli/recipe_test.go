package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"llmlab/core/chat"
	"llmlab/rlhf"
)

// jsonPaths lists the dotted JSON paths of t's leaf fields, following
// nested structs (a type with its own text form is a leaf).
func jsonPaths(prefix string, t reflect.Type, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	textual := reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
	if t.Kind() != reflect.Struct || t.Implements(textual) {
		*out = append(*out, prefix)
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			jsonPaths(prefix, f.Type, out)
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		jsonPaths(p, f.Type, out)
	}
}

// TestRecipeFieldsCoverRunJSON: every field of run.json (the run record,
// the training config within it, and every extra setting a training
// command records) has a counterpart in Axolotl and in TRL, or a reason
// why not; a field added to those structs without an entry fails here.
func TestRecipeFieldsCoverRunJSON(t *testing.T) {
	var paths []string
	rec := reflect.TypeFor[runRecord]()
	for i := range rec.NumField() {
		f := rec.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "extra" {
			jsonPaths("extra", reflect.TypeFor[recordExtra](), &paths)
			continue
		}
		jsonPaths(name, f.Type, &paths)
	}
	table := map[string]recipeField{}
	for _, f := range recipeFields() {
		if _, dup := table[f.Path]; dup {
			t.Errorf("%s is listed twice", f.Path)
		}
		table[f.Path] = f
	}
	seen := map[string]bool{}
	for _, p := range paths {
		seen[p] = true
		f, ok := table[p]
		if !ok {
			t.Errorf("run.json field %s has no entry in recipeFields: give its Axolotl and TRL counterparts or say why there is none", p)
			continue
		}
		if f.Axolotl == "" && f.Why == "" {
			t.Errorf("%s: no Axolotl counterpart and no reason", p)
		}
		if f.TRL == "" && f.Why == "" {
			t.Errorf("%s: no TRL counterpart and no reason", p)
		}
	}
	for p := range table {
		if !seen[p] {
			t.Errorf("recipeFields lists %s, which run.json does not have", p)
		}
	}
	if len(paths) < 50 {
		t.Errorf("only %d run.json fields found by reflection: %v", len(paths), paths)
	}
}

// TestRecipeTemplateFormat: the pattern recipe writes for Axolotl's
// user-defined types renders one turn exactly as llmlab's template does,
// for every built-in template.
func TestRecipeTemplateFormat(t *testing.T) {
	msgs := []chat.Message{{Role: chat.RoleUser, Content: "What is 2+2?"}, {Role: chat.RoleAssistant, Content: "4"}}
	for _, tm := range chat.Templates() {
		t.Run(tm.String(), func(t *testing.T) {
			before, between, after, err := templateFormat(tm)
			if err != nil {
				t.Fatal(err)
			}
			want, err := tm.Text(msgs, false)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, before+"What is 2+2?"+between+"4"+after); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	before, between, after, _ := templateFormat(chat.ChatML)
	got := []string{before, between, after}
	want := []string{"<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chatml (-want +got)\n%s", diff)
	}
	if got := pyFormat("{a} }"); got != "{{a}} }}" {
		t.Errorf("pyFormat: %q", got)
	}
}

// recipeCase is one training run the recipe tests start from.
type recipeCase struct {
	name string
	data string   // JSONL lines
	args []string // the training command and its flags (no --model, --data, --out)
	// evalData, when set, is written to a file given as --eval-data
	evalData string
	// refused: the target that is expected to refuse, and a word of its message
	refuse map[recipeTarget]string
}

func recipeCases() []recipeCase {
	var prefs, chatRecs, alpaca, kto, tasks strings.Builder
	for i := range 12 {
		fmt.Fprintf(&prefs, "{\"prompt\":\"q%d\",\"chosen\":\"yes\",\"rejected\":\"no way\"}\n", i)
		fmt.Fprintf(&chatRecs, "{\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"},{\"role\":\"assistant\",\"content\":\"a%d\"}]}\n", i, i)
		fmt.Fprintf(&alpaca, "{\"instruction\":\"say %d\",\"input\":\"{x}\",\"output\":\"%d\"}\n", i, i)
		fmt.Fprintf(&kto, "{\"prompt\":\"q%d\",\"completion\":\"yes\",\"label\":true}\n{\"prompt\":\"q%d\",\"completion\":\"no\",\"label\":0}\n", i, i)
		fmt.Fprintf(&tasks, "{\"messages\":[{\"role\":\"user\",\"content\":\"%d+1?\"},{\"role\":\"assistant\",\"content\":\"%d\"}],\"answer\":\"%d\"}\n", i, i+1, i+1)
	}
	common := []string{"--template", "chatml", "--steps", "1", "--batch", "2", "--ctx", "64", "--rank", "4"}
	return []recipeCase{
		{name: "sft-chat-lora", data: chatRecs.String(), args: append([]string{"sft", "--accum", "4", "--schedule", "linear"}, common...)},
		{name: "sft-alpaca-dora-nf4", data: alpaca.String(), args: append([]string{"sft", "--peft", "dora", "--quant", "nf4", "--targets", "q_proj,v_proj", "--pack"}, common...)},
		{name: "sft-chat-full", data: chatRecs.String(), args: append([]string{"sft", "--peft", "none", "--train-on-all", "--save-every", "5", "--eval-every", "5"}, common...)},
		{name: "sft-eval-data", data: chatRecs.String(), evalData: chatRecs.String(), args: append([]string{"sft", "--eval-every", "5"}, common...)},
		{name: "sft-bottleneck", data: chatRecs.String(), args: append([]string{"sft", "--peft", "adapter", "--bottleneck", "8"}, common...)},
		{name: "sft-prompt", data: chatRecs.String(), args: append([]string{"sft", "--peft", "prompt", "--virtual-tokens", "4", "--prompt-init", "Answer:"}, common...),
			refuse: map[recipeTarget]string{toAxolotl: "LoRA and QLoRA"}},
		{name: "dpo", data: prefs.String(), args: append([]string{"dpo", "--loss", "ipo", "--label-smoothing", "0", "--schedule", "constant"}, common...)},
		{name: "orpo", data: prefs.String(), args: append([]string{"dpo", "--loss", "orpo", "--orpo-lambda", "0.2"}, common...),
			refuse: map[recipeTarget]string{toAxolotl: "ORPO"}},
		{name: "simpo", data: prefs.String(), args: append([]string{"dpo", "--loss", "simpo", "--gamma", "0.7", "--beta", "2"}, common...)},
		{name: "kto", data: kto.String(), args: append([]string{"kto", "--desirable-weight", "1.5"}, common...)},
		{name: "rm", data: prefs.String(), args: append([]string{"rm", "--margin", "0.5"}, common...),
			refuse: map[recipeTarget]string{toAxolotl: "Bradley"}},
		{name: "grpo", data: tasks.String(), args: []string{"grpo", "--template", "chatml", "--steps", "1", "--prompts", "2", "--group", "2", "--max-tokens", "2",
			"--reward", "number", "--reward", "0.5*format", "--reward", "length:3:0.1", "--modules-to-save", "embed_tokens"}},
	}
}

// TestRecipeFromRuns trains each kind of run for a step, then writes its
// recipes from the run folder and from the same flags: the run.json has no
// field recipe does not know, the flags give the same record, every YAML
// parses, every script compiles, and every run.json field that applies
// shows up under its counterpart's name.
func TestRecipeFromRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a step of each kind of run")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		python = ""
	}
	fields := recipeFields()
	for _, tc := range recipeCases() {
		t.Run(tc.name, func(t *testing.T) {
			dataPath := filepath.Join(dir, tc.name+".jsonl")
			if err := os.WriteFile(dataPath, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			runDir := filepath.Join(dir, "run-"+tc.name)
			flags := append([]string{"--model", base, "--data", dataPath}, tc.args[1:]...)
			if tc.evalData != "" {
				evalPath := filepath.Join(dir, tc.name+"-eval.jsonl")
				if err := os.WriteFile(evalPath, []byte(tc.evalData), 0o644); err != nil {
					t.Fatal(err)
				}
				flags = append(flags, "--eval-data", evalPath)
			}
			if code, msg := run(t, append(append([]string{tc.args[0]}, flags...), "--out", runDir)...); code != 0 {
				t.Fatalf("training: %s", msg)
			}
			js, err := os.ReadFile(filepath.Join(runDir, "run.json"))
			if err != nil {
				t.Fatal(err)
			}
			// Every extra a command records is a field recipe knows.
			var strict recipeRecord
			dec := json.NewDecoder(strings.NewReader(string(js)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&strict); err != nil {
				t.Fatalf("run.json has a field recipe does not know (add it to recordExtra and recipeFields): %v", err)
			}
			// The flags give the run.json the command wrote.
			ce := &Env{Ctx: t.Context(), Args: append(flags, "--out", runDir), Stdout: &strings.Builder{}, Stderr: &strings.Builder{}, flagsOnly: true}
			if err := commands()[tc.args[0]].run(ce); err != errFlagsOnly {
				t.Fatalf("flags only: %v", err)
			}
			fromFlags, _, err := recordFromFlags(tc.args[0], ce.flags)
			if err != nil {
				t.Fatal(err)
			}
			fromFlags.Out = map[bool]string{true: runDir}[tc.args[0] == "grpo"]
			if diff := cmp.Diff(comparable(t, js), comparable(t, mustJSON(t, fromFlags))); diff != "" {
				t.Errorf("the record from flags differs from run.json (-run.json +flags)\n%s", diff)
			}
			var raw map[string]any
			json.Unmarshal(js, &raw)
			var present []string
			leafPaths("", raw, &present)
			for _, target := range []recipeTarget{toAxolotl, toTRL} {
				out := filepath.Join(dir, "recipe-"+tc.name+"-"+target.String())
				code, msg := run(t, "recipe", runDir, "--to", target.String(), "--out", out, "--gpus", "2", "--steps", "1")
				if word, ok := tc.refuse[target]; ok {
					if code != 2 || !strings.Contains(msg, word) {
						t.Errorf("%s: want a refusal naming %q, got exit %d: %s", target, word, code, msg)
					}
					continue
				}
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", target, code, msg)
				}
				text := checkRecipeFiles(t, out, target, python)
				// From the flags, the same recipe but the line naming its source.
				outFlags := out + "-flags"
				if code, msg := run(t, append(append([]string{"recipe", "--to", target.String(), "--out", outFlags, "--gpus", "2", tc.args[0]}, flags...), "--out", runDir)...); code != 0 {
					t.Fatalf("%s from flags: exit %d: %s", target, code, msg)
				}
				textFlags := checkRecipeFiles(t, outFlags, target, python)
				if diff := cmp.Diff(dropSource(text), dropSource(strings.ReplaceAll(textFlags, outFlags, out))); diff != "" {
					t.Errorf("%s: the recipes from run.json and from flags differ (-run +flags)\n%s", target, diff)
				}
				var r recipeRecord
				json.Unmarshal(js, &r)
				for _, f := range fields {
					name := f.Axolotl
					if target == toTRL {
						name = f.TRL
					}
					if name == "" || !contains(present, f.Path) || (f.Applies != nil && !f.Applies(&r)) {
						continue
					}
					if !strings.Contains(text, name) {
						t.Errorf("%s: run.json field %s (%s) is not in the recipe", target, f.Path, name)
					}
				}
			}
		})
	}
}

// dropSource drops the header line that names what a recipe was made from.
func dropSource(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		// eval-frac: the flags know it; a run.json does not (and says so)
		if !strings.Contains(l, "by `llmlab recipe` from:") && !strings.Contains(l, "eval-frac") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// comparable is a run.json without its bookkeeping.
func comparable(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "hash")
	delete(m, "created")
	return m
}

// checkRecipeFiles parses the YAML files and compiles the Python files in
// dir, and returns all of their text.
func checkRecipeFiles(t *testing.T, dir string, target recipeTarget, python string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", path, st.Mode().Perm())
		}
		all.Write(b)
		switch filepath.Ext(path) {
		case ".yaml":
			var cfg map[string]any
			if err := yaml.Unmarshal(b, &cfg); err != nil {
				t.Fatalf("%s does not parse: %v", path, err)
			}
			for _, k := range []string{"base_model", "datasets", "sequence_len", "micro_batch_size", "gradient_accumulation_steps", "max_steps", "learning_rate", "output_dir"} {
				if _, ok := cfg[k]; !ok {
					t.Errorf("%s has no %s", path, k)
				}
			}
		case ".py":
			if python == "" {
				continue // no Python here: compiled where it is
			}
			if out, err := exec.Command(python, "-m", "py_compile", path).CombinedOutput(); err != nil {
				t.Fatalf("%s does not compile: %v\n%s", path, err, out)
			}
		}
	}
	sort.Strings(names)
	want := map[recipeTarget]string{toAxolotl: "axolotl.yaml", toTRL: "train_trl.py"}[target]
	if !contains(names, want) {
		t.Errorf("%s holds %v, want %s", dir, names, want)
	}
	return all.String()
}

// TestRecipeRewardsMatchLlmlab: the Python reward functions a GRPO recipe
// carries score completions as llmlab's rules do.
func TestRecipeRewardsMatchLlmlab(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3 to run the reward functions")
	}
	specs := []string{"exact", "exact-fold", "number", "number:0.5", "format", "regex:^[a-z]+$", "length:5", "length:3:0.25"}
	sum, err := rlhf.ParseRewards(specs...)
	if err != nil {
		t.Fatal(err)
	}
	p := &recipePlan{rewardTerms: sum}
	completions := []string{" Paris ", "paris", "the answer is 1,234.5", "-3", "<think>hm</think> <answer>7</answer>", "abc", "Abc!", "", "x 2.6 y"}
	answers := []string{"Paris", "Paris", "1234.5", "-3.2", "7", "abc", "abc", "", "3"}
	dir := t.TempDir()
	mod := p.rewardModule(true)
	if err := os.WriteFile(filepath.Join(dir, "llmlab_rewards.py"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	cj, _ := json.Marshal(completions)
	aj, _ := json.Marshal(answers)
	script := fmt.Sprintf("import json, llmlab_rewards as r\nc = json.loads(%q)\na = json.loads(%q)\n"+
		"print(json.dumps([f([[{\"role\": \"assistant\", \"content\": x}] for x in c][i:i+1] if i %% 2 else c[i:i+1], answer=a[i:i+1])[0] for f in r.REWARD_FUNCS for i in range(len(c))]))\n", cj, aj)
	cmd := exec.Command(python, "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []float64
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var want []float64
	for _, term := range sum {
		for i := range completions {
			want = append(want, float64(term.Reward.Score(completions[i], answers[i])))
		}
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { d := a - b; return d < 1e-6 && d > -1e-6 })); diff != "" {
		t.Errorf("Python rewards differ from llmlab's (-llmlab +python)\n%s", diff)
	}
}

// TestRecipeRefusesWithReason: what a target cannot express is refused with
// a message that says why and what to do.
func TestRecipeRefusesWithReason(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	chatPath := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(chatPath, []byte("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n"), 0o644)
	pre := filepath.Join(dir, "pre.json")
	os.WriteFile(pre, []byte(`{"command":"pretrain","model":"","init":"tiny","data":["x.txt"],"batch":2,"ctx":32,"train":{},"hash":"","created":""}`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no target", []string{"recipe", "sft", "--model", base, "--data", chatPath}, "--to is required"},
		{"bad target", []string{"recipe", "--to", "deepspeed", pre}, "want axolotl or trl"},
		{"pretrain", []string{"recipe", pre, "--to", "trl"}, "pretrain run"},
		{"ia3 for axolotl", []string{"recipe", "sft", "--model", base, "--data", chatPath, "--template", "chatml", "--peft", "ia3", "--to", "axolotl"}, "use --to trl"},
		{"bad flag of the command", []string{"recipe", "sft", "--model", base, "--data", chatPath, "--ranks", "4", "--to", "trl"}, "-ranks"},
		{"missing run", []string{"recipe", filepath.Join(dir, "nope"), "--to", "trl"}, "nope"},
		{"grpo for axolotl to stdout", []string{"recipe", "grpo", "--model", base, "--data", chatPath, "--template", "chatml", "--to", "axolotl"}, "give --out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := run(t, tc.args...)
			if code != 2 || !strings.Contains(msg, tc.want) {
				t.Errorf("exit %d, want 2 and a message naming %q: %s", code, tc.want, msg)
			}
		})
	}
}

// TestRecipeJinjaMatchesTemplates: the Jinja chat templates a TRL script
// gets render, in Python's jinja2 as transformers sets it up, exactly what
// llmlab's templates write.
func TestRecipeJinjaMatchesTemplates(t *testing.T) {
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(python, "-c", "import jinja2").Run(); err != nil {
		t.Skip("Python's jinja2 is not installed")
	}
	convs := [][]chat.Message{
		{{Role: chat.RoleUser, Content: "What is 2+2?"}, {Role: chat.RoleAssistant, Content: " 4 "}},
		{{Role: chat.RoleSystem, Content: " Be brief. "}, {Role: chat.RoleUser, Content: "hi\nthere"}, {Role: chat.RoleAssistant, Content: "hello"},
			{Role: chat.RoleUser, Content: "{x} 'quoted' \"too\""}, {Role: chat.RoleAssistant, Content: "ok</s>"}},
		{{Role: chat.RoleUser, Content: "only a question"}},
	}
	type job struct {
		Template string         `json:"template"`
		Messages []chat.Message `json:"messages"`
		Gen      bool           `json:"gen"`
	}
	var jobs []job
	var want []string
	for _, tm := range chat.Templates() {
		src, err := recipeJinja(tm)
		if err != nil {
			t.Fatalf("%s: %v", tm, err)
		}
		for _, c := range convs {
			for _, gen := range []bool{false, true} {
				text, err := tm.Text(c, gen)
				if err != nil {
					t.Fatalf("%s: %v", tm, err)
				}
				jobs = append(jobs, job{src, c, gen})
				want = append(want, tm.String()+": "+text)
			}
		}
	}
	in, _ := json.Marshal(jobs)
	script := `import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
out = []
for j in json.load(sys.stdin):
    msgs = [{"role": m["Role"] if "Role" in m else m["role"], "content": m["Content"] if "Content" in m else m["content"]} for m in j["messages"]]
    out.append(env.from_string(j["template"]).render(messages=msgs, add_generation_prompt=j["gen"]))
json.dump(out, sys.stdout)
`
	cmd := exec.Command(python, "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i := range got {
		name, _, _ := strings.Cut(want[i], ": ")
		got[i] = name + ": " + got[i]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-llmlab +jinja2)\n%s", diff)
	}
}

// TestRecipePrints: without --out the recipe goes to standard output.
func TestRecipePrints(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	dataPath := filepath.Join(dir, "prefs.jsonl")
	os.WriteFile(dataPath, []byte("{\"prompt\":\"q\",\"chosen\":\"yes\",\"rejected\":\"no\"}\n"), 0o644)
	var out, errb strings.Builder
	code := Run(t.Context(), []string{"recipe", "dpo", "--model", base, "--data", dataPath, "--template", "zephyr", "--to", "axolotl"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var cfg struct {
		BaseModel string `yaml:"base_model"`
		RL        string `yaml:"rl"`
		Template  string `yaml:"chat_template"`
		Datasets  []struct {
			Path string `yaml:"path"`
			Type struct {
				PromptFormat string `yaml:"prompt_format"`
				ChosenFormat string `yaml:"chosen_format"`
			} `yaml:"type"`
		} `yaml:"datasets"`
	}
	if err := yaml.Unmarshal([]byte(out.String()), &cfg); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := []string{cfg.BaseModel, cfg.RL, cfg.Template, cfg.Datasets[0].Path, cfg.Datasets[0].Type.PromptFormat, cfg.Datasets[0].Type.ChosenFormat}
	want := []string{base, "dpo", "jinja", dataPath, "<|user|>\n{prompt}</s>\n<|assistant|>\n", "{chosen}</s>\n"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
