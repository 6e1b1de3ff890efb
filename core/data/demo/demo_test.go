package demo

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"llmlab/core/data"
)

func TestExpand(t *testing.T) {
	r := newRNG(1, 0)
	v := map[string]string{"name": "tom", "he": "he"}
	for range 50 {
		got := expand(r, "{Name} said [hi|hello [there|friend]]. {He} {missing}", v)
		if !strings.HasPrefix(got, "Tom said h") || !strings.HasSuffix(got, ". He {missing}") || strings.ContainsAny(got, "[]|") {
			t.Fatalf("expand gave %q", got)
		}
	}
}

func TestStories(t *testing.T) {
	s := Stories(7, 200_000)
	if s != Stories(7, 200_000) {
		t.Fatal("same seed, different stories")
	}
	if s == Stories(8, 200_000) {
		t.Fatal("different seeds, same stories")
	}
	if strings.ContainsAny(s, "{}[]|") {
		i := strings.IndexAny(s, "{}[]|")
		t.Fatalf("grammar residue near %q", s[max(0, i-80):min(len(s), i+40)])
	}
	stories := strings.Split(strings.TrimSpace(s), "\n\n")
	if len(stories) < 150 {
		t.Errorf("%d stories in 200 kB", len(stories))
	}
	words := map[string]bool{}
	quotes := 0
	for _, st := range stories {
		if strings.Contains(st, "\"") {
			quotes++
		}
		for _, w := range strings.Fields(st) {
			words[strings.ToLower(strings.Trim(w, ".,!?\""))] = true
		}
		if c := st[len(st)-1]; c != '.' && c != '!' && c != '"' && c != '?' {
			t.Errorf("story does not end a sentence: %q", st[max(0, len(st)-60):])
		}
	}
	if len(words) < 700 {
		t.Errorf("vocabulary of %d words, want ≥ 700", len(words))
	}
	if quotes*2 < len(stories) {
		t.Errorf("only %d of %d stories have dialogue", quotes, len(stories))
	}
	if bad := regexp.MustCompile(`\b[Aa] [aeiou]\w*`).FindString(s); bad != "" {
		t.Errorf("article before a vowel: %q", bad)
	}
}

// solve recomputes an answer from the prompt alone, independently of the
// generators, for the tasks where that is mechanical.
func solve(it Item) (string, bool) {
	nums := regexp.MustCompile(`\d+`).FindAllString(it.Prompt, -1)
	atoi := func(i int) int { n, _ := strconv.Atoi(nums[i]); return n }
	after := func() []string { return strings.Fields(it.Prompt[strings.LastIndex(it.Prompt, ":")+1:]) }
	switch it.Task {
	case "add":
		return strconv.Itoa(atoi(0) + atoi(1)), true
	case "subtract":
		if strings.HasPrefix(it.Prompt, "Subtract") {
			return strconv.Itoa(atoi(1) - atoi(0)), true
		}
		return strconv.Itoa(atoi(0) - atoi(1)), true
	case "bigger":
		return strconv.Itoa(max(atoi(0), atoi(1))), true
	case "reverse":
		w := after()
		for i, j := 0, len(w)-1; i < j; i, j = i+1, j-1 {
			w[i], w[j] = w[j], w[i]
		}
		return strings.Join(w, " "), true
	case "uppercase":
		q := regexp.MustCompile(`"(\w+)"|: (\w+)$|Write (\w+) in`).FindStringSubmatch(it.Prompt)
		return strings.ToUpper(q[1] + q[2] + q[3]), true
	}
	return "", false
}

