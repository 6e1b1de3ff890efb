package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"llmlab/core/chat"
)

// Item is one instruction with its exactly checkable answer.
type Item struct {
	Task   string // which generator made it, e.g. "add"
	Prompt string
	Answer string
	// Reply is what the demonstrator said when it is not just Answer
	// (Sloppy), and Style its kind: Rude or Rambling; both empty otherwise.
	Reply, Style string
}

func item(task, prompt, answer string) Item { return Item{Task: task, Prompt: prompt, Answer: answer} }

// Said returns what the demonstrator said: Reply, or else Answer.
func (it Item) Said() string {
	if it.Reply != "" {
		return it.Reply
	}
	return it.Answer
}

// Messages returns the item as a chat conversation.
func (it Item) Messages() []chat.Message {
	return []chat.Message{{Role: chat.RoleUser, Content: it.Prompt}, {Role: chat.RoleAssistant, Content: it.Said()}}
}

// Words the tasks draw on: all from the stories' vocabulary, so a model
// pretrained on the stories already knows them.
var taskWords = []string{
	"cat", "dog", "ball", "kite", "tree", "house", "apple", "bird", "fish", "sun", "moon", "star", "boat", "cake", "book",
	"duck", "frog", "hat", "milk", "bread", "flower", "garden", "river", "hill", "park", "box", "door", "bed", "car",
	"doll", "pear", "egg", "lamp", "rock", "snow", "rain", "bear", "fox", "mouse", "owl", "pig", "horse", "goat", "lion",
	"bell", "coin", "drum", "farm", "nest", "road", "shoe", "sock", "toy", "cup", "leaf", "seed", "bee", "ant", "cow",
}

var animals = map[string]bool{"cat": true, "dog": true, "bird": true, "fish": true, "duck": true, "frog": true,
	"bear": true, "fox": true, "mouse": true, "owl": true, "pig": true, "horse": true, "goat": true, "lion": true,
	"bee": true, "ant": true, "cow": true}

// opposites: each word appears once, so every question has one answer.
var opposites = [][2]string{
	{"hot", "cold"}, {"big", "small"}, {"happy", "sad"}, {"fast", "slow"}, {"tall", "short"}, {"old", "new"},
	{"light", "dark"}, {"open", "closed"}, {"wet", "dry"}, {"loud", "quiet"}, {"full", "empty"}, {"hard", "soft"},
	{"early", "late"}, {"rich", "poor"}, {"clean", "dirty"}, {"strong", "weak"}, {"good", "bad"}, {"near", "far"},
	{"thick", "thin"}, {"sweet", "sour"}, {"brave", "scared"}, {"awake", "asleep"},
}

// A task makes one item; wrong makes a plausible wrong answer for it.
type task struct {
	name  string
	make  func(r *rng) Item
	wrong func(r *rng, it Item) string
}

func numWrong(r *rng, it Item) string {
	n, _ := strconv.Atoi(it.Answer)
	d := 1 + r.intn(3)
	if n-d < 0 || r.chance(50) {
		return strconv.Itoa(n + d)
	}
	return strconv.Itoa(n - d)
}

func flipYesNo(_ *rng, it Item) string {
	if it.Answer == "yes" {
		return "no"
	}
	return "yes"
}

