package gui

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"llmlab/app/cli"
	"llmlab/core/chat"
	"llmlab/core/data"
)

// DataPage previews a dataset as the model will see it: each record
// rendered through the model's chat template, the tokens that carry loss
// set apart from the prompt, and a histogram of token lengths.
type DataPage struct {
	u         *UI
	Path      *widget.Entry
	Preview   *widget.Button
	Kind      *widget.Select
	Generate  *widget.Button
	Error     *widget.Label
	Summary   *widget.Label
	Rows      *widget.RichText
	Histogram *BarChart
	// Tokenizer training on the open text file (llmlab tokenizer train).
	Vocab    *widget.Entry
	TrainTok *widget.Button
	TokInfo  *widget.Label
	view     fyne.CanvasObject
}

const (
	previewRows   = 6
	histRecords   = 4000
	maxTextPrefix = 2 << 20 // bytes of a text corpus read for the preview
)

func newDataPage(u *UI) *DataPage {
	p := &DataPage{u: u}
	p.Path = widget.NewEntry()
	p.Path.SetPlaceHolder("a JSONL dataset (text, prompt/completion, Alpaca, chat, preferences, KTO) or a text file")
	browse := widget.NewButton("Browse…", func() {
		dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
			if err == nil && r != nil {
				p.Path.SetText(r.URI().Path())
				r.Close()
			}
		}, u.Win)
	})
	p.Preview = widget.NewButton("Preview", func() { p.Load(strings.TrimSpace(p.Path.Text), nil) })
	p.Kind = widget.NewSelect([]string{"instruct", "prefs", "stories"}, nil)
	p.Kind.SetSelected("instruct")
	p.Generate = widget.NewButton("Generate demo data", func() { p.GenerateDemo(p.Kind.Selected, nil) })
	p.Vocab = numEntry("4096")
	p.TrainTok = widget.NewButton("Train a tokenizer on this file", func() { p.TrainTokenizer(nil) })
	p.TokInfo = widget.NewLabel("")
	p.Error = widget.NewLabel("")
	p.Error.Importance = widget.DangerImportance
	p.Error.Wrapping = fyne.TextWrapWord
	p.Summary = widget.NewLabel("no dataset open")
	p.Summary.Wrapping = fyne.TextWrapWord
	p.Rows = widget.NewRichText()
	p.Rows.Wrapping = fyne.TextWrapWord
	p.Histogram = NewBarChart("token length per example")
	legend := widget.NewRichText(
		&widget.TextSegment{Text: "prompt (no loss)  ", Style: promptStyle},
		&widget.TextSegment{Text: "trained tokens (loss)", Style: trainStyle})
	top := container.NewVBox(
		container.NewBorder(nil, nil, nil, container.NewHBox(browse, p.Preview), p.Path),
		container.NewHBox(widget.NewLabel("or"), p.Kind, p.Generate, widget.NewLabel("(llmlab data gen, into the runs folder)")),
		container.NewBorder(nil, nil, container.NewHBox(widget.NewLabel("vocabulary"), p.Vocab, p.TrainTok), nil, p.TokInfo),
		p.Error, p.Summary, legend)
	p.view = container.NewBorder(top, nil, nil, nil,
		container.NewVSplit(container.NewVScroll(p.Rows), p.Histogram))
	return p
}

var (
	promptStyle = widget.RichTextStyle{Inline: true, ColorName: theme.ColorNamePlaceHolder, TextStyle: fyne.TextStyle{Monospace: true}}
	trainStyle  = widget.RichTextStyle{Inline: true, ColorName: theme.ColorNameSuccess, TextStyle: fyne.TextStyle{Monospace: true, Bold: true}}
	rejectStyle = widget.RichTextStyle{Inline: true, ColorName: theme.ColorNameError, TextStyle: fyne.TextStyle{Monospace: true}}
	headStyle   = widget.RichTextStyle{Inline: true, ColorName: theme.ColorNamePrimary, TextStyle: fyne.TextStyle{Bold: true}}
)

