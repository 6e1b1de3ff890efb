package model

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParseFamilyConfigs reads family config.json variants the goldens do
// not cover and checks what the loader makes of them.
func TestParseFamilyConfigs(t *testing.T) {
	const base = `"vocab_size":100,"hidden_size":32,"num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"max_position_embeddings":64`
	type want struct {
		Rope           RopeKind
		RopeTheta      float64
		RopeLocalTheta float64
		Sliding        []bool
		NoRope         []bool
		Window         int
		HeadDim        int
		Tie            bool
	}
	for _, tc := range []struct {
		name, js string
		want     want
	}{
		{"gemma3 rope_parameters per layer type (transformers 5)",
			`{"model_type":"gemma3_text",` + base + `,"head_dim":8,"sliding_window":16,"layer_types":["sliding_attention","sliding_attention","sliding_attention","full_attention"],
			"rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1000000.0},"sliding_attention":{"rope_type":"default","rope_theta":10000.0}}}`,
			want{Rope: RopeLinear, RopeTheta: 1e6, RopeLocalTheta: 1e4, Sliding: []bool{true, true, true, false}, Window: 16, HeadDim: 8, Tie: true}},
		{"gemma3 defaults: pattern of 6, 256-wide heads",
			`{"model_type":"gemma3_text",` + base + `}`,
			want{Rope: RopeDefault, RopeTheta: 1e6, RopeLocalTheta: 1e4, Sliding: []bool{true, true, true, true}, Window: 4096, HeadDim: 256, Tie: true}},
		{"qwen2 windows from max_window_layers",
			`{"model_type":"qwen2",` + base + `,"use_sliding_window":true,"sliding_window":8,"max_window_layers":2}`,
			want{Rope: RopeDefault, RopeTheta: 10000, Sliding: []bool{false, false, true, true}, Window: 8, HeadDim: 8}},
		{"qwen2 sliding_window unused",
			`{"model_type":"qwen2",` + base + `,"use_sliding_window":false,"sliding_window":32768,"max_window_layers":2}`,
			want{Rope: RopeDefault, RopeTheta: 10000, HeadDim: 8}},
		{"phi3 early longrope name su",
			`{"model_type":"phi3",` + base + `,"original_max_position_embeddings":16,"rope_scaling":{"type":"su","short_factor":[1,1,1,1],"long_factor":[2,2,2,2]}}`,
			want{Rope: RopeLongRoPE, RopeTheta: 10000, HeadDim: 8}},
		{"smollm3 default interval",
			`{"model_type":"smollm3",` + base + `}`,
			want{Rope: RopeDefault, RopeTheta: 10000, NoRope: []bool{false, false, false, true}, HeadDim: 8, Tie: true}},
		{"qwen3 yarn, head_dim default 128",
			`{"model_type":"qwen3",` + base + `,"rope_scaling":{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":16}}`,
			want{Rope: RopeYaRN, RopeTheta: 10000, HeadDim: 128}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.js))
			if err != nil {
				t.Fatal(err)
			}
			got := want{Rope: c.Rope.Kind, RopeTheta: c.RopeTheta, RopeLocalTheta: c.RopeLocalTheta, Sliding: c.Sliding,
				NoRope: c.NoRope, Window: c.SlidingWindow, HeadDim: c.HeadDim, Tie: c.TieEmbeddings}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestFamilyConfigErrors: configs the decoder cannot run are refused with
// a message that names the key.
func TestFamilyConfigErrors(t *testing.T) {
	const base = `"vocab_size":100,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":64,"max_position_embeddings":64`
	for _, tc := range []struct{ name, js, want string }{
		{"unknown rope type", `{"model_type":"llama",` + base + `,"rope_scaling":{"rope_type":"fancy","factor":2}}`, `rope_type "fancy" is not supported`},
		{"llama3 without its factors", `{"model_type":"llama",` + base + `,"rope_scaling":{"rope_type":"llama3","factor":8}}`, "llama3 needs low_freq_factor"},
		{"linear without factor", `{"model_type":"llama",` + base + `,"rope_scaling":{"type":"linear"}}`, "needs a positive factor"},
		{"longrope factors of the wrong length", `{"model_type":"phi3",` + base + `,"rope_scaling":{"type":"longrope","short_factor":[1,1],"long_factor":[1,1]}}`, "want rotary dimension / 2 = 4"},
		{"longrope without long_factor", `{"model_type":"phi3",` + base + `,"rope_scaling":{"type":"longrope","short_factor":[1,1,1,1]}}`, `missing "long_factor"`},
		{"layer_types of the wrong length", `{"model_type":"gemma3_text",` + base + `,"layer_types":["full_attention"]}`, "layer_types has 1 entries for 2 layers"},
		{"unknown layer type", `{"model_type":"gemma3_text",` + base + `,"layer_types":["full_attention","chunked_attention"]}`, `layer_types[1] = "chunked_attention"`},
		{"no_rope_layers of the wrong length", `{"model_type":"smollm3",` + base + `,"no_rope_layers":[1]}`, "no_rope_layers has 1 entries for 2 layers"},
		{"odd rotary dimension", `{"model_type":"phi3",` + base + `,"partial_rotary_factor":0.375}`, "rotary dimension 3"},
		{"gemma with silu", `{"model_type":"gemma3_text",` + base + `,"hidden_activation":"silu"}`, `hidden_act "silu" is not supported for gemma3_text`},
		{"unknown family", `{"model_type":"mamba",` + base + `}`, `unknown model_type "mamba"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.js))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGemma3MultimodalHubConfig: a multimodal Gemma 3 config.json names
// only a few text keys (the rest are Gemma3TextConfig's defaults) and
// keeps torch_dtype outside text_config.
func TestGemma3MultimodalHubConfig(t *testing.T) {
	js := `{"architectures":["Gemma3ForConditionalGeneration"],"boi_token_index":255999,"eoi_token_index":256000,
	"eos_token_id":[1,106],"image_token_index":262144,"initializer_range":0.02,"mm_tokens_per_image":256,"model_type":"gemma3",
	"text_config":{"hidden_size":2560,"intermediate_size":10240,"model_type":"gemma3_text","num_hidden_layers":34,
	"rope_scaling":{"factor":8.0,"rope_type":"linear"},"sliding_window":1024},"torch_dtype":"bfloat16",
	"vision_config":{"hidden_size":1152,"image_size":896,"intermediate_size":4304,"model_type":"siglip_vision_model",
	"num_attention_heads":16,"num_hidden_layers":27,"patch_size":14,"vision_use_head":false}}`
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.ModelType, c.VocabSize, c.Hidden, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.MaxPos, c.SlidingWindow,
		c.Rope.Kind, c.RopeTheta, c.RopeLocalTheta, c.QueryPreAttnScalar, c.TorchDType, c.Multimodal, c.TieEmbeddings,
		c.Sliding[4], c.Sliding[5], c.Window(5), c.Window(0)}
	want := []any{"gemma3_text", 262208, 2560, 34, 8, 4, 256, 131072, 1024,
		RopeLinear, 1e6, 1e4, 256.0, "bfloat16", true, true,
		true, false, 0, 1024}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ParseConfig([]byte(`{"model_type":"gemma3_text","use_bidirectional_attention":true}`)); err == nil {
		t.Error("a bidirectional (embedding) Gemma 3 was accepted")
	}
}