// distinctWords picks n different words.
func distinctWords(r *rng, n int) []string {
	var out []string
	for len(out) < n {
		w := pick(r, taskWords)
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func otherLetter(r *rng, not byte) string {
	for {
		c := byte('a' + r.intn(26))
		if c != not {
			return string(c)
		}
	}
}

func tasks() []task {
	return []task{
		{"add", func(r *rng) Item {
			a, b := r.intn(51), r.intn(51)
			p := expand(r, pick(r, []string{"What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}. Answer with a number."}), map[string]string{"a": strconv.Itoa(a), "b": strconv.Itoa(b)})
			return item("add", p, strconv.Itoa(a+b))
		}, numWrong},
		{"subtract", func(r *rng) Item {
			a, b := r.intn(51), r.intn(51)
			if a < b {
				a, b = b, a
			}
			p := expand(r, pick(r, []string{"What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}."}), map[string]string{"a": strconv.Itoa(a), "b": strconv.Itoa(b)})
			return item("subtract", p, strconv.Itoa(a-b))
		}, numWrong},
		{"bigger", func(r *rng) Item {
			a, b := r.intn(100), r.intn(100)
			for a == b {
				b = r.intn(100)
			}
			return item("bigger", fmt.Sprintf("Which number is bigger, %d or %d?", a, b), strconv.Itoa(max(a, b)))
		}, func(_ *rng, it Item) string {
			var a, b int
			fmt.Sscanf(it.Prompt, "Which number is bigger, %d or %d?", &a, &b)
			return strconv.Itoa(min(a, b))
		}},
		{"reverse", func(r *rng) Item {
			ws := distinctWords(r, 3+r.intn(3))
			rev := slices.Clone(ws)
			slices.Reverse(rev)
			p := pick(r, []string{"Reverse the order of these words: ", "Write these words in reverse order: ", "Reverse this list: "}) + strings.Join(ws, " ")
			return item("reverse", p, strings.Join(rev, " "))
		}, func(r *rng, it Item) string {
			ws := strings.Fields(it.Answer)
			slices.Reverse(ws) // the original order
			if r.chance(50) {
				ws[0], ws[1] = ws[1], ws[0]
			}
			return strings.Join(ws, " ")
		}},
		{"sort", func(r *rng) Item {
			ws := distinctWords(r, 3+r.intn(3))
			for slices.IsSorted(ws) {
				ws = distinctWords(r, len(ws))
			}
			s := slices.Clone(ws)
			slices.Sort(s)
			p := pick(r, []string{"Sort these words in alphabetical order: ", "Put these words in alphabetical order: ", "Sort alphabetically: "}) + strings.Join(ws, " ")
			return item("sort", p, strings.Join(s, " "))
		}, func(r *rng, it Item) string {
			ws := strings.Fields(it.Answer)
			if r.chance(50) {
				slices.Reverse(ws)
			} else {
				ws[len(ws)-1], ws[len(ws)-2] = ws[len(ws)-2], ws[len(ws)-1]
			}
			return strings.Join(ws, " ")
		}},
		{"length", func(r *rng) Item {
			w := pick(r, taskWords)
			p := expand(r, pick(r, []string{"How many letters are in the word \"{w}\"?", "Count the letters in \"{w}\".", "How long is the word \"{w}\"? Answer with a number."}), map[string]string{"w": w})
			return item("length", p, strconv.Itoa(len(w)))
		}, numWrong},
		{"count_letter", func(r *rng) Item {
			w := pick(r, taskWords)
			c := w[r.intn(len(w))]
			if r.chance(25) {
				c = byte('a' + r.intn(26))
			}
			return item("count_letter", fmt.Sprintf("How many times does the letter \"%c\" appear in \"%s\"?", c, w), strconv.Itoa(strings.Count(w, string(c))))
		}, numWrong},
		{"uppercase", func(r *rng) Item {
			w := pick(r, taskWords)
			p := expand(r, pick(r, []string{"Write the word \"{w}\" in capital letters.", "Make this word uppercase: {w}", "Write {w} in uppercase."}), map[string]string{"w": w})
			return item("uppercase", p, strings.ToUpper(w))
		}, func(r *rng, it Item) string {
			w := strings.ToLower(it.Answer)
			if r.chance(50) {
				return w
			}
			return capitalise(w)
		}},
		{"opposite", func(r *rng) Item {
			pr := pick(r, opposites)
			if r.chance(50) {
				pr[0], pr[1] = pr[1], pr[0]
			}
			p := expand(r, pick(r, []string{"What is the opposite of \"{w}\"?", "Give the opposite of the word {w}.", "What is the opposite of {w}?"}), map[string]string{"w": pr[0]})
			return item("opposite", p, pr[1])
		}, func(r *rng, it Item) string {
			for {
				pr := pick(r, opposites)
				if w := pr[r.intn(2)]; w != it.Answer && !strings.Contains(it.Prompt, w) {
					return w
				}
			}
		}},
		{"yes_no", func(r *rng) Item {
			switch r.intn(3) {
			case 0:
				a, b := r.intn(30), r.intn(30)
				return item("yes_no", fmt.Sprintf("Is %d greater than %d? Answer with yes or no.", a, b), yesNo(a > b))
			case 1:
				w := pick(r, taskWords)
				return item("yes_no", fmt.Sprintf("Is a %s an animal? Answer with yes or no.", w), yesNo(animals[w]))
			default:
				w := pick(r, taskWords)
				c := byte('a' + r.intn(26))
				if r.chance(50) {
					c = w[0]
				}
				return item("yes_no", fmt.Sprintf("Does the word \"%s\" start with the letter \"%c\"? Answer with yes or no.", w, c), yesNo(w[0] == c))
			}
		}, flipYesNo},
		{"repeat", func(r *rng) Item {
			w, n := pick(r, taskWords), 2+r.intn(4)
			p := expand(r, pick(r, []string{"Repeat the word \"{w}\" {n} times.", "Say {w} {n} times.", "Write \"{w}\" {n} times, separated by spaces."}), map[string]string{"w": w, "n": strconv.Itoa(n)})
			return item("repeat", p, strings.TrimSpace(strings.Repeat(w+" ", n)))
		}, func(r *rng, it Item) string {
			ws := strings.Fields(it.Answer)
			if r.chance(50) {
				return strings.Join(ws[1:], " ")
			}
			return strings.Join(append(ws, ws[0]), " ")
		}},
		{"first_letter", func(r *rng) Item {
			w := pick(r, taskWords)
			return item("first_letter", fmt.Sprintf("What is the first letter of \"%s\"?", w), w[:1])
		}, func(r *rng, it Item) string { return otherLetter(r, it.Answer[0]) }},
		{"last_letter", func(r *rng) Item {
			w := pick(r, taskWords)
			return item("last_letter", fmt.Sprintf("What is the last letter of \"%s\"?", w), w[len(w)-1:])
		}, func(r *rng, it Item) string { return otherLetter(r, it.Answer[0]) }},
		{"format", func(r *rng) Item {
			switch r.intn(3) {
			case 0:
				w := pick(r, taskWords)
				return item("format", fmt.Sprintf("Write the word \"%s\" inside square brackets.", w), "["+w+"]")
			case 1:
				ws := distinctWords(r, 3+r.intn(2))
				return item("format", "Write these words separated by commas: "+strings.Join(ws, " "), strings.Join(ws, ", "))
			default:
				a, b := pick(r, taskWords), r.intn(10)
				return item("format", fmt.Sprintf("Answer in the form name=number: the name is %s and the number is %d.", a, b), fmt.Sprintf("%s=%d", a, b))
			}
		}, func(r *rng, it Item) string {
			switch {
			case strings.HasPrefix(it.Answer, "["):
				return "(" + strings.Trim(it.Answer, "[]") + ")"
			case strings.Contains(it.Answer, ", "):
				return strings.ReplaceAll(it.Answer, ", ", " ")
			default:
				return strings.ReplaceAll(it.Answer, "=", " is ")
			}
		}},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Tasks lists the instruction task names.
func Tasks() []string {
	var out []string
	for _, t := range tasks() {
		out = append(out, t.name)
	}
	return out
}

// Instruct generates nTrain + nEval distinct instructions, the tasks in
// turn, and splits them: no eval prompt appears in train.
func Instruct(seed uint64, nTrain, nEval int) (train, eval []Item) {
	r := newRNG(seed, 2)
	ts := tasks()
	seen := map[string]bool{}
	var all []Item
	for i := 0; len(all) < nTrain+nEval; i++ {
		it := ts[i%len(ts)].make(r)
		if seen[it.Prompt] {
			continue
		}
		seen[it.Prompt] = true
		all = append(all, it)
	}
	// Shuffle so eval is a random sample over tasks, then split.
	r.shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[nEval:], all[:nEval]
}

// InstructMore generates n more training instructions for seed, from a
// stream of its own so that Instruct's split (and the preference data made
// from it) stays as it is. weight[task] is how many items a task makes per
// round (missing: 1); a prompt in any of avoid, or already made, is drawn
// again, and a task whose prompts run out (first_letter has one per word)
// drops out, so the result may be shorter than n.
func InstructMore(seed uint64, n int, weight map[string]int, avoid ...[]Item) []Item {
	r := newRNG(seed, 4)
	seen := map[string]bool{}
	for _, items := range avoid {
		for _, it := range items {
			seen[it.Prompt] = true
		}
	}
	ts := tasks()
	ws := make([]int, len(ts))
	live := make([]bool, len(ts))
	for i, t := range ts {
		w, ok := weight[t.name]
		if !ok {
			w = 1
		}
		ws[i], live[i] = w, w > 0
	}
	var out []Item
	for len(out) < n && slices.Contains(live, true) {
		for i, t := range ts {
			for k := 0; k < ws[i] && live[i] && len(out) < n; k++ {
				// A task is spent once 200 draws in a row repeat prompts.
				for tries := 0; ; tries++ {
					if tries == 200 {
						live[i] = false
						break
					}
					it := t.make(r)
					if !seen[it.Prompt] {
						seen[it.Prompt] = true
						out = append(out, it)
						break
					}
				}
			}
		}
	}
	r.shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// Match reports whether a model's answer got is right for want: exact after
// trimming spaces and one trailing period; yes/no answers ignore case.
func Match(task, got, want string) bool {
	norm := func(s string) string {
		s = strings.TrimSpace(s)
		s = strings.TrimSuffix(s, ".")
		return strings.TrimSpace(s)
	}
	g, w := norm(got), norm(want)
	if task == "yes_no" {
		return strings.EqualFold(g, w)
	}
	return g == w
}

// instructRecord is one JSONL line: chat messages plus the task and the
// expected answer for exact-match scoring.
type instructRecord struct {
	Messages []chat.Message `json:"messages"`
	Task     string         `json:"task"`
	Answer   string         `json:"answer"`
	Style    string         `json:"style,omitempty"` // Rude or Rambling (Sloppy)
}

// WriteInstruct writes items as chat JSONL.
func WriteInstruct(w io.Writer, items []Item) error {
	return writeJSONL(w, len(items), func(i int) any {
		it := items[i]
		return instructRecord{it.Messages(), it.Task, it.Answer, it.Style}
	})
}

// ReadInstruct reads a file written by WriteInstruct back into items.
func ReadInstruct(data []byte) ([]Item, error) {
	var out []Item
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec instructRecord
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, fmt.Errorf("demo: line %d: %w", i+1, err)
		}
		if len(rec.Messages) == 0 || rec.Messages[0].Role != chat.RoleUser {
			return nil, fmt.Errorf("demo: line %d: no user message", i+1)
		}
		it := Item{Task: rec.Task, Prompt: rec.Messages[0].Content, Answer: rec.Answer, Style: rec.Style}
		if len(rec.Messages) > 1 && rec.Messages[1].Content != rec.Answer {
			it.Reply = rec.Messages[1].Content
		}
		out = append(out, it)
	}
	return out, nil
}

func writeJSONL(w io.Writer, n int, rec func(i int) any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range n {
		if err := enc.Encode(rec(i)); err != nil {
			return err
		}
	}
	return nil
}
