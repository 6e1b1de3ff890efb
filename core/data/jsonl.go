package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"llmlab/core/chat"
)

// Shape is the layout of a JSONL dataset, recognised from each line's keys.
type Shape int

// The dataset shapes.
const (
	ShapeText             Shape = iota // {"text"}
	ShapePromptCompletion              // {"prompt","completion"}
	ShapeAlpaca                        // {"instruction","input","output"} (input optional)
	ShapeChat                          // {"messages":[{"role","content"}]}
	ShapePreference                    // {"prompt","chosen","rejected"}
	ShapeKTO                           // {"prompt","completion","label"}
	numShapes
)

var shapeNames = [numShapes]string{"text", "prompt-completion", "alpaca", "chat", "preference", "kto"}

func (s Shape) String() string {
	if s < 0 || s >= numShapes {
		return fmt.Sprintf("Shape(%d)", int(s))
	}
	return shapeNames[s]
}

// Pairwise reports whether s holds chosen/rejected pairs.
func (s Shape) Pairwise() bool { return s == ShapePreference }

const shapesHelp = `{"text"}, {"prompt","completion"}, {"instruction","input","output"}, {"messages"}, {"prompt","chosen","rejected"}, {"prompt","completion","label"}`

// Record is one line of a JSONL dataset, normalised: string prompts become
// one user message and string completions one assistant message, so every
// shape but text renders through a chat template.
type Record struct {
	Line       int            // 1-based line in the file
	Text       string         // ShapeText
	Prompt     []chat.Message // chat: the whole conversation; others: the prompt
	Completion []chat.Message // completion, Alpaca output, preference chosen
	Rejected   []chat.Message // preference rejected
	Label      bool           // KTO: true when the completion is desirable
	// Extra holds the line's other fields, unparsed (a demo eval set keeps
	// its expected "answer" there).
	Extra map[string]json.RawMessage
}

// Conversation returns the messages to train on for SFT: the prompt and the
// completion (the chosen one for preferences).
func (r *Record) Conversation() []chat.Message {
	out := make([]chat.Message, 0, len(r.Prompt)+len(r.Completion))
	return append(append(out, r.Prompt...), r.Completion...)
}

// Dataset is a parsed JSONL file; every line has the same shape.
type Dataset struct {
	File    string
	Shape   Shape
	Records []Record
}

// LineError is a problem on one line of a file.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrEmpty is returned (wrapped) for a file with no records.
var ErrEmpty = errors.New("no records (empty file)")

// LoadJSONL reads a JSONL dataset from path.
func LoadJSONL(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	return ReadJSONL(f, path)
}

// ReadJSONL reads a JSONL dataset; file names it in errors. Blank lines are
// skipped; every other line must be a JSON object of one of the shapes, the
// same for the whole file.
func ReadJSONL(r io.Reader, file string) (*Dataset, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	ds := &Dataset{File: file}
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("data: %s:%d: %w", file, line, err)
		}
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // UTF-8 BOM
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			rec, shape, perr := parseLine(t)
			if perr != nil {
				return nil, &LineError{file, line, perr}
			}
			rec.Line = line
			if len(ds.Records) == 0 {
				ds.Shape = shape
			} else if shape != ds.Shape {
				return nil, &LineError{file, line, fmt.Errorf("a %s record, but line %d was %s: one shape per file", shape, ds.Records[0].Line, ds.Shape)}
			}
			ds.Records = append(ds.Records, rec)
		}
		if err == io.EOF {
			break
		}
	}
	if len(ds.Records) == 0 {
		return nil, fmt.Errorf("data: %s: %w", file, ErrEmpty)
	}
	return ds, nil
}

