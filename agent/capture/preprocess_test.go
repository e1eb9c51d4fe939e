package capture

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
)

func TestPreprocessResizesAndNormalizes(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 8; x++ {
			img.SetRGBA(x, y, color.RGBA{255, 0, 51, 255})
		}
	}
	info := classify.ModelInfo{Height: 2, Width: 2, Channels: 3, Mean: []float32{0.5}, Std: []float32{0.5, 1, 0.2}}
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
	grey := classify.ModelInfo{Height: 3, Width: 3, Channels: 1}
	if err := Preprocess(make([]float32, 9), img, grey); err != nil {
		t.Errorf("grey model: %v", err)
	}
	for _, bad := range []struct {
		name string
		dst  []float32
		info classify.ModelInfo
		img  image.Image
	}{
		{"wrong buffer size", make([]float32, 5), info, img},
		{"4 channels", make([]float32, 16), classify.ModelInfo{Height: 2, Width: 2, Channels: 4}, img},
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
	info := classify.ModelInfo{Height: 2, Width: 2, Channels: 3, Mean: []float32{0}, Std: []float32{1}}
	R, G, B, K := []float32{1, 0, 0}, []float32{0, 1, 0}, []float32{0, 0, 1}, []float32{0, 0, 0}
	px := func(ps ...[]float32) []float32 { return slices.Concat(ps...) }
	for _, tc := range []struct {
		name string
		cfg  config.PreprocessConfig
		want []float32
	}{
		{"stretch keeps both ends", config.PreprocessConfig{Fit: config.FitStretch}, px(R, B, R, B)},
		{"crop keeps the centre", config.PreprocessConfig{Fit: config.FitCrop}, px(G, G, G, G)},
		{"an empty fit is crop", config.PreprocessConfig{}, px(G, G, G, G)},
		{"letterbox keeps everything and pads black", config.PreprocessConfig{Fit: config.FitLetterbox}, px(R, B, K, K)},
		{"the region of interest is cut first", config.PreprocessConfig{Fit: config.FitStretch, ROI: []int{40, 0, 60, 20}}, px(B, B, B, B)},
		{"mean and std override the model's", config.PreprocessConfig{Fit: config.FitCrop, Mean: []float64{0.5}, Std: []float64{0.5, 0.25, 0.5}},
			px([]float32{-1, 2, -1}, []float32{-1, 2, -1}, []float32{-1, 2, -1}, []float32{-1, 2, -1})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, 12)
			if err := Apply(tc.cfg, dst, img, info); err != nil {
				t.Fatal(err)
			}
			for i := range dst {
				if math.Abs(float64(dst[i]-tc.want[i])) > 1e-3 {
					t.Fatalf("got %v, want %v", dst, tc.want)
				}
			}
		})
	}
	if err := Apply(config.PreprocessConfig{ROI: []int{100, 100, 120, 120}}, make([]float32, 12), img, info); err == nil {
		t.Errorf("a region of interest outside the frame gave no error")
	}
}

func TestThumbnailsAreSmallJPEGsOfTheModelInput(t *testing.T) {
	for _, tc := range []struct {
		name       string
		info       classify.ModelInfo
		size, w, h int
	}{
		{"a large input is scaled down to the size", classify.ModelInfo{Height: 100, Width: 200, Channels: 3}, 96, 96, 48},
		{"a small input stays as it is", classify.ModelInfo{Height: 32, Width: 32, Channels: 1, Mean: []float32{0.5}, Std: []float32{0.25}}, 96, 32, 32},
	} {
		t.Run(tc.name, func(t *testing.T) {
			px := make([]float32, tc.info.Height*tc.info.Width*tc.info.Channels)
			for i := range px {
				px[i] = float32(i%7) / 7
			}
			b, err := Thumbnail(px, tc.info, config.PreprocessConfig{}, tc.size)
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
