package camera

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

var benchSizes = []struct{ w, h int }{{640, 480}, {1920, 1080}}

// BenchmarkPreprocess is preprocessing alone: one frame to a 224x224 input.
func BenchmarkPreprocess(b *testing.B) {
	for _, sz := range benchSizes {
		src, _ := randomFrame(b, sz.w, sz.h, 1)
		for _, fit := range []Fit{FitCrop, FitLetterbox} {
			p := newPre(b, PreprocessConfig{Width: 224, Height: 224, Fit: fit, Scale: 0.02,
				Mean: [3]float32{0.485, 0.456, 0.406}, Std: [3]float32{0.229, 0.224, 0.225}})
			i8 := make([]int8, p.Len())
			f32 := make([]float32, p.Len())
			b.Run(fmt.Sprintf("%dx%d/%v/int8", sz.w, sz.h, fit), func(b *testing.B) {
				for b.Loop() {
					if err := p.Int8(src, i8); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
			})
			b.Run(fmt.Sprintf("%dx%d/%v/float32", sz.w, sz.h, fit), func(b *testing.B) {
				for b.Loop() {
					if err := p.Float32(src, f32); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
			})
		}
	}
}

// writeTexturedVideo writes an MJPG video of noisy gradients, which cost
// about what camera pictures cost to decode (solid colours decode far faster).
func writeTexturedVideo(b *testing.B, path string, n, w, h int) {
	vw, err := gocv.VideoWriterFile(path, "MJPG", 25, w, h, true)
	if err != nil {
		b.Fatal(err)
	}
	defer vw.Close()
	var frames []gocv.Mat
	for i := 0; i < 4; i++ {
		m, _ := randomFrame(b, w, h, uint64(i))
		frames = append(frames, m)
	}
	for i := 0; i < n; i++ {
		if err := vw.Write(frames[i%4]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCaptureAndPreprocess is the whole camera path per frame: decode
// an MJPG video on the capture goroutine (looping, unpaced), hand the newest
// frame to Next, and preprocess it to a 224x224 int8 input. Decoding and
// preprocessing overlap on two goroutines, as in the agent.
func BenchmarkCaptureAndPreprocess(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(b *testing.B) {
			p := filepath.Join(b.TempDir(), "bench.avi")
			writeTexturedVideo(b, p, 20, sz.w, sz.h)
			c := openTest(b, Config{Source: "file:" + p + "?loop=1"})
			pre := newPre(b, PreprocessConfig{Width: 224, Height: 224, Scale: 0.02})
			in := make([]int8, pre.Len())
			var f Frame
			defer f.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for b.Loop() {
				if err := c.Next(ctx, &f); err != nil {
					b.Fatal(err)
				}
				if err := pre.Int8(f.Mat, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/frame")
			st := c.Stats()
			b.ReportMetric(float64(st.Dropped)/float64(max(1, st.Frames)), "dropped/frame")
		})
	}
}
