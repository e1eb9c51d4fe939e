package agent

import (
	"github.com/shortcut-edge/shortcut/resnet/modelio"

	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTopKOrdersByScoreThenIndex(t *testing.T) {
	got := modelio.TopK(nil, []float32{.1, .4, .4, .05, .05}, 3)
	if len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 0 {
		t.Errorf("topK = %v, want [1 2 0]", got)
	}
	if got := modelio.TopK(nil, []float32{.3}, 5); len(got) != 1 {
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

func TestPreprocessConfigFitsCutsAndNormalizesLikeTheCameraPackage(t *testing.T) {
	// 60x20: red, green and blue thirds.
	img := image.NewRGBA(image.Rect(0, 0, 60, 20))
	for y := 0; y < 20; y++ {
		for x := 0; x < 60; x++ {
			img.SetRGBA(x, y, []color.RGBA{{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}}[x/20])
		}
	}
	info := ModelInfo{Height: 2, Width: 2, Channels: 3, Mean: []float32{0}, Std: []float32{1}}
	R, G, B, K := []float32{1, 0, 0}, []float32{0, 1, 0}, []float32{0, 0, 1}, []float32{0, 0, 0}
	px := func(ps ...[]float32) []float32 { return slices.Concat(ps...) }
	for _, tc := range []struct {
		name string
		cfg  PreprocessConfig
		want []float32
	}{
		{"stretch keeps both ends", PreprocessConfig{Fit: FitStretch}, px(R, B, R, B)},
		{"crop keeps the centre", PreprocessConfig{Fit: FitCrop}, px(G, G, G, G)},
		{"an empty fit is crop", PreprocessConfig{}, px(G, G, G, G)},
		{"letterbox keeps everything and pads black", PreprocessConfig{Fit: FitLetterbox}, px(R, B, K, K)},
		{"the region of interest is cut first", PreprocessConfig{Fit: FitStretch, ROI: []int{40, 0, 60, 20}}, px(B, B, B, B)},
		{"mean and std override the model's", PreprocessConfig{Fit: FitCrop, Mean: []float64{0.5}, Std: []float64{0.5, 0.25, 0.5}},
			px([]float32{-1, 2, -1}, []float32{-1, 2, -1}, []float32{-1, 2, -1}, []float32{-1, 2, -1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, 12)
			if err := tc.cfg.Apply(dst, img, info); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				if math.Abs(float64(dst[i]-tc.want[i])) > 1e-3 {
					t.Fatalf("got %v, want %v", dst, tc.want)
				}
			}
		})
	}
	if err := (PreprocessConfig{ROI: []int{100, 100, 120, 120}}).Apply(make([]float32, 12), img, info); err == nil {
		t.Errorf("a region of interest outside the frame gave no error")
	}
}

func TestImagesSourceDecodesFilesInOrderAndLoopsWhenAsked(t *testing.T) {
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
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an image"), 0o644)
	widths := func(source string, n int) ([]int, error) {
		src, err := OpenSource(CameraConfig{ID: "x", Source: source})
		if err != nil {
			return nil, err
		}
		var out []int
		for range n {
			f, err := src.Next(context.Background())
			if err != nil {
				return out, err
			}
			out = append(out, f.Image.Bounds().Dx())
		}
		return out, nil
	}
	for _, tc := range []struct {
		name, source string
		n            int
		want         []int
		wantErr      error
	}{
		{"a glob with loop=1 starts over", "images:" + filepath.Join(dir, "[ab].png") + "?loop=1", 3, []int{3, 5, 3}, nil},
		{"a glob without loop ends", "images:" + filepath.Join(dir, "[ab].png"), 3, []int{3, 5}, ErrSourceDone},
		{"loop=0 ends too", "images:" + filepath.Join(dir, "[ab].png") + "?loop=0", 3, []int{3, 5}, ErrSourceDone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := widths(tc.source, tc.n)
			if !slices.Equal(got, tc.want) || !errors.Is(err, tc.wantErr) {
				t.Errorf("widths %v, err %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	t.Run("a folder gives its images in name order", func(t *testing.T) {
		// c.png is not a PNG: its turn is an error, then the source goes on.
		src, err := OpenSource(CameraConfig{ID: "x", Source: "images:" + dir})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range 4 {
			f, err := src.Next(context.Background())
			switch {
			case errors.Is(err, ErrSourceDone):
				got = append(got, "done")
			case err != nil:
				got = append(got, "error")
			default:
				got = append(got, fmt.Sprint(f.Image.Bounds().Dx()))
			}
		}
		if want := []string{"3", "5", "error", "done"}; !slices.Equal(got, want) {
			t.Errorf("folder gave %v, want %v", got, want)
		}
	})
	for _, bad := range []string{"images:" + filepath.Join(dir, "*.jpg"), "images:", "images:" + dir + "?loop=sometimes", "images:[", "webcam"} {
		if _, err := OpenSource(CameraConfig{ID: "x", Source: bad}); err == nil {
			t.Errorf("OpenSource(%q) gave no error", bad)
		}
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

func TestThumbnailsAreSmallJPEGsOfTheModelInput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		info       ModelInfo
		size, w, h int
	}{
		{"a large input is scaled down to the size", ModelInfo{Height: 100, Width: 200, Channels: 3}, 96, 96, 48},
		{"a small input stays as it is", ModelInfo{Height: 32, Width: 32, Channels: 1, Mean: []float32{0.5}, Std: []float32{0.25}}, 96, 32, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := make([]float32, tc.info.Height*tc.info.Width*tc.info.Channels)
			for i := range px {
				px[i] = float32(i%7) / 7
			}
			b, err := thumbnail(px, tc.info, PreprocessConfig{}, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil || img.Bounds().Dx() != tc.w || img.Bounds().Dy() != tc.h {
				t.Fatalf("thumbnail: %v, %v; want a %dx%d JPEG", err, img.Bounds(), tc.w, tc.h)
			}
		})
	}
}