// GenerateDemo writes the demo data of kind into <runs>/data with
// `llmlab data gen` and previews it.
func (p *DataPage) GenerateDemo(kind string, done func(error)) {
	dir := filepath.Join(p.u.RunsDir, "data")
	var out string
	args := []string{"data", "gen", "--kind", kind}
	switch kind {
	case "stories":
		out = filepath.Join(dir, "stories.txt")
		args = append(args, "--bytes", "300000")
	case "prefs":
		out = filepath.Join(dir, "prefs_train.jsonl")
	default:
		out = filepath.Join(dir, "instruct_train.jsonl")
	}
	args = append(args, "--out", out)
	p.Error.SetText("")
	p.u.background(func() {
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			_, err = p.u.runQuick(args)
		}
		fyne.Do(func() {
			if err != nil {
				p.Error.SetText(err.Error())
				if done != nil {
					done(err)
				}
				return
			}
			p.Path.SetText(out)
			p.Load(out, done)
		})
	})
}

// preview is what Load computes off the UI thread.
type preview struct {
	summary string
	align   bool // preference or KTO data: for the Align page
	rows    []widget.RichTextSegment
	lengths []int
}

// Load previews path in the background; done runs on the UI thread.
func (p *DataPage) Load(path string, done func(error)) {
	finish := func(err error) {
		if done != nil {
			done(err)
		}
	}
	if path == "" {
		p.Error.SetText("give a dataset file, or generate the demo data")
		finish(errors.New("no dataset"))
		return
	}
	p.Error.SetText("")
	p.Summary.SetText("reading " + path + " …")
	m := p.u.Models.Loaded
	p.u.background(func() {
		pv, err := p.compute(path, m)
		fyne.Do(func() {
			if err != nil {
				p.Error.SetText(err.Error())
				p.Summary.SetText("no dataset open")
				finish(err)
				return
			}
			p.Summary.SetText(pv.summary)
			p.Rows.Segments = pv.rows
			p.Rows.Refresh()
			p.Histogram.SetValues(pv.lengths, 24)
			p.Histogram.Refresh()
			p.u.dataOpened(path, pv.align)
			finish(nil)
		})
	})
}

