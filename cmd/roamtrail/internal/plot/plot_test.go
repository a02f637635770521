package plot

import (
	"bytes"
	"errors"
	"image/png"
	"math"
	"testing"
)

func TestWrite(t *testing.T) {
	var xs, ys, gaps []float64
	for i := range 100 {
		xs = append(xs, float64(i)/10)
		ys = append(ys, 50+10*math.Sin(float64(i)/5))
		g := float64(i)
		if i%10 == 3 {
			g = math.NaN()
		}
		gaps = append(gaps, g)
	}
	var b bytes.Buffer
	err := Write(&b, Options{Title: "soak: 10 min", XLabel: "minutes"}, []Series{
		{Title: "RSS MB", X: xs, Y: ys}, {Title: "p99 ms (gaps)", X: xs, Y: gaps}, {Title: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() != 1200 || r.Dy() < 2*260 {
		t.Errorf("image is %v", r)
	}
}

func TestBadData(t *testing.T) {
	if _, err := Draw(Options{}, nil); !errors.Is(err, ErrData) {
		t.Errorf("no series: %v", err)
	}
	if _, err := Draw(Options{}, []Series{{X: []float64{1}}}); !errors.Is(err, ErrData) {
		t.Errorf("x without y: %v", err)
	}
}

func TestNiceStep(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 0.25}, {-3, 0.25}, {0.7, 0.8}, {1, 1}, {1.3, 1.5}, {2.2, 2.5}, {3, 3}, {7, 8}, {130, 150}, {1e6 + 1, 1.5e6}} {
		if got := niceStep(tc.in); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("niceStep(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestLabel(t *testing.T) {
	for _, tc := range []struct {
		v, step float64
		want    string
	}{{0, 50, "0"}, {150, 50, "150"}, {0.5, 0.25, "0.50"}, {2.5, 2.5, "2.5"}} {
		if got := label(tc.v, tc.step); got != tc.want {
			t.Errorf("label(%v, %v) = %q, want %q", tc.v, tc.step, got, tc.want)
		}
	}
}
