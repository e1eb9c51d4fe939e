package agent

import (
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestDebouncerChangesStateOnlyWhenALabelIsStable(t *testing.T) {
	cat, dog, weakCat, nothing := []float32{.9, .1}, []float32{.2, .8}, []float32{.5, .5}, []float32{.3, .3}
	tests := []struct {
		name   string
		frames [][]float32
		want   []int // state after each frame; changes are where it differs from the previous
	}{
		{"N frames above threshold make a state", [][]float32{cat, cat, cat}, []int{-1, -1, 0}},
		{"an interruption restarts the count", [][]float32{cat, cat, dog, cat, cat, cat}, []int{-1, -1, -1, -1, -1, 0}},
		{"a weak score above release keeps the state", [][]float32{cat, cat, cat, weakCat, weakCat, weakCat, weakCat}, []int{-1, -1, 0, 0, 0, 0, 0}},
		{"N frames below release lose the state", [][]float32{cat, cat, cat, nothing, nothing, nothing}, []int{-1, -1, 0, 0, 0, -1}},
		{"another stable label takes over", [][]float32{cat, cat, cat, dog, dog, dog}, []int{-1, -1, 0, 0, 0, 1}},
		{"scores below threshold never make a state", [][]float32{weakCat, weakCat, weakCat, weakCat}, []int{-1, -1, -1, -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDebouncer(DecisionConfig{Threshold: .6, Release: .4, Frames: 3})
			prev := -1
			for i, f := range tc.frames {
				st, changed := d.Update(f)
				if st != tc.want[i] || changed != (st != prev) {
					t.Fatalf("frame %d: state %d changed %v, want state %d changed %v", i+1, st, changed, tc.want[i], tc.want[i] != prev)
				}
				prev = st
			}
		})
	}
}

func TestTopKOrdersByScoreThenIndex(t *testing.T) {
	got := topK([]float32{.1, .4, .4, .05, .05}, 3)
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 0 {
		t.Errorf("topK = %v, want [1 2 0]", got)
	}
	if got := topK([]float32{.3}, 5); len(got) != 1 {
		t.Errorf("topK of one class with k 5 = %v, want one entry", got)
	}
}

func TestPreprocessResizesAndNormalizes(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 8; x++ {
			img.SetRGBA(x, y, color.RGBA{255, 0, 51, 255})
		}
	}
	info := ModelInfo{Height: 2, Width: 2, Channels: 3, Mean: []float32{0.5}, Std: []float32{0.5, 1, 0.2}}
	dst := make([]float32, 12)
	if err := Preprocess(dst, img, info); err != nil {
		t.Fatal(err)
	}
	want := []float32{1, -0.5, -1.5} // (1-.5)/.5, (0-.5)/1, (.2-.5)/.2
	for i, v := range dst {
		if math.Abs(float64(v-want[i%3])) > 1e-5 {
			t.Fatalf("dst[%d] = %v, want %v (all: %v)", i, v, want[i%3], dst)
		}
	}
	grey := ModelInfo{Height: 3, Width: 3, Channels: 1}
	if err := Preprocess(make([]float32, 9), img, grey); err != nil {
		t.Errorf("grey model: %v", err)
	}
	for _, bad := range []struct {
		name string
		dst  []float32
		info ModelInfo
		img  image.Image
	}{
		{"wrong buffer size", make([]float32, 5), info, img},
		{"4 channels", make([]float32, 16), ModelInfo{Height: 2, Width: 2, Channels: 4}, img},
		{"empty image", make([]float32, 12), info, image.NewRGBA(image.Rectangle{})},
	} {
		if err := Preprocess(bad.dst, bad.img, bad.info); err == nil {
			t.Errorf("%s: no error", bad.name)
		}
	}
}

func TestImagesSourceDecodesFilesInOrderAndLoops(t *testing.T) {
	dir := t.TempDir()
	for i, w := range []int{3, 5} {
		f, err := os.Create(filepath.Join(dir, []string{"a.png", "b.png"}[i]))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, image.NewGray(image.Rect(0, 0, w, 2)))
		f.Close()
	}
	os.WriteFile(filepath.Join(dir, "c.png"), []byte("not a png"), 0o644)
	src, err := OpenSource(CameraConfig{ID: "x", Source: "images:" + filepath.Join(dir, "[ab].png")})
	if err != nil {
		t.Fatal(err)
	}
	var widths []int
	for range 3 {
		f, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		widths = append(widths, f.Image.Bounds().Dx())
	}
	if widths[0] != 3 || widths[1] != 5 || widths[2] != 3 {
		t.Errorf("widths = %v, want [3 5 3]", widths)
	}
	bad, _ := OpenSource(CameraConfig{ID: "x", Source: "images:" + filepath.Join(dir, "c.png")})
	if _, err := bad.Next(context.Background()); err == nil {
		t.Errorf("a file that is not an image gave no error")
	}
	if _, err := OpenSource(CameraConfig{ID: "x", Source: "images:" + filepath.Join(dir, "*.jpg")}); err == nil {
		t.Errorf("a pattern matching nothing gave no error")
	}
	done := &ImageFiles{Files: []string{filepath.Join(dir, "a.png")}}
	done.Next(context.Background())
	if _, err := done.Next(context.Background()); !errors.Is(err, ErrSourceDone) {
		t.Errorf("a finished non-looping source returned %v, want ErrSourceDone", err)
	}
}

func TestLoadModelRefusesWhatIsNotAModel(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "g.tflite")
	os.WriteFile(garbage, []byte("TFL3 but not really"), 0o644)
	for _, p := range []string{garbage, filepath.Join(dir, "missing.tflite")} {
		if _, err := LoadModel(p); err == nil {
			t.Errorf("LoadModel(%s) gave no error", p)
		}
	}
}
