package chart

import (
	"bytes"
	"image"
	"image/png"
	"testing"
)

func TestTimelineDrawsEveryLook(t *testing.T) {
	t.Parallel()
	var looks []Look
	for i := range 20 {
		looks = append(looks, Look{Minutes: float64(i) / 2, Baseline: 2.5, Canary: 2.5 + float64(i)})
	}
	b, err := Timeline("papi sandbox2: latency", "ms", looks, 0.2)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 200 {
		t.Errorf("chart is %v; want a readable size", r)
	}
	if !hasColor(img, 130, 80, 223) {
		t.Error("the canary's line is not drawn")
	}
	if one, err := Timeline("one look", "ms", looks[:1], 0.2); err != nil || len(one) == 0 {
		t.Errorf("one look: %v", err)
	}
	if _, err := Timeline("x", "ms", nil, 0.2); err == nil {
		t.Error("no looks drew a chart; want an error")
	}
}

// hasColor reports whether an image has a pixel of about that colour.
func hasColor(img image.Image, r, g, b uint8) bool {
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d > -12 && d < 12 }
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				return true
			}
		}
	}
	return false
}
