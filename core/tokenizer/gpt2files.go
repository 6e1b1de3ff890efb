package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// FromGPT2Files builds a tokenizer from GPT-2's original files: vocab.json
// (encoder.json: byte-level token -> id) and merges.txt (vocab.bpe: a
// "#version" line, then one "a b" merge per line, by rank). The
// "<|endoftext|>" token, when present, is special and both BOS and EOS.
func FromGPT2Files(vocabJSON, merges []byte) (*Tokenizer, error) {
	var vocab map[string]int32
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	var ms [][2]string
	for i, line := range strings.Split(string(merges), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || (i == 0 && strings.HasPrefix(line, "#")) {
			continue
		}
		a, b, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("merges.txt:%d: %q is not two tokens", i+1, line)
		}
		ms = append(ms, [2]string{a, b})
	}
	var added []any
	if id, ok := vocab["<|endoftext|>"]; ok {
		added = append(added, map[string]any{"id": id, "content": "<|endoftext|>", "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	bl := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	doc := map[string]any{"version": "1.0", "added_tokens": added, "normalizer": nil, "pre_tokenizer": bl,
		"post_processor": bl, "decoder": bl, "model": map[string]any{"type": "BPE", "vocab": vocab, "merges": ms}}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	tk, err := FromJSON(js)
	if err != nil {
		return nil, err
	}
	if id, ok := vocab["<|endoftext|>"]; ok {
		tk.bos, tk.eos = id, id
	}
	return tk, nil
}