func TestInstruct(t *testing.T) {
	train, eval := Instruct(1, 600, 100)
	if len(train) != 600 || len(eval) != 100 {
		t.Fatalf("%d/%d items", len(train), len(eval))
	}
	seen := map[string]bool{}
	for _, it := range train {
		seen[it.Prompt] = true
	}
	perTask := map[string]int{}
	for _, it := range append(append([]Item(nil), train...), eval...) {
		perTask[it.Task]++
		if it.Answer == "" || len(it.Answer) > 40 {
			t.Errorf("%s: answer %q not short", it.Task, it.Answer)
		}
		if want, ok := solve(it); ok && want != it.Answer {
			t.Errorf("%q: answer %q, recomputed %q", it.Prompt, it.Answer, want)
		}
		if !Match(it.Task, " "+it.Answer+". ", it.Answer) {
			t.Errorf("Match rejects its own answer %q", it.Answer)
		}
	}
	for _, it := range eval {
		if seen[it.Prompt] {
			t.Errorf("eval prompt %q also in train", it.Prompt)
		}
	}
	for _, name := range Tasks() {
		if perTask[name] < 20 {
			t.Errorf("task %s has %d items", name, perTask[name])
		}
	}
}

func TestPrefs(t *testing.T) {
	train, _ := Instruct(2, 300, 0)
	ps := Prefs(2, train)
	kinds := map[string]int{}
	for _, p := range ps {
		kinds[p.RejectedKind]++
		if p.Chosen != p.Answer || p.Rejected == p.Chosen {
			t.Errorf("%q: chosen %q rejected %q", p.Prompt, p.Chosen, p.Rejected)
		}
		if p.RejectedKind == Wrong && Match(p.Task, p.Rejected, p.Answer) {
			t.Errorf("%q: wrong answer %q is right", p.Prompt, p.Rejected)
		}
		if p.RejectedKind == Rambling && len(p.Rejected) < 5*len(p.Chosen) {
			t.Errorf("rambling answer too short: %q", p.Rejected)
		}
	}
	for _, k := range []string{Wrong, Rude, Rambling} {
		if kinds[k] < 60 {
			t.Errorf("%d %s pairs of 300", kinds[k], k)
		}
	}
}

func TestSloppy(t *testing.T) {
	train, _ := Instruct(2, 1000, 0)
	got := Sloppy(2, train, 30)
	if !slices.Equal(got, Sloppy(2, train, 30)) {
		t.Fatal("same seed, different replies")
	}
	styles := map[string]int{}
	for i, it := range got {
		styles[it.Style]++
		orig := train[i]
		if it.Task != orig.Task || it.Prompt != orig.Prompt || it.Answer != orig.Answer {
			t.Fatalf("item %d changed: %+v from %+v", i, it, orig)
		}
		switch it.Style {
		case "":
			if it.Reply != "" || it.Said() != it.Answer {
				t.Errorf("plain item %d says %q", i, it.Said())
			}
		case Rude, Rambling:
			if !strings.Contains(it.Reply, it.Answer) || it.Reply == it.Answer {
				t.Errorf("%s reply %q for answer %q", it.Style, it.Reply, it.Answer)
			}
			if m := it.Messages(); m[1].Content != it.Reply {
				t.Errorf("messages say %q, not the reply", m[1].Content)
			}
		default:
			t.Errorf("style %q", it.Style)
		}
	}
	// 30% of 1000, half each: 150 ± 4σ.
	for _, k := range []string{Rude, Rambling} {
		if styles[k] < 100 || styles[k] > 200 {
			t.Errorf("%d %s replies of 1000 at 30%%", styles[k], k)
		}
	}
	if n := len(Sloppy(2, train, 0)); n != len(train) || slices.ContainsFunc(Sloppy(2, train, 0), func(it Item) bool { return it.Reply != "" }) {
		t.Error("pct 0 changed replies")
	}
	// A file written with the replies reads back with them.
	var b bytes.Buffer
	if err := WriteInstruct(&b, got[:50]); err != nil {
		t.Fatal(err)
	}
	back, err := ReadInstruct(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, got[:50]) {
		t.Errorf("read back differs:\n%+v\n%+v", back[:3], got[:3])
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		task, got, want string
		ok              bool
	}{
		{"add", "12", "12", true}, {"add", " 12.", "12", true}, {"add", "13", "12", false},
		{"yes_no", "Yes", "yes", true}, {"uppercase", "tree", "TREE", false}, {"format", "[cat]", "[cat]", true},
	} {
		if got := Match(tc.task, tc.got, tc.want); got != tc.ok {
			t.Errorf("Match(%q, %q, %q) = %v", tc.task, tc.got, tc.want, got)
		}
	}
}

