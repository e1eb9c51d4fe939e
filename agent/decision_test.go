package agent

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet/modelio"
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
