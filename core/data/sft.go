package data

import (
	"fmt"

	"llmlab/core/chat"
)

// BuildOpts controls how records become Examples.
type BuildOpts struct {
	Template chat.Template
	// Chat, when set, is the model's own chat template: conversations are
	// rendered through it instead of Template, encoded as one text, and
	// trained on the assistant spans of that text (buildModelChat).
	Chat     *chat.Model
	Ctx      int  // most tokens per example (longer ones are truncated); 0: no limit
	TrainAll bool // loss on every token, prompts included
	NoEOS    bool // do not append EOS to assistant turns
}

// Dropped names an example that was left out and why.
type Dropped struct {
	Line int // line in the dataset file
	Why  string
}

// Report counts what building did.
type Report struct {
	File      string
	Records   int       // records read
	Examples  int       // examples kept (pairs count once)
	Truncated int       // examples cut to Ctx
	Tokens    int       // tokens in kept examples
	Trained   int       // of which carry loss
	NoLoss    []Dropped // examples dropped because no token carried loss
}

func (r Report) String() string {
	return fmt.Sprintf("%s: %d records, %d examples, %d truncated, %d dropped with no loss tokens, %d tokens (%d trained)",
		r.File, r.Records, r.Examples, r.Truncated, len(r.NoLoss), r.Tokens, r.Trained)
}

// encodeSegments encodes each segment separately and concatenates, so the
// label mask falls on token boundaries. trainLast >= 0 keeps loss on only
// the last trainLast trained segments (a preference or KTO completion after
// a prompt that may hold assistant turns); -1 trains all of them. Each
// trained segment gets EOS appended unless it already ends with it, so a
// tuned model learns to stop.
func encodeSegments(enc Encoder, segs []chat.Segment, o BuildOpts, trainLast int) Example {
	var e Example
	trained := 0
	for _, s := range segs {
		if s.Train {
			trained++
		}
	}
	eos := enc.EOS()
	seen := 0
	for i, s := range segs {
		train := s.Train
		if train {
			seen++
			if trainLast >= 0 && seen <= trained-trainLast {
				train = false
			}
		}
		ids := enc.Encode(s.Text, i == 0 && !o.Template.IncludesBOS())
		if s.Train && !o.NoEOS && eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
			ids = append(ids, eos)
		}
		e.IDs = append(e.IDs, ids...)
		for _, id := range ids {
			if train || o.TrainAll {
				e.Labels = append(e.Labels, id)
			} else {
				e.Labels = append(e.Labels, IgnoreIndex)
			}
		}
	}
	return e
}

// encodeText encodes a {"text"} record: all trained, EOS at the end.
func encodeText(enc Encoder, text string, o BuildOpts) Example {
	ids := enc.Encode(text, true)
	if eos := enc.EOS(); !o.NoEOS && eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
		ids = append(ids, eos)
	}
	return Example{IDs: ids, Labels: append([]int32(nil), ids...)}
}

// truncate cuts e to ctx tokens; it reports whether it did.
func truncate(e *Example, ctx int) bool {
	if ctx <= 0 || len(e.IDs) <= ctx {
		return false
	}
	e.IDs, e.Labels = e.IDs[:ctx:ctx], e.Labels[:ctx:ctx]
	return true
}

func countAssistant(msgs []chat.Message) int {
	n := 0
	for _, m := range msgs {
		if m.Role == chat.RoleAssistant {
			n++
		}
	}
	return n
}

// build renders and encodes one conversation; trainLast as in encodeSegments.
// It returns the example, whether it was truncated, and why it has no loss
// ("" when it has some).
func build(enc Encoder, msgs []chat.Message, o BuildOpts, trainLast int) (Example, bool, string, error) {
	var e Example
	if o.Chat != nil {
		var err error
		if e, err = buildModelChat(enc, o.Chat, msgs, o, trainLast); err != nil {
			return Example{}, false, "", err
		}
	} else {
		segs, err := o.Template.Render(msgs, false)
		if err != nil {
			return Example{}, false, "", err
		}
		e = encodeSegments(enc, segs, o, trainLast)
	}
	full := e.Trained()
	cut := truncate(&e, o.Ctx)
	why := ""
	if e.Trained() == 0 {
		switch {
		case countAssistant(msgs) == 0 && !o.TrainAll:
			why = "no assistant message to train on"
		case full == 0:
			why = "the assistant turns encode to no tokens (empty content, no EOS)"
		default:
			first := 0
			for first < len(e.Labels) && e.Labels[first] == IgnoreIndex {
				first++
			}
			why = fmt.Sprintf("every trained token lies past ctx %d (the prompt alone is at least %d tokens)", o.Ctx, first)
		}
	}
	return e, cut, why, nil
}