func parseLine(b []byte) (Record, Shape, error) {
	var rec Record
	if b[0] != '{' {
		return rec, 0, fmt.Errorf("not a JSON object (starts with %q)", firstRune(b))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return rec, 0, fmt.Errorf("invalid JSON: %w", err)
	}
	has := func(k string) bool { _, ok := m[k]; return ok }
	used := map[string]bool{}
	str := func(k string) (string, error) {
		used[k] = true
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil {
			return "", fmt.Errorf("field %q must be a string", k)
		}
		return s, nil
	}
	turns := func(k, role string) ([]chat.Message, error) {
		used[k] = true
		return parseTurns(m[k], k, role)
	}
	var shape Shape
	var err error
	switch {
	case has("messages"):
		shape = ShapeChat
		rec.Prompt, err = turns("messages", "")
		if err == nil && len(rec.Prompt) == 0 {
			err = errors.New(`"messages" is empty`)
		}
	case has("chosen") || has("rejected"):
		shape = ShapePreference
		if !has("chosen") || !has("rejected") {
			return rec, 0, errors.New(`a preference record needs both "chosen" and "rejected"`)
		}
		if rec.Completion, err = turns("chosen", chat.RoleAssistant); err != nil {
			break
		}
		if rec.Rejected, err = turns("rejected", chat.RoleAssistant); err != nil {
			break
		}
		if has("prompt") {
			rec.Prompt, err = turns("prompt", chat.RoleUser)
		} else {
			err = implicitPrompt(&rec)
		}
	case has("label"):
		shape = ShapeKTO
		if !has("prompt") || !has("completion") {
			return rec, 0, errors.New(`a KTO record needs "prompt", "completion" and "label"`)
		}
		used["label"] = true
		if rec.Label, err = parseLabel(m["label"]); err != nil {
			break
		}
		if rec.Prompt, err = turns("prompt", chat.RoleUser); err != nil {
			break
		}
		rec.Completion, err = turns("completion", chat.RoleAssistant)
	case has("instruction"):
		shape = ShapeAlpaca
		if !has("output") {
			return rec, 0, errors.New(`an Alpaca record needs "instruction" and "output"`)
		}
		var ins, in, out string
		if ins, err = str("instruction"); err != nil {
			break
		}
		if has("input") {
			if in, err = str("input"); err != nil {
				break
			}
		}
		if out, err = str("output"); err != nil {
			break
		}
		if in != "" {
			ins += "\n\n" + in
		}
		rec.Prompt = []chat.Message{{Role: chat.RoleUser, Content: ins}}
		rec.Completion = []chat.Message{{Role: chat.RoleAssistant, Content: out}}
	case has("prompt") || has("completion"):
		shape = ShapePromptCompletion
		if !has("prompt") || !has("completion") {
			return rec, 0, errors.New(`a prompt-completion record needs both "prompt" and "completion"`)
		}
		if rec.Prompt, err = turns("prompt", chat.RoleUser); err != nil {
			break
		}
		rec.Completion, err = turns("completion", chat.RoleAssistant)
	case has("text"):
		shape = ShapeText
		rec.Text, err = str("text")
	default:
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return rec, 0, fmt.Errorf("keys [%s] match no dataset shape; want one of %s", strings.Join(keys, " "), shapesHelp)
	}
	if err != nil {
		return rec, 0, fmt.Errorf("%s record: %w", shape, err)
	}
	for k, v := range m {
		if !used[k] {
			if rec.Extra == nil {
				rec.Extra = map[string]json.RawMessage{}
			}
			rec.Extra[k] = v
		}
	}
	return rec, shape, nil
}

// parseTurns accepts a string (one message with role defRole) or a list of
// {"role","content"} objects. defRole "" means only a list is allowed.
func parseTurns(raw json.RawMessage, key, defRole string) ([]chat.Message, error) {
	var s string
	if defRole != "" && json.Unmarshal(raw, &s) == nil {
		return []chat.Message{{Role: defRole, Content: s}}, nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		if defRole != "" {
			return nil, fmt.Errorf("%q must be a string or a list of {role, content} messages", key)
		}
		return nil, fmt.Errorf("%q must be a list of {role, content} messages", key)
	}
	msgs := make([]chat.Message, len(list))
	for i, o := range list {
		if o == nil {
			return nil, fmt.Errorf("%s[%d] is not an object", key, i)
		}
		for _, f := range []string{"role", "content"} {
			var v string
			if _, ok := o[f]; !ok {
				return nil, fmt.Errorf("%s[%d] has no %q", key, i, f)
			}
			if err := json.Unmarshal(o[f], &v); err != nil {
				return nil, fmt.Errorf("%s[%d].%s must be a string", key, i, f)
			}
			if f == "role" {
				msgs[i].Role = v
			} else {
				msgs[i].Content = v
			}
		}
		switch msgs[i].Role {
		case chat.RoleSystem, chat.RoleUser, chat.RoleAssistant:
		default:
			return nil, fmt.Errorf("%s[%d] has role %q; want system, user or assistant", key, i, msgs[i].Role)
		}
	}
	return msgs, nil
}

// implicitPrompt splits conversational chosen/rejected without a "prompt"
// into their shared leading messages (the prompt) and the rest.
func implicitPrompt(r *Record) error {
	n := 0
	for n < len(r.Completion) && n < len(r.Rejected) && r.Completion[n] == r.Rejected[n] {
		n++
	}
	if n == 0 {
		return errors.New(`no "prompt", and "chosen" and "rejected" share no leading messages`)
	}
	if n == len(r.Completion) || n == len(r.Rejected) {
		return errors.New(`"chosen" and "rejected" do not differ after their shared prompt`)
	}
	r.Prompt = r.Completion[:n:n]
	r.Completion, r.Rejected = r.Completion[n:], r.Rejected[n:]
	return nil
}

func parseLabel(raw json.RawMessage) (bool, error) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil && (f == 0 || f == 1) {
		return f == 1, nil
	}
	return false, errors.New(`"label" must be true/false (or 1/0)`)
}

func firstRune(b []byte) string {
	s := string(b)
	for _, r := range s {
		return string(r)
	}
	return ""
}
