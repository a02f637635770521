// Package plot draws small line charts as PNG with the standard library
// only (image, image/draw, image/png): one panel per series, a shared time
// axis, a y axis from zero so that a flat series looks flat. It exists for
// the soak record (roamtrail bench soak), where a new dependency for a
// handful of lines would cost more than it gives.
package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
)

// Series is one panel: Y against X, both the same length.
type Series struct {
	// Title is drawn above the panel (upper case is how it will look).
	Title string
	X, Y  []float64
}

// Options lay the chart out. Zero values select the defaults.
type Options struct {
	// Title heads the image. Default none.
	Title string
	// XLabel names the x axis under each panel. Default none.
	XLabel string
	// Columns of panels. Default 2.
	Columns int
	// PanelW and PanelH are each panel's size in pixels, labels included.
	// Default 600 by 260.
	PanelW, PanelH int
	// XMax is where the x axis ends (it starts at the least of 0 and the
	// data). Default: the largest x, rounded up to a tidy value.
	XMax float64
}

// ErrData reports series that cannot be drawn.
var ErrData = errors.New("plot: bad data")

var (
	white = color.RGBA{255, 255, 255, 255}
	ink   = color.RGBA{30, 30, 30, 255}
	frame = color.RGBA{150, 150, 150, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	line  = color.RGBA{31, 100, 180, 255}
)

const (
	scale   = 2 // font pixels per glyph dot
	advance = (glyphW + 1) * scale
	lineH   = (glyphH + 3) * scale
)

// Write draws the series and encodes the chart as PNG to w.
func Write(w io.Writer, opts Options, series []Series) error {
	img, err := Draw(opts, series)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// Draw draws the series into an image.
func Draw(opts Options, series []Series) (*image.RGBA, error) {
	if len(series) == 0 {
		return nil, fmt.Errorf("%w: no series", ErrData)
	}
	for _, s := range series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("%w: %q has %d x and %d y", ErrData, s.Title, len(s.X), len(s.Y))
		}
	}
	if opts.Columns <= 0 {
		opts.Columns = 2
	}
	if opts.PanelW <= 0 {
		opts.PanelW = 600
	}
	if opts.PanelH <= 0 {
		opts.PanelH = 260
	}
	top := 0
	if opts.Title != "" {
		top = 2 * lineH
	}
	rows := (len(series) + opts.Columns - 1) / opts.Columns
	img := image.NewRGBA(image.Rect(0, 0, opts.Columns*opts.PanelW, top+rows*opts.PanelH))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	if opts.Title != "" {
		text(img, 16, lineH/2+4, opts.Title, ink, scale)
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, x := range s.X {
			xmin, xmax = min(xmin, x), max(xmax, x)
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 0, 1
	}
	xmin = math.Min(xmin, 0)
	if opts.XMax > xmin {
		xmax = opts.XMax
	} else {
		xmax = xmin + 4*niceStep((xmax-xmin)/4)
	}
	for i, s := range series {
		r := image.Rect(0, 0, opts.PanelW, opts.PanelH).Add(image.Pt(i%opts.Columns*opts.PanelW, top+i/opts.Columns*opts.PanelH))
		panel(img, r, s, xmin, xmax, opts.XLabel)
	}
	return img, nil
}

// panel draws one series in r: title, frame, grid with labels, the line.
func panel(img *image.RGBA, r image.Rectangle, s Series, xmin, xmax float64, xlabel string) {
	const left, right = 12*advance/2 + 16, 24
	plot := image.Rect(r.Min.X+left, r.Min.Y+lineH+8, r.Max.X-right, r.Max.Y-2*lineH-12)
	text(img, r.Min.X+left, r.Min.Y+6, s.Title, ink, scale)
	ymax := 0.0
	for _, y := range s.Y {
		if !math.IsNaN(y) {
			ymax = max(ymax, y)
		}
	}
	ymax = 4 * niceStep(ymax*1.05/4) // headroom: a line on the frame is hard to read
	px := func(x float64) int {
		return plot.Min.X + int(math.Round((x-xmin)/(xmax-xmin)*float64(plot.Dx()-1)))
	}
	py := func(y float64) int {
		return plot.Max.Y - 1 - int(math.Round(y/ymax*float64(plot.Dy()-1)))
	}
	const ticks = 4
	for i := 0; i <= ticks; i++ {
		y := ymax * float64(i) / ticks
		yy := py(y)
		hline(img, plot.Min.X, plot.Max.X-1, yy, grid)
		lbl := label(y, ymax/ticks)
		text(img, plot.Min.X-8-len(lbl)*advance, yy-glyphH*scale/2, lbl, ink, scale)
		x := xmin + (xmax-xmin)*float64(i)/ticks
		xx := px(x)
		vline(img, xx, plot.Min.Y, plot.Max.Y-1, grid)
		lbl = label(x, (xmax-xmin)/ticks)
		text(img, xx-len(lbl)*advance/2, plot.Max.Y+10, lbl, ink, scale)
	}
	if xlabel != "" {
		text(img, plot.Max.X-len(xlabel)*advance, plot.Max.Y+10+lineH, xlabel, ink, scale)
	}
	rect(img, plot, frame)
	prev, have := image.Point{}, false
	for i := range s.X {
		if math.IsNaN(s.Y[i]) {
			have = false // a gap: nothing was measured there
			continue
		}
		p := image.Pt(px(s.X[i]), py(s.Y[i]))
		if have {
			segment(img, prev, p, line)
		} else {
			dot(img, p, line)
		}
		prev, have = p, true
	}
}

// niceStep rounds v up to a tick step that reads well: 1, 1.5, 2, 2.5,
// 3, 4, 5, 6 or 8 times a power of ten (1 for nothing to show).
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0.25
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// label formats a tick value with as many decimals as the step needs.
func label(v, step float64) string {
	dec := 0
	for dec < 3 && math.Abs(step*math.Pow(10, float64(dec))-math.Round(step*math.Pow(10, float64(dec)))) > 1e-6 {
		dec++
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func text(img *image.RGBA, x, y int, s string, c color.RGBA, sc int) {
	for _, r := range s {
		g := glyph(r)
		for gy, row := range g {
			for gx := 0; gx < glyphW; gx++ {
				if row[gx] != '#' {
					continue
				}
				for dy := range sc {
					for dx := range sc {
						img.SetRGBA(x+gx*sc+dx, y+gy*sc+dy, c)
					}
				}
			}
		}
		x += (glyphW + 1) * sc
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func rect(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X-1, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X-1, r.Max.Y-1, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y-1, c)
	vline(img, r.Max.X-1, r.Min.Y, r.Max.Y-1, c)
}

func dot(img *image.RGBA, p image.Point, c color.RGBA) {
	for dy := range 2 {
		for dx := range 2 {
			img.SetRGBA(p.X+dx, p.Y+dy, c)
		}
	}
}

// segment draws a line two pixels thick (Bresenham).
func segment(img *image.RGBA, a, b image.Point, c color.RGBA) {
	dx, dy := abs(b.X-a.X), -abs(b.Y-a.Y)
	sx, sy := sign(b.X-a.X), sign(b.Y-a.Y)
	e := dx + dy
	for {
		dot(img, a, c)
		if a == b {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			a.X += sx
		}
		if e2 <= dx {
			e += dx
			a.Y += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