// BuildSFT turns a dataset into supervised examples: chat records train on
// every assistant turn, prompt-completion, Alpaca, KTO (desirable or not)
// and preference (chosen) records on the completion, text records on
// everything. Examples with no loss token are dropped and listed in the
// report. Errors (a conversation the template cannot render) name file and
// line.
func BuildSFT(enc Encoder, ds *Dataset, o BuildOpts) ([]Example, Report, error) {
	rep := Report{File: ds.File, Records: len(ds.Records)}
	out := make([]Example, 0, len(ds.Records))
	for i := range ds.Records {
		r := &ds.Records[i]
		var e Example
		var cut bool
		var why string
		if ds.Shape == ShapeText {
			e = encodeText(enc, r.Text, o)
			cut = truncate(&e, o.Ctx)
			if len(e.IDs) == 0 {
				why = "empty text"
			}
		} else {
			trainLast := -1
			if ds.Shape != ShapeChat {
				trainLast = countAssistant(r.Completion)
			}
			var err error
			e, cut, why, err = build(enc, r.Conversation(), o, trainLast)
			if err != nil {
				return nil, rep, &LineError{ds.File, r.Line, err}
			}
		}
		if cut {
			rep.Truncated++
		}
		if why != "" {
			rep.NoLoss = append(rep.NoLoss, Dropped{r.Line, why})
			continue
		}
		rep.Tokens += len(e.IDs)
		rep.Trained += e.Trained()
		out = append(out, e)
	}
	rep.Examples = len(out)
	return out, rep, nil
}

// Pair is a preference example: the same prompt with the chosen and the
// rejected completion; only completion tokens carry labels.
type Pair struct {
	Chosen, Rejected Example
	Line             int
}

// BuildPairs turns a preference dataset into pairs.
func BuildPairs(enc Encoder, ds *Dataset, o BuildOpts) ([]Pair, Report, error) {
	rep := Report{File: ds.File, Records: len(ds.Records)}
	if ds.Shape != ShapePreference {
		return nil, rep, fmt.Errorf("data: %s is a %s dataset; preference training needs {\"prompt\",\"chosen\",\"rejected\"}", ds.File, ds.Shape)
	}
	o.TrainAll = false
	out := make([]Pair, 0, len(ds.Records))
	for i := range ds.Records {
		r := &ds.Records[i]
		var p Pair
		var whys [2]string
		for k, comp := range [2][]chat.Message{r.Completion, r.Rejected} {
			msgs := append(append([]chat.Message(nil), r.Prompt...), comp...)
			e, cut, why, err := build(enc, msgs, o, countAssistant(comp))
			if err != nil {
				return nil, rep, &LineError{ds.File, r.Line, err}
			}
			if cut {
				rep.Truncated++
			}
			whys[k] = why
			if k == 0 {
				p.Chosen = e
			} else {
				p.Rejected = e
			}
		}
		if whys[0] != "" || whys[1] != "" {
			why := "chosen: " + whys[0]
			if whys[0] == "" {
				why = "rejected: " + whys[1]
			}
			rep.NoLoss = append(rep.NoLoss, Dropped{r.Line, why})
			continue
		}
		p.Line = r.Line
		rep.Tokens += len(p.Chosen.IDs) + len(p.Rejected.IDs)
		rep.Trained += p.Chosen.Trained() + p.Rejected.Trained()
		out = append(out, p)
	}
	rep.Examples = len(out)
	return out, rep, nil
}

// KTOExample is one completion with its desirability label.
type KTOExample struct {
	Example
	Desirable bool
	Line      int
}

// BuildKTO turns a KTO dataset (or a preference dataset, each pair giving a
// desirable and an undesirable example) into labelled examples.
func BuildKTO(enc Encoder, ds *Dataset, o BuildOpts) ([]KTOExample, Report, error) {
	rep := Report{File: ds.File, Records: len(ds.Records)}
	o.TrainAll = false
	var out []KTOExample
	add := func(r *Record, comp []chat.Message, label bool) error {
		msgs := append(append([]chat.Message(nil), r.Prompt...), comp...)
		e, cut, why, err := build(enc, msgs, o, countAssistant(comp))
		if err != nil {
			return &LineError{ds.File, r.Line, err}
		}
		if cut {
			rep.Truncated++
		}
		if why != "" {
			rep.NoLoss = append(rep.NoLoss, Dropped{r.Line, why})
			return nil
		}
		rep.Tokens += len(e.IDs)
		rep.Trained += e.Trained()
		out = append(out, KTOExample{e, label, r.Line})
		return nil
	}
	for i := range ds.Records {
		r := &ds.Records[i]
		var err error
		switch ds.Shape {
		case ShapeKTO:
			err = add(r, r.Completion, r.Label)
		case ShapePreference:
			if err = add(r, r.Completion, true); err == nil {
				err = add(r, r.Rejected, false)
			}
		default:
			return nil, rep, fmt.Errorf("data: %s is a %s dataset; KTO needs {\"prompt\",\"completion\",\"label\"} or preference pairs", ds.File, ds.Shape)
		}
		if err != nil {
			return nil, rep, err
		}
	}
	rep.Examples = len(out)
	return out, rep, nil
}

// EncodePrompt renders msgs with the generation prompt and encodes them: the
// input for generation (evaluation, rollouts). Assistant turns in the
// history get EOS as in training (BuildOpts{NoEOS: false}).
func EncodePrompt(enc Encoder, tpl chat.Template, msgs []chat.Message) ([]int32, error) {
	segs, err := tpl.Render(msgs, true)
	if err != nil {
		return nil, err
	}
	return encodeSegments(enc, segs, BuildOpts{Template: tpl}, 0).IDs, nil
}
