package demo

import (
	"io"
	"slices"

	"llmlab/core/chat"
)

// The kinds of rejected answer.
const (
	Wrong    = "wrong"    // a plausible but incorrect answer
	Rude     = "rude"     // the right answer, said rudely
	Rambling = "rambling" // the right answer buried in needless words
)

// Pref is a preference pair over an instruction: Chosen is correct, polite
// and concise (the answer itself); Rejected is of kind RejectedKind.
type Pref struct {
	Item
	Chosen, Rejected, RejectedKind string
}

var rudeForms = []string{
	"Ugh, that is so easy. {ans}. Stop asking me silly things.",
	"Are you serious? {ans}. Even a baby knows that.",
	"{ans}. Now go away.",
	"Fine, whatever. {ans}. Don't bother me again.",
	"What a dumb question. It is {ans}, obviously.",
	"{ans}. Figure it out yourself next time.",
}

var ramblingForms = []string{
	"Well, let me think about this very carefully, because it is an interesting question and there are many things to say about it. First of all, questions like this remind me of school, and school was a long time ago. Anyway, after thinking about it for a long time, I believe the answer is {ans}. I hope that helps, and if it does not, I can explain it all again in even more detail.",
	"Hmm, that is a good one. You know, I was just thinking about the weather, and about cats, and about how many stars there are in the sky. But back to your question. The answer, if I remember right, and I think I do, is {ans}. Or at least that is what I would say if someone asked me, which you did.",
	"Oh, what a question! Before I answer, I want to say that there are many ways to look at it, and each way is special in its own way. Some people might say one thing and other people might say another thing. In the end, though, it is {ans}. Thank you for asking, and have a very, very nice day, and see you soon.",
}

// Prefs makes one preference pair per item, the rejected kind cycling
// through wrong, rude and rambling in a seeded random order.
func Prefs(seed uint64, items []Item) []Pref {
	r := newRNG(seed, 3)
	byName := map[string]task{}
	for _, t := range tasks() {
		byName[t.name] = t
	}
	kinds := []string{Wrong, Rude, Rambling}
	out := make([]Pref, len(items))
	for i, it := range items {
		p := Pref{Item: it, Chosen: it.Answer, RejectedKind: kinds[r.intn(3)]}
		v := map[string]string{"ans": it.Answer}
		switch p.RejectedKind {
		case Wrong:
			p.Rejected = byName[it.Task].wrong(r, it)
		case Rude:
			p.Rejected = subst(pick(r, rudeForms), v)
		case Rambling:
			p.Rejected = subst(pick(r, ramblingForms), v)
		}
		out[i] = p
	}
	return out
}

// Sloppy returns a copy of items in which about pct percent of the
// replies are what a careless demonstrator says: the right answer said
// rudely or buried in rambling (one or the other, evenly, in the forms of
// the preference pairs' rejected answers). Answer stays the plain answer
// for scoring. An SFT set made of them gives a model habits that the
// alignment methods are there to remove, as human demonstrations do.
func Sloppy(seed uint64, items []Item, pct int) []Item {
	r := newRNG(seed, 5)
	out := slices.Clone(items)
	for i := range out {
		if !r.chance(pct) {
			continue
		}
		v := map[string]string{"ans": out[i].Answer}
		if r.chance(50) {
			out[i].Reply, out[i].Style = subst(pick(r, rudeForms), v), Rude
		} else {
			out[i].Reply, out[i].Style = subst(pick(r, ramblingForms), v), Rambling
		}
	}
	return out
}

type prefRecord struct {
	Prompt       []chat.Message `json:"prompt"`
	Chosen       []chat.Message `json:"chosen"`
	Rejected     []chat.Message `json:"rejected"`
	RejectedKind string         `json:"rejected_kind"`
	Task         string         `json:"task"`
	Answer       string         `json:"answer"`
}

func user(s string) []chat.Message { return []chat.Message{{Role: chat.RoleUser, Content: s}} }
func asst(s string) []chat.Message { return []chat.Message{{Role: chat.RoleAssistant, Content: s}} }

// WritePrefs writes preference pairs as {"prompt","chosen","rejected"}
// JSONL with conversational (message list) fields, plus "rejected_kind",
// "task" and "answer".
func WritePrefs(w io.Writer, ps []Pref) error {
	return writeJSONL(w, len(ps), func(i int) any {
		p := ps[i]
		return prefRecord{user(p.Prompt), asst(p.Chosen), asst(p.Rejected), p.RejectedKind, p.Task, p.Answer}
	})
}

type ktoRecord struct {
	Prompt     []chat.Message `json:"prompt"`
	Completion []chat.Message `json:"completion"`
	Label      bool           `json:"label"`
	Kind       string         `json:"kind"` // "correct" or the rejected kind
	Task       string         `json:"task"`
}

// WriteKTO writes each pair as two unpaired KTO lines: the chosen answer
// (label true, kind "correct") and the rejected one (label false).
func WriteKTO(w io.Writer, ps []Pref) error {
	return writeJSONL(w, 2*len(ps), func(i int) any {
		p := ps[i/2]
		if i%2 == 0 {
			return ktoRecord{user(p.Prompt), asst(p.Chosen), true, "correct", p.Task}
		}
		return ktoRecord{user(p.Prompt), asst(p.Rejected), false, p.RejectedKind, p.Task}
	})
}