// compute renders the first rows and measures every record (up to
// histRecords) with m's tokenizer and template; without an open model it
// uses the demo model's.
func (p *DataPage) compute(path string, m *cli.Model) (preview, error) {
	if m == nil {
		var err error
		if m, err = cli.LoadModel("demo", "", "cpu", 1); err != nil {
			return preview{}, err
		}
		defer m.Close()
	}
	tok, tmpl := m.Tok, m.Template
	var pv preview
	count := func(text string) int { return len(tok.Encode(text, true)) }
	if !strings.HasSuffix(strings.ToLower(path), ".jsonl") {
		f, err := os.Open(path)
		if err != nil {
			return pv, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTextPrefix))
		if err != nil {
			return pv, fmt.Errorf("%s: %w", path, err)
		}
		docs := strings.Split(string(b), "\n\n")
		for i, d := range docs {
			if strings.TrimSpace(d) == "" {
				continue
			}
			if i < previewRows {
				pv.rows = append(pv.rows, &widget.TextSegment{Text: fmt.Sprintf("document %d\n", i+1), Style: headStyle},
					&widget.TextSegment{Text: d + "\n\n", Style: trainStyle})
			}
			if len(pv.lengths) < histRecords {
				pv.lengths = append(pv.lengths, count(d))
			}
		}
		if len(pv.lengths) == 0 {
			return pv, fmt.Errorf("%s: no text", path)
		}
		pv.summary = fmt.Sprintf("%s: plain text for pretraining, %d documents measured (every token trained); %s", path, len(pv.lengths), lengthStats(pv.lengths))
		return pv, nil
	}
	ds, err := data.LoadJSONL(path)
	if err != nil {
		return pv, err
	}
	pv.align = ds.Shape == data.ShapePreference || ds.Shape == data.ShapeKTO
	trained, total := 0, 0
	for i := range ds.Records {
		r := &ds.Records[i]
		var segs []chat.Segment
		if ds.Shape == data.ShapeText {
			segs = []chat.Segment{{Text: r.Text, Train: true}}
		} else {
			segs, err = tmpl.Render(r.Conversation(), false)
			if err != nil {
				return pv, fmt.Errorf("%s:%d: %w", path, r.Line, err)
			}
		}
		if i < previewRows {
			pv.rows = append(pv.rows, &widget.TextSegment{Text: fmt.Sprintf("line %d\n", r.Line), Style: headStyle})
			for _, s := range segs {
				st := promptStyle
				if s.Train {
					st = trainStyle
				}
				pv.rows = append(pv.rows, &widget.TextSegment{Text: s.Text, Style: st})
			}
			if ds.Shape == data.ShapePreference {
				pv.rows = append(pv.rows, &widget.TextSegment{Text: "\nrejected: " + joinContent(r.Rejected), Style: rejectStyle})
			}
			if ds.Shape == data.ShapeKTO {
				label := "undesirable"
				if r.Label {
					label = "desirable"
				}
				pv.rows = append(pv.rows, &widget.TextSegment{Text: "\nlabel: " + label, Style: headStyle})
			}
			pv.rows = append(pv.rows, &widget.TextSegment{Text: "\n\n", Style: promptStyle})
		}
		if len(pv.lengths) < histRecords {
			n := 0
			for j, s := range segs {
				k := len(tok.Encode(s.Text, j == 0 && !tmpl.IncludesBOS()))
				n += k
				if s.Train {
					trained += k
				}
			}
			total += n
			pv.lengths = append(pv.lengths, n)
		}
	}
	share := 0.0
	if total > 0 {
		share = 100 * float64(trained) / float64(total)
	}
	pv.summary = fmt.Sprintf("%s: %d %s records, template %s; %.0f%% of tokens carry loss; %s",
		path, len(ds.Records), ds.Shape, tmpl, share, lengthStats(pv.lengths))
	return pv, nil
}

func joinContent(msgs []chat.Message) string {
	var parts []string
	for _, m := range msgs {
		parts = append(parts, m.Content)
	}
	return strings.Join(parts, "\n")
}

// lengthStats summarises token lengths: median, 95th percentile, max.
func lengthStats(ls []int) string {
	s := append([]int(nil), ls...)
	sort.Ints(s)
	q := func(f float64) int { return s[min(len(s)-1, int(f*float64(len(s))))] }
	return fmt.Sprintf("tokens per example: median %d, p95 %d, max %d", q(0.5), q(0.95), s[len(s)-1])
}

// TrainTokenizer trains a byte-level BPE tokenizer on the text file in the
// path box (llmlab tokenizer train) into <runs>/tokenizers/<file name>.
func (p *DataPage) TrainTokenizer(done func(error)) {
	finish := func(err error) {
		if err != nil {
			p.Error.SetText(err.Error())
		}
		if done != nil {
			done(err)
		}
	}
	path := strings.TrimSpace(p.Path.Text)
	if path == "" {
		finish(errors.New("choose a text file to train the tokenizer on"))
		return
	}
	vocab, err := posInt("Vocabulary", p.Vocab.Text)
	if err != nil {
		finish(err)
		return
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	out := filepath.Join(p.u.RunsDir, "tokenizers", name)
	args := []string{"tokenizer", "train", "--data", path, "--vocab", fmt.Sprint(vocab), "--out", out}
	p.Error.SetText("")
	p.TokInfo.SetText("training…")
	p.u.background(func() {
		msg, err := p.u.runQuick(args)
		fyne.Do(func() {
			if err != nil {
				p.TokInfo.SetText("")
				finish(err)
				return
			}
			p.TokInfo.SetText(strings.TrimSpace(msg))
			finish(nil)
		})
	})
}
