package gui

import (
	"fmt"
	"image/color"
	"math"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// Point is one (x, y) sample of a series.
type Point struct{ X, Y float64 }

// Series is a named line of a chart.
type Series struct {
	Name   string
	Color  color.Color
	Points []Point
}

// LineChart draws a few series as polylines of canvas.Line segments over
// shared axes, with the y range and the last x written at the edges. It is
// small on purpose: a loss curve needs no more. Points may be added from
// any goroutine; Refresh must come through fyne.Do.
type LineChart struct {
	widget.BaseWidget
	mu     sync.Mutex
	series []Series
	// MaxPoints caps what is drawn per series: longer series are thinned
	// to every k-th point (the last is always drawn).
	MaxPoints int
}

// NewLineChart makes a chart with the named series, coloured in order
// from the theme's primary and warning colours.
func NewLineChart(names ...string) *LineChart {
	c := &LineChart{MaxPoints: 400}
	colors := []color.Color{
		color.NRGBA{R: 0x29, G: 0x6f, B: 0xf6, A: 0xff}, // blue
		color.NRGBA{R: 0xf5, G: 0x8a, B: 0x07, A: 0xff}, // orange
		color.NRGBA{R: 0x2e, G: 0xa0, B: 0x43, A: 0xff}, // green
	}
	for i, n := range names {
		c.series = append(c.series, Series{Name: n, Color: colors[i%len(colors)]})
	}
	c.ExtendBaseWidget(c)
	return c
}

// Add appends a point to series i.
func (c *LineChart) Add(i int, x, y float64) {
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return
	}
	c.mu.Lock()
	c.series[i].Points = append(c.series[i].Points, Point{x, y})
	c.mu.Unlock()
}

// SetName renames series i (for the legend).
func (c *LineChart) SetName(i int, name string) {
	c.mu.Lock()
	c.series[i].Name = name
	c.mu.Unlock()
}

// Clear removes every point.
func (c *LineChart) Clear() {
	c.mu.Lock()
	for i := range c.series {
		c.series[i].Points = nil
	}
	c.mu.Unlock()
}

// Len returns the number of points in series i.
func (c *LineChart) Len(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.series[i].Points)
}

// snapshot copies the series, thinned to MaxPoints each.
func (c *LineChart) snapshot() []Series {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Series, len(c.series))
	for i, s := range c.series {
		out[i] = Series{Name: s.Name, Color: s.Color}
		n := len(s.Points)
		k := 1
		if c.MaxPoints > 0 && n > c.MaxPoints {
			k = (n + c.MaxPoints - 1) / c.MaxPoints
		}
		for j := 0; j < n; j += k {
			out[i].Points = append(out[i].Points, s.Points[j])
		}
		if n > 0 && (n-1)%k != 0 {
			out[i].Points = append(out[i].Points, s.Points[n-1])
		}
	}
	return out
}

func (c *LineChart) CreateRenderer() fyne.WidgetRenderer {
	r := &chartRenderer{c: c, bg: canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))}
	r.rebuild()
	return r
}

type chartRenderer struct {
	c       *LineChart
	bg      *canvas.Rectangle
	objects []fyne.CanvasObject
	size    fyne.Size
}

const chartPad = 8

func (r *chartRenderer) MinSize() fyne.Size { return fyne.NewSize(240, 140) }
func (r *chartRenderer) Destroy()           {}
func (r *chartRenderer) Objects() []fyne.CanvasObject {
	return r.objects
}

func (r *chartRenderer) Layout(s fyne.Size) {
	r.size = s
	r.rebuild()
}

func (r *chartRenderer) Refresh() {
	r.bg.FillColor = theme.Color(theme.ColorNameInputBackground)
	r.rebuild()
	canvas.Refresh(r.c)
}

