package data

import "llmlab/core/chat"

// EncodeJoined encodes rendered segments as one text, with the added
// (special) tokens in it parsed and none added by the post-processor, so
// the ids are exactly those of the rendered string, as a model sees it at
// inference; train[i] says whether ids[i] lies in a trained segment.
//
// The tokenizer gives no offsets, so the segment boundaries are found in
// two ways. First, each segment is encoded on its own: when those ids,
// joined, are the ids of the whole (as with chat templates, whose segments
// meet at special tokens or at pre-tokenizer cuts), each segment's tokens
// are its own. Otherwise each boundary b is placed by encoding the text
// before b: the tokens it shares with the whole encoding lie before b, and
// a token that straddles b (BPE merged across it) goes to the segment
// after it. The first way costs two encodings of the text; the second one
// encoding per boundary.
func EncodeJoined(enc Encoder, segs []chat.Segment) (ids []int32, train []bool) {
	var text []byte
	for _, s := range segs {
		text = append(text, s.Text...)
	}
	ids = enc.Encode(string(text), false)
	train = make([]bool, len(ids))

	n, ok := 0, true
	for _, s := range segs {
		part := enc.Encode(s.Text, false)
		if n+len(part) > len(ids) || commonPrefix(part, ids[n:]) != len(part) {
			ok = false
			break
		}
		for i := n; i < n+len(part); i++ {
			train[i] = s.Train
		}
		n += len(part)
	}
	if ok && n == len(ids) {
		return ids, train
	}

	off, tokStart := 0, 0
	for k, s := range segs {
		off += len(s.Text)
		tokEnd := len(ids)
		if k < len(segs)-1 {
			tokEnd = commonPrefix(enc.Encode(string(text[:off]), false), ids)
		}
		tokEnd = max(tokEnd, tokStart)
		for i := tokStart; i < tokEnd; i++ {
			train[i] = s.Train
		}
		tokStart = tokEnd
	}
	return ids, train
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// buildModelChat renders msgs through a model's own chat template and
// encodes the text as one (EncodeJoined): labels on the assistant spans
// Render finds, the model's own end-of-turn markers included; no EOS is
// appended (the template ends each turn itself). trainLast as in
// encodeSegments.
func buildModelChat(enc Encoder, m *chat.Model, msgs []chat.Message, o BuildOpts, trainLast int) (Example, error) {
	segs, err := m.Render(msgs, false)
	if err != nil {
		return Example{}, err
	}
	if trainLast >= 0 {
		trained := 0
		for _, s := range segs {
			if s.Train {
				trained++
			}
		}
		seen := 0
		for i := range segs {
			if segs[i].Train {
				seen++
				segs[i].Train = seen > trained-trainLast
			}
		}
	}
	ids, train := EncodeJoined(enc, segs)
	e := Example{IDs: ids, Labels: make([]int32, len(ids))}
	for i, id := range ids {
		e.Labels[i] = IgnoreIndex
		if train[i] || o.TrainAll {
			e.Labels[i] = id
		}
	}
	return e, nil
}

// EncodeModelPrompt renders msgs with the generation prompt through a
// model's own chat template and encodes the text (special tokens parsed,
// none added): the input for generation.
func EncodeModelPrompt(enc Encoder, m *chat.Model, msgs []chat.Message) ([]int32, error) {
	text, err := m.Text(msgs, true)
	if err != nil {
		return nil, err
	}
	return enc.Encode(text, false), nil
}

// EncodeChatPrompt renders msgs with the generation prompt through f and
// encodes them as training encodes the same conversation: through the
// model's own template (EncodeModelPrompt) or a built-in one
// (EncodePrompt). It is the input for generation in every command.
func EncodeChatPrompt(enc Encoder, f chat.Format, msgs []chat.Message) ([]int32, error) {
	if f.Own != nil {
		return EncodeModelPrompt(enc, f.Own, msgs)
	}
	return EncodePrompt(enc, f.Builtin, msgs)
}

// With returns o rendering through f: its own template (Chat) or the
// built-in one (Template).
func (o BuildOpts) With(f chat.Format) BuildOpts {
	o.Template, o.Chat = f.Builtin, f.Own
	return o
}