// The generated files are what core/data reads, in the right shapes, and
// the eval answers round-trip.
func TestFilesReadable(t *testing.T) {
	train, eval := Instruct(4, 40, 10)
	ps := Prefs(4, train)
	for _, tc := range []struct {
		name  string
		write func(*bytes.Buffer) error
		shape data.Shape
		n     int
	}{
		{"instruct", func(b *bytes.Buffer) error { return WriteInstruct(b, eval) }, data.ShapeChat, 10},
		{"prefs", func(b *bytes.Buffer) error { return WritePrefs(b, ps) }, data.ShapePreference, 40},
		{"kto", func(b *bytes.Buffer) error { return WriteKTO(b, ps) }, data.ShapeKTO, 80},
	} {
		var b bytes.Buffer
		if err := tc.write(&b); err != nil {
			t.Fatal(err)
		}
		ds, err := data.ReadJSONL(bytes.NewReader(b.Bytes()), tc.name)
		if err != nil || ds.Shape != tc.shape || len(ds.Records) != tc.n {
			t.Fatalf("%s: %v (shape %v, %d records)", tc.name, err, ds.Shape, len(ds.Records))
		}
		if tc.name == "instruct" {
			back, err := ReadInstruct(b.Bytes())
			if err != nil || len(back) != 10 || back[3] != eval[3] {
				t.Errorf("ReadInstruct: %v", err)
			}
			if string(ds.Records[0].Extra["answer"]) != strconv.Quote(eval[0].Answer) {
				t.Errorf("answer field %s", ds.Records[0].Extra["answer"])
			}
		}
	}
}

// InstructMore adds items whose prompts are new, leaves Instruct's split as
// it was, skips weight-0 tasks and stops drawing from spent ones.
func TestInstructMore(t *testing.T) {
	train, eval := Instruct(1, 600, 100)
	more := InstructMore(1, 3000, map[string]int{"add": 0, "repeat": 2}, train, eval)
	if len(more) != 3000 {
		t.Fatalf("%d items", len(more))
	}
	seen := map[string]bool{}
	for _, it := range append(append([]Item(nil), train...), eval...) {
		seen[it.Prompt] = true
	}
	perTask := map[string]int{}
	for _, it := range more {
		if seen[it.Prompt] {
			t.Errorf("%q repeated", it.Prompt)
		}
		seen[it.Prompt] = true
		perTask[it.Task]++
		if want, ok := solve(it); ok && want != it.Answer {
			t.Errorf("%q: answer %q, recomputed %q", it.Prompt, it.Answer, want)
		}
	}
	if perTask["add"] != 0 || perTask["repeat"] <= perTask["subtract"] {
		t.Errorf("per task %v: want no add and repeat weighted up", perTask)
	}
	// first_letter has one prompt per word: it runs out, the rest go on.
	if perTask["first_letter"]+countTask(train, "first_letter")+countTask(eval, "first_letter") > len(taskWords) {
		t.Errorf("first_letter: %d extra items for %d words", perTask["first_letter"], len(taskWords))
	}
	if again := InstructMore(1, 3000, map[string]int{"add": 0, "repeat": 2}, train, eval); again[17] != more[17] {
		t.Error("not deterministic")
	}
	if tr2, ev2 := Instruct(1, 600, 100); tr2[5] != train[5] || ev2[5] != eval[5] {
		t.Error("Instruct changed after InstructMore")
	}
}

func countTask(items []Item, task string) int {
	n := 0
	for _, it := range items {
		if it.Task == task {
			n++
		}
	}
	return n
}