// rebuild lays the chart out again from the data: one canvas.Line per
// segment, axis lines and labels. A few hundred objects redrawn a few
// times a second is cheap next to a training step.
func (r *chartRenderer) rebuild() {
	s := r.size
	r.bg.Resize(s)
	r.objects = []fyne.CanvasObject{r.bg}
	series := r.c.snapshot()
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, sr := range series {
		for _, p := range sr.Points {
			xmin, xmax = min(xmin, p.X), max(xmax, p.X)
			ymin, ymax = min(ymin, p.Y), max(ymax, p.Y)
		}
	}
	fg := theme.Color(theme.ColorNameForeground)
	label := func(text string, pos fyne.Position, right bool) {
		t := canvas.NewText(text, fg)
		t.TextSize = theme.CaptionTextSize()
		ms := t.MinSize()
		if right {
			pos.X -= ms.Width
		}
		t.Move(pos)
		t.Resize(ms)
		r.objects = append(r.objects, t)
	}
	// The plot area leaves room for labels on the left and below.
	left, top := float32(chartPad+44), float32(chartPad+16)
	right, bottom := s.Width-chartPad, s.Height-chartPad-16
	if right <= left+10 || bottom <= top+10 {
		return
	}
	axis := theme.Color(theme.ColorNameDisabled)
	for _, l := range [][4]float32{{left, top, left, bottom}, {left, bottom, right, bottom}} {
		ln := canvas.NewLine(axis)
		ln.StrokeWidth = 1
		ln.Position1, ln.Position2 = fyne.NewPos(l[0], l[1]), fyne.NewPos(l[2], l[3])
		r.objects = append(r.objects, ln)
	}
	// Legend, top left.
	lx := left
	for _, sr := range series {
		sw := canvas.NewRectangle(sr.Color)
		sw.Move(fyne.NewPos(lx, chartPad+4))
		sw.Resize(fyne.NewSize(10, 4))
		r.objects = append(r.objects, sw)
		t := canvas.NewText(sr.Name, fg)
		t.TextSize = theme.CaptionTextSize()
		t.Move(fyne.NewPos(lx+14, chartPad-2))
		t.Resize(t.MinSize())
		r.objects = append(r.objects, t)
		lx += 14 + t.MinSize().Width + 12
	}
	if math.IsInf(xmin, 1) {
		label("no data yet", fyne.NewPos(left+8, top+8), false)
		return
	}
	if ymax-ymin < 1e-9 {
		ymin, ymax = ymin-0.5, ymax+0.5
	}
	if xmax-xmin < 1e-9 {
		xmin, xmax = xmin-1, xmax+1
	}
	label(fmt.Sprintf("%.3g", ymax), fyne.NewPos(left-4, top-6), true)
	label(fmt.Sprintf("%.3g", ymin), fyne.NewPos(left-4, bottom-12), true)
	label(fmt.Sprintf("%.0f", xmin), fyne.NewPos(left, bottom+2), false)
	label(fmt.Sprintf("%.0f", xmax), fyne.NewPos(right, bottom+2), true)
	px := func(p Point) fyne.Position {
		x := left + float32((p.X-xmin)/(xmax-xmin))*(right-left)
		y := bottom - float32((p.Y-ymin)/(ymax-ymin))*(bottom-top)
		return fyne.NewPos(x, y)
	}
	for _, sr := range series {
		if len(sr.Points) == 1 {
			dot := canvas.NewCircle(sr.Color)
			p := px(sr.Points[0])
			dot.Move(fyne.NewPos(p.X-3, p.Y-3))
			dot.Resize(fyne.NewSize(6, 6))
			r.objects = append(r.objects, dot)
			continue
		}
		for i := 1; i < len(sr.Points); i++ {
			ln := canvas.NewLine(sr.Color)
			ln.StrokeWidth = 2
			ln.Position1, ln.Position2 = px(sr.Points[i-1]), px(sr.Points[i])
			r.objects = append(r.objects, ln)
		}
	}
}

// BarChart is a histogram: one bar per bin, the bin edges under it.
type BarChart struct {
	widget.BaseWidget
	mu     sync.Mutex
	counts []int
	lo, hi float64 // range of the bins
	Title  string
}

// NewBarChart makes an empty histogram.
func NewBarChart(title string) *BarChart {
	b := &BarChart{Title: title}
	b.ExtendBaseWidget(b)
	return b
}

// SetValues bins values into n equal bins over their range.
func (b *BarChart) SetValues(values []int, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.counts = nil
	if len(values) == 0 || n <= 0 {
		return
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	b.lo, b.hi = float64(lo), float64(hi)+1
	b.counts = make([]int, n)
	w := (b.hi - b.lo) / float64(n)
	for _, v := range values {
		i := min(int((float64(v)-b.lo)/w), n-1)
		b.counts[i]++
	}
}

// Counts returns the bin counts.
func (b *BarChart) Counts() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.counts...)
}

func (b *BarChart) CreateRenderer() fyne.WidgetRenderer {
	r := &barRenderer{b: b}
	r.rebuild()
	return r
}

type barRenderer struct {
	b       *BarChart
	objects []fyne.CanvasObject
	size    fyne.Size
}

func (r *barRenderer) MinSize() fyne.Size           { return fyne.NewSize(240, 140) }
func (r *barRenderer) Destroy()                     {}
func (r *barRenderer) Objects() []fyne.CanvasObject { return r.objects }
func (r *barRenderer) Layout(s fyne.Size)           { r.size = s; r.rebuild() }
func (r *barRenderer) Refresh()                     { r.rebuild(); canvas.Refresh(r.b) }

func (r *barRenderer) rebuild() {
	s := r.size
	bg := canvas.NewRectangle(theme.Color(theme.ColorNameInputBackground))
	bg.Resize(s)
	r.objects = []fyne.CanvasObject{bg}
	fg := theme.Color(theme.ColorNameForeground)
	text := func(t string, pos fyne.Position, alignRight bool) {
		c := canvas.NewText(t, fg)
		c.TextSize = theme.CaptionTextSize()
		if alignRight {
			pos.X -= c.MinSize().Width
		}
		c.Move(pos)
		c.Resize(c.MinSize())
		r.objects = append(r.objects, c)
	}
	text(r.b.Title, fyne.NewPos(chartPad, chartPad-2), false)
	counts := r.b.Counts()
	left, top := float32(chartPad+36), float32(chartPad+18)
	right, bottom := s.Width-chartPad, s.Height-chartPad-16
	if len(counts) == 0 || right <= left+10 || bottom <= top+10 {
		return
	}
	most := 1
	for _, c := range counts {
		most = max(most, c)
	}
	bw := (right - left) / float32(len(counts))
	fill := theme.Color(theme.ColorNamePrimary)
	for i, c := range counts {
		h := float32(c) / float32(most) * (bottom - top)
		rect := canvas.NewRectangle(fill)
		rect.Move(fyne.NewPos(left+float32(i)*bw+1, bottom-h))
		rect.Resize(fyne.NewSize(max(bw-2, 1), h))
		r.objects = append(r.objects, rect)
	}
	text(fmt.Sprint(most), fyne.NewPos(left-4, top-6), true)
	text(fmt.Sprintf("%.0f", r.b.lo), fyne.NewPos(left, bottom+2), false)
	text(fmt.Sprintf("%.0f tokens", r.b.hi), fyne.NewPos(right, bottom+2), true)
}
