package cli

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/app/serve"
	"llmlab/core/chat"
	"llmlab/core/data"
	"llmlab/core/model"
)

// qwenModel writes a tiny Llama-layout model folder with Qwen3's real
// tokenizer, tokenizer_config.json (its chat template, eos_token
// <|im_end|>) and a generation_config.json whose eos_token_id lists
// <|im_end|> and <|endoftext|>, as Qwen's does.
func qwenModel(t *testing.T) string {
	t.Helper()
	src := filepath.Join("..", "..", "core", "tokenizer", "testdata", "models", "qwen3")
	dir := t.TempDir()
	tokDir := filepath.Join(dir, "tok")
	os.MkdirAll(tokDir, 0o755)
	raw, err := os.ReadFile(filepath.Join(src, "tokenizer.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tokDir, "tokenizer.json"), doc, 0o644)
	os.WriteFile(filepath.Join(tokDir, "tokenizer_config.json"), cfg, 0o644)
	conf := filepath.Join(dir, "config.json")
	os.WriteFile(conf, []byte(`{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
  "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256,
  "vocab_size": 151669, "rms_norm_eps": 1e-6, "rope_theta": 10000, "tie_word_embeddings": false, "hidden_act": "silu"}`), 0o644)
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--config", conf, "--tokenizer", tokDir, "--out", base); code != 0 {
		t.Fatal(msg)
	}
	os.WriteFile(filepath.Join(base, "tokenizer_config.json"), cfg, 0o644)
	os.WriteFile(filepath.Join(base, "generation_config.json"), []byte(`{"eos_token_id": [151645, 151643]}`+"\n"), 0o644)
	return base
}

// TestOwnTemplateEverywhere: with a model that ships its own chat template
// (Qwen3's) and no --template, every command renders through that
// template. The prompts chat, generate --chat and serve build are
// transformers' rendering with add_generation_prompt (the goldens of
// core/chat); eval's loss on a chat file is the SFT run's held-out loss on
// the same examples; generation stops at each of the model's end-of-turn
// tokens.
func TestOwnTemplateEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("loads a full-size tokenizer and trains a model (-short)")
	}
	base := qwenModel(t)
	mf := modelFlags{model: base}
	l, err := mf.load(model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := chooseFormat(l, "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Own == nil {
		t.Fatalf("chooseFormat picked %s, want the model's own template", f)
	}
	if f2, err := chooseFormat(l, "llama3"); err != nil || f2.Own != nil || f2.Builtin != chat.Llama3 {
		t.Errorf("--template llama3: %v, %v; want the built-in llama3", f2, err)
	}

	t.Run("prompts", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join("..", "..", "core", "chat", "testdata", "jinja_golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var goldens []struct {
			Model               string         `json:"model"`
			Messages            []chat.Message `json:"messages"`
			AddGenerationPrompt bool           `json:"add_generation_prompt"`
			Text                string         `json:"text"`
			IDs                 []int32        `json:"ids"`
		}
		if err := json.Unmarshal(raw, &goldens); err != nil {
			t.Fatal(err)
		}
		chatFn := serveChat(f, l.Tok)
		n := 0
		for i, g := range goldens {
			if g.Model != "qwen3" || !g.AddGenerationPrompt || g.Messages[len(g.Messages)-1].Role != chat.RoleUser {
				continue
			}
			n++
			// chat: the history, encoded.
			ids, err := data.EncodeChatPrompt(l.Tok, f, g.Messages)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(g.IDs, ids); diff != "" {
				t.Errorf("case %d: chat prompt ids (-transformers +got):\n%s", i, diff)
			}
			// serve: the text, and stop texts with <|im_end|>.
			sm := make([]serve.Message, len(g.Messages))
			for k, m := range g.Messages {
				sm[k] = serve.Message{Role: m.Role, Content: m.Content}
			}
			text, stops, err := chatFn(sm)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(g.Text, text); diff != "" {
				t.Errorf("case %d: serve prompt (-transformers +got):\n%s", i, diff)
			}
			if diff := cmp.Diff([]string{"<|im_end|>", "<|endoftext|>"}, stops); diff != "" {
				t.Errorf("case %d: serve stops (-want +got):\n%s", i, diff)
			}
			// generate --chat: the first turn (system and user) as a
			// prompt is the golden's text up to the first answer, which a
			// generation prompt opens.
			sys, user := "", g.Messages[0].Content
			if g.Messages[0].Role == chat.RoleSystem {
				sys, user = user, g.Messages[1].Content
			}
			gids, stopIDs, _, err := generatePrompt(l, user, true, sys, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			first := ""
			for _, m := range g.Messages {
				if m.Role == chat.RoleAssistant {
					first = m.Content
					break
				}
			}
			want := g.Text[:strings.Index(g.Text, first)]
			if len(gids) > len(g.IDs) || !cmp.Equal(gids, g.IDs[:len(gids)]) || l.Tok.Decode(gids) != want {
				t.Errorf("case %d: generate --chat prompt %q (%v), want %q, the start of %v", i, l.Tok.Decode(gids), gids, want, g.IDs)
			}
			if diff := cmp.Diff([]int32{151645, 151643}, stopIDs); diff != "" {
				t.Errorf("case %d: generate stop ids (-want +got):\n%s", i, diff)
			}
		}
		if n == 0 {
			t.Fatal("no qwen3 golden ends with a user turn")
		}
	})

	t.Run("eval equals sft held-out loss", func(t *testing.T) {
		dir := t.TempDir()
		var tr, ev strings.Builder
		for i := 0; i < 8; i++ {
			fmt.Fprintf(&tr, `{"messages":[{"role":"user","content":"What is %d plus %d?"},{"role":"assistant","content":"%d"}]}`+"\n", i, i, 2*i)
		}
		for i := 0; i < 3; i++ {
			fmt.Fprintf(&ev, `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Name colour %d."},{"role":"assistant","content":"Colour %d is blue."}]}`+"\n", i, i)
		}
		trPath, evPath := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "held.jsonl")
		os.WriteFile(trPath, []byte(tr.String()), 0o644)
		os.WriteFile(evPath, []byte(ev.String()), 0o644)
		runDir := filepath.Join(dir, "run")
		code, out := run(t, "sft", "--model", base, "--data", trPath, "--eval-data", evPath, "--out", runDir, "--steps", "2", "--batch", "2",
			"--ctx", "128", "--peft", "lora", "--rank", "4", "--lr", "0.01", "--json")
		if code != 0 {
			t.Fatal(out)
		}
		sftLoss := math.NaN()
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var ev struct {
				Kind     string  `json:"event"`
				EvalLoss float64 `json:"eval_loss"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind == "eval" {
				sftLoss = ev.EvalLoss
			}
		}
		if math.IsNaN(sftLoss) {
			t.Fatalf("sft reported no held-out loss:\n%s", out)
		}
		rec, _ := os.ReadFile(filepath.Join(runDir, "run.json"))
		if !bytes.Contains(rec, []byte(`"template": "model"`)) && !bytes.Contains(rec, []byte(`"template":"model"`)) {
			t.Errorf("run.json does not record the model's own template:\n%s", rec)
		}
		code, out = run(t, "eval", "--model", base, "--adapter", filepath.Join(runDir, "final"), "--data", evPath, "--json")
		if code != 0 {
			t.Fatal(out)
		}
		var got struct{ Loss float64 }
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if d := math.Abs(got.Loss - sftLoss); d > 1e-4*math.Max(1, sftLoss) {
			t.Errorf("eval loss %.6f, sft held-out loss %.6f (differ by %.2g)", got.Loss, sftLoss, d)
		}
		t.Logf("eval loss %.6f, sft held-out loss %.6f", got.Loss, sftLoss)
	})

	t.Run("preference commands", func(t *testing.T) {
		dir := t.TempDir()
		var prefs, kto, tasks strings.Builder
		for i := 0; i < 4; i++ {
			fmt.Fprintf(&prefs, `{"prompt":"What is %d plus %d?","chosen":"%d","rejected":"I do not know."}`+"\n", i, i, 2*i)
			fmt.Fprintf(&kto, `{"prompt":"What is %d plus %d?","completion":"%d","label":true}`+"\n", i, i, 2*i)
			fmt.Fprintf(&tasks, `{"messages":[{"role":"user","content":"What is %d plus %d?"},{"role":"assistant","content":"%d"}]}`+"\n", i, i, 2*i)
		}
		for name, text := range map[string]string{"prefs.jsonl": prefs.String(), "kto.jsonl": kto.String(), "tasks.jsonl": tasks.String()} {
			os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644)
		}
		for _, args := range [][]string{
			{"dpo", "--data", filepath.Join(dir, "prefs.jsonl"), "--steps", "1", "--batch", "2", "--ctx", "96", "--rank", "2", "--eval-frac", "0"},
			{"kto", "--data", filepath.Join(dir, "kto.jsonl"), "--steps", "1", "--batch", "2", "--ctx", "96", "--rank", "2"},
			{"grpo", "--data", filepath.Join(dir, "tasks.jsonl"), "--reward", "exact", "--steps", "1", "--prompts", "2", "--group", "2", "--max-tokens", "2", "--rank", "2"},
		} {
			out := filepath.Join(dir, args[0])
			code, msg := run(t, append(append([]string{args[0], "--model", base, "--out", out}, args[1:]...), "--json")...)
			if code != 0 {
				t.Fatalf("%s: %s", args[0], msg)
			}
			rec, _ := os.ReadFile(filepath.Join(out, "run.json"))
			if !bytes.Contains(rec, []byte(`"template": "model"`)) && !bytes.Contains(rec, []byte(`"template":"model"`)) {
				t.Errorf("%s: run.json does not record the model's own template:\n%s", args[0], rec)
			}
		}
	})

	t.Run("generation stops at the end of turn", func(t *testing.T) {
		for _, end := range []string{"<|im_end|>", "<|endoftext|>"} {
			id, ok := l.Tok.TokenID(end)
			if !ok {
				t.Fatalf("no token %s", end)
			}
			dir := forceToken(t, base, id)
			for _, args := range [][]string{
				{"generate", "--model", dir, "--chat", "--prompt", "Hi", "--max-tokens", "4", "--temperature", "0", "--json"},
			} {
				code, out := run(t, args...)
				if code != 0 {
					t.Fatal(out)
				}
				lines := strings.Split(strings.TrimSpace(out), "\n")
				var res struct {
					Text   string  `json:"text"`
					IDs    []int32 `json:"ids"`
					Finish string  `json:"finish_reason"`
				}
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				if res.Finish != "stop" || len(res.IDs) != 0 || res.Text != "" {
					t.Errorf("%s: a model that says %s at once: finish %q, ids %v, text %q; want it to stop there", args[0], end, res.Finish, res.IDs, res.Text)
				}
			}
			// chat: the reply ends at once too.
			var cout, cerr bytes.Buffer
			if code := RunIO(t.Context(), []string{"chat", "--model", dir, "--temperature", "0", "--max-tokens", "4"}, strings.NewReader("Hi\n/quit\n"), &cout, &cerr); code != 0 {
				t.Fatal(cerr.String())
			}
			if !strings.Contains(cerr.String(), "(template model)") || !strings.Contains(cerr.String(), "[0 tokens") {
				t.Errorf("chat with a model that says %s at once:\n%s%s", end, cout.String(), cerr.String())
			}
			// A built-in template that knows neither token runs on.
			code, out := run(t, "generate", "--model", dir, "--chat", "--template", "zephyr", "--prompt", "Hi", "--max-tokens", "3", "--temperature", "0", "--json")
			if code != 0 {
				t.Fatal(out)
			}
			if end == "<|endoftext|>" && !strings.Contains(out, `"finish_reason":"length"`) {
				t.Errorf("with --template zephyr the model should run to the token limit:\n%s", out)
			}
		}
	})
}

// forceToken copies the model folder base with weights that make the model
// predict token id after any input: every embedding is the same vector,
// the blocks add nothing to the residual, and only id's output row is not
// zero.
func forceToken(t *testing.T, base string, id int32) string {
	t.Helper()
	m, err := model.Load(base, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	C := m.Cfg.Hidden
	for p := range m.Params() {
		v := p.Value.F32
		switch {
		case p.Name == "model.embed_tokens.weight":
			for i := range v {
				v[i] = 1
			}
		case p.Name == "lm_head.weight":
			clear(v)
			for j := range C {
				v[int(id)*C+j] = 1
			}
		case strings.HasSuffix(p.Name, "o_proj.weight"), strings.HasSuffix(p.Name, "down_proj.weight"):
			clear(v)
		}
	}
	dir := filepath.Join(t.TempDir(), "forced")
	if err := m.Save(dir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(base, n))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	return dir
}

// TestRecipeFromOwnTemplateRun: a run that trained through the model's own
// template (recorded as "model") becomes a recipe that hands the
// tokenizer's own chat_template on.
func TestRecipeFromOwnTemplateRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model (-short)")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	if code, msg := run(t, "init", "--preset", "tiny", "--out", base); code != 0 {
		t.Fatal(msg)
	}
	cfgPath := filepath.Join(base, "tokenizer_config.json")
	var cfg map[string]any
	if err := json.Unmarshal(mustReadFile(t, cfgPath), &cfg); err != nil {
		t.Fatal(err)
	}
	src, err := chat.ChatML.Jinja()
	if err != nil {
		t.Fatal(err)
	}
	cfg["chat_template"] = src
	raw, _ := json.Marshal(cfg)
	os.WriteFile(cfgPath, raw, 0o644)
	var b strings.Builder
	for i := range 8 {
		fmt.Fprintf(&b, `{"messages":[{"role":"user","content":"q%d"},{"role":"assistant","content":"a%d"}]}`+"\n", i, i)
	}
	dataPath := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(dataPath, []byte(b.String()), 0o644)
	runDir := filepath.Join(dir, "run")
	if code, msg := run(t, "sft", "--model", base, "--data", dataPath, "--out", runDir, "--steps", "1", "--batch", "2", "--ctx", "96", "--rank", "2"); code != 0 {
		t.Fatal(msg)
	}
	if rec := mustReadFile(t, filepath.Join(runDir, "run.json")); !bytes.Contains(rec, []byte(`"template": "model"`)) {
		t.Fatalf("run.json does not record the model's own template:\n%s", rec)
	}
	code, msg := run(t, "recipe", runDir, "--to", "trl", "--out", filepath.Join(dir, "trl"))
	if code != 0 {
		t.Fatal(msg)
	}
	script, err := os.ReadFile(filepath.Join(dir, "trl", "train_trl.py"))
	if err != nil {
		entries, _ := os.ReadDir(filepath.Join(dir, "trl"))
		t.Fatalf("%v (wrote %v)", err, entries)
	}
	if !bytes.Contains(script, []byte("the tokenizer's own chat_template")) {
		t.Errorf("the TRL script does not keep the tokenizer's own chat_template:\n%s", script)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
