// Command icon draws llmlab's app icon, assets/icon.png (256x256): a
// rounded square shaded from blue to violet with a falling loss curve and
// three nodes in white. Run from the repository root:
//
//	go run ./tools/icon
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
)

func main() {
	out := flag.String("out", "assets/icon.png", "output PNG")
	size := flag.Int("size", 256, "width and height in pixels")
	flag.Parse()
	if err := write(*out, draw(*size)); err != nil {
		fmt.Fprintln(os.Stderr, "icon:", err)
		os.Exit(1)
	}
}

// draw renders the icon at n x n. Every shape is a coverage function
// sampled 4x4 per pixel, so edges are smooth without a vector library.
func draw(n int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	s := float64(n)
	// The curve: a decaying loss, from top left to bottom right.
	curve := func(x float64) float64 { // x, y in [0,1] of the plot box
		return 0.15 + 0.7*math.Exp(-4*x) + 0.04*math.Sin(14*x)*math.Exp(-2*x)
	}
	const pad, plot0, plot1 = 0.06, 0.2, 0.8
	nodes := [][2]float64{{0.02, 0}, {0.45, 0}, {0.98, 0}}
	for i := range nodes {
		nodes[i][1] = curve(nodes[i][0])
	}
	toPx := func(x, y float64) (float64, float64) {
		return plot0 + x*(plot1-plot0), plot1 - y*(plot1-plot0) // y up
	}
	for py := 0; py < n; py++ {
		for px := 0; px < n; px++ {
			var bgA, white float64
			for sy := 0; sy < 4; sy++ {
				for sx := 0; sx < 4; sx++ {
					x := (float64(px) + (float64(sx)+0.5)/4) / s
					y := (float64(py) + (float64(sy)+0.5)/4) / s
					if !roundedRect(x, y, pad, 0.2) {
						continue
					}
					bgA++
					if onCurve(x, y, curve, toPx) || onNode(x, y, nodes, toPx) {
						white++
					}
				}
			}
			if bgA == 0 {
				continue
			}
			t := (float64(px) + float64(py)) / (2 * s)
			bg := [3]float64{40 + 70*t, 100 - 40*t, 230 - 10*t} // blue to violet
			w := white / bgA
			c := color.NRGBA{
				R: uint8(bg[0]*(1-w) + 255*w),
				G: uint8(bg[1]*(1-w) + 255*w),
				B: uint8(bg[2]*(1-w) + 255*w),
				A: uint8(255 * bgA / 16),
			}
			img.SetNRGBA(px, py, c)
		}
	}
	return img
}

// roundedRect reports whether (x, y) lies in the square inset by pad with
// corner radius r (all in units of the icon's size).
func roundedRect(x, y, pad, r float64) bool {
	lo, hi := pad+r, 1-pad-r
	cx, cy := math.Max(lo, math.Min(hi, x)), math.Max(lo, math.Min(hi, y))
	return math.Hypot(x-cx, y-cy) <= r
}

// onCurve reports whether (x, y) is within the stroke of the curve.
func onCurve(x, y float64, f func(float64) float64, toPx func(x, y float64) (float64, float64)) bool {
	const width = 0.028
	best := math.Inf(1)
	for i := 0; i <= 200; i++ {
		u := float64(i) / 200
		cx, cy := toPx(u, f(u))
		best = math.Min(best, math.Hypot(x-cx, y-cy))
	}
	return best <= width
}

// onNode reports whether (x, y) is inside one of the node discs.
func onNode(x, y float64, nodes [][2]float64, toPx func(x, y float64) (float64, float64)) bool {
	for _, nd := range nodes {
		cx, cy := toPx(nd[0], nd[1])
		if math.Hypot(x-cx, y-cy) <= 0.06 {
			return true
		}
	}
	return false
}

func write(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
