package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"llmlab/core/atomicfile"
	"llmlab/core/checkpoint"
)

// Load reads a tokenizer from a model folder: tokenizer.json, else
// tokenizer.model or spiece.model (SentencePiece), else GPT-2's vocab.json +
// merges.txt.
// tokenizer_config.json, when present, sets the BOS, EOS and PAD tokens and
// the chat template.
func Load(dir string) (*Tokenizer, error) {
	if checkpoint.IsGGUF(dir) {
		return LoadGGUF(dir) // a .gguf file: the tokenizer is in its metadata (gguf.go)
	}
	var t *Tokenizer
	var err error
	switch {
	case exists(filepath.Join(dir, "tokenizer.json")):
		var data []byte
		if data, err = os.ReadFile(filepath.Join(dir, "tokenizer.json")); err == nil {
			t, err = FromJSON(data)
			if err != nil {
				err = fmt.Errorf("%s: %w", dir, err)
			}
		}
	case exists(filepath.Join(dir, "tokenizer.model")):
		t, err = LoadSentencePiece(filepath.Join(dir, "tokenizer.model"))
	case exists(filepath.Join(dir, "spiece.model")): // T5, ALBERT
		t, err = LoadSentencePiece(filepath.Join(dir, "spiece.model"))
	case exists(filepath.Join(dir, "vocab.json")) && exists(filepath.Join(dir, "merges.txt")):
		t, err = LoadGPT2(filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt"))
	default:
		return nil, fmt.Errorf("%s: no tokenizer.json, tokenizer.model, spiece.model or vocab.json+merges.txt", dir)
	}
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if exists(cfg) {
		data, err := os.ReadFile(cfg)
		if err != nil {
			return nil, err
		}
		if err := t.applyConfig(data); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg, err)
		}
	}
	return t, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// configJSON is the part of tokenizer_config.json llmlab reads.
type configJSON struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	PAD          json.RawMessage `json:"pad_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// applyConfig reads tokenizer_config.json: special tokens are a string or
// an AddedToken object; the chat template is a string or a list of named
// templates (the "default" one is used, else the first).
func (t *Tokenizer) applyConfig(data []byte) error {
	var c configJSON
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	for _, x := range []struct {
		name string
		raw  json.RawMessage
		dst  *int32
	}{{"bos_token", c.BOS, &t.bos}, {"eos_token", c.EOS, &t.eos}, {"pad_token", c.PAD, &t.pad}} {
		if isNull(x.raw) {
			continue
		}
		var s string
		if json.Unmarshal(x.raw, &s) != nil {
			var obj struct{ Content string }
			if err := json.Unmarshal(x.raw, &obj); err != nil {
				return fmt.Errorf("%s: neither a string nor a token object", x.name)
			}
			s = obj.Content
		}
		id, ok := t.TokenID(s)
		if !ok {
			return fmt.Errorf("%s %q is not in the vocabulary", x.name, s)
		}
		*x.dst = id
	}
	if !isNull(c.ChatTemplate) {
		var s string
		if json.Unmarshal(c.ChatTemplate, &s) != nil {
			var list []struct{ Name, Template string }
			if err := json.Unmarshal(c.ChatTemplate, &list); err != nil || len(list) == 0 {
				return errors.New("chat_template: neither a string nor a list of {name, template}")
			}
			s = list[0].Template
			for _, x := range list {
				if x.Name == "default" {
					s = x.Template
				}
			}
		}
		t.chatTemplate = s
	}
	t.config = data
	return nil
}

// SetChatTemplate sets the chat template that Save writes.
func (t *Tokenizer) SetChatTemplate(s string) { t.chatTemplate = s; t.config = nil }

// Save writes tokenizer.json and tokenizer_config.json into dir (created if
// needed), each atomically.
func (t *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "tokenizer.json"), t.doc, atomicfile.Mode); err != nil {
		return err
	}
	cfg := t.config
	if cfg == nil {
		c := map[string]any{"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false}
		for k, id := range map[string]int32{"bos_token": t.bos, "eos_token": t.eos, "pad_token": t.pad} {
			if id >= 0 {
				c[k] = t.Piece(id)
			}
		}
		if t.chatTemplate != "" {
			c["chat_template"] = t.chatTemplate
		}
		var err error
		if cfg, err = marshalJSON(c); err != nil {
			return err
		}
	}
	return atomicfile.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, atomicfile.Mode)
}

// LoadGPT2 reads OpenAI's GPT-2 files: vocab.json (encoder.json) maps
// byte-level tokens to ids; merges.txt (vocab.bpe) lists merges by rank
// after a "#version" line. They become the tokenizer.json HF builds for
// GPT-2: ByteLevel pre-tokenizer and decoder, "<|endoftext|>" special.
func LoadGPT2(vocabPath, mergesPath string) (*Tokenizer, error) {
	vdata, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	mdata, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, err
	}
	return fromGPT2(vocabPath, mergesPath, vdata, mdata)
}

// byteLevelDoc writes the tokenizer.json of a GPT-2 style byte-level BPE.
// Special tokens already in vocab keep their ids; others are appended.
func byteLevelDoc(vocab map[string]int32, merges []string, specials []string) ([]byte, error) {
	type added struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	next := int32(len(vocab))
	for _, id := range vocab {
		next = max(next, id+1)
	}
	var adds []added
	for _, s := range specials {
		id, ok := vocab[s]
		if !ok {
			id = next
			next++
			vocab[s] = id
		}
		adds = append(adds, added{ID: id, Content: s, Special: true})
	}
	if merges == nil {
		merges = []string{}
	}
	doc := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   adds,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": orderedVocab(vocab), "merges": merges,
		},
	}
	return marshalJSON(doc)
}

// orderedVocab marshals a vocabulary in id order, as HF writes it.
type orderedVocab map[string]int32

func (v orderedVocab) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sortByID(keys, v)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		ks, err := marshalJSON(k)
		if err != nil {
			return nil, err
		}
		b.Write(bytes.TrimSpace(ks))
		fmt.Fprintf(&b, ":%d", v[k])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var _ fs.FileMode
