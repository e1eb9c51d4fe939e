package agent_test

import (
	"image"
	"image/color"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/agent/capture"
)

// recordingModel wraps a Classifier and keeps a copy of the last input a
// session ran: the interpreter's input tensor for a float-input model.
type recordingModel struct {
	agent.Classifier
	mu   sync.Mutex
	last []float32
}

func (r *recordingModel) NewSession() agent.Session {
	return &recordingSession{Session: r.Classifier.NewSession(), r: r}
}

func (r *recordingModel) lastInput() []float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]float32(nil), r.last...)
}

type recordingSession struct {
	agent.Session
	r *recordingModel
}

func (s *recordingSession) Run() ([]float32, error) {
	s.r.mu.Lock()
	s.r.last = append(s.r.last[:0], s.Input()...)
	s.r.mu.Unlock()
	return s.Session.Run()
}

func solid(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// checkContentInput checks a 16x16x3 input normalized with mean 0.5, std
// 0.25: black (pixel 0, so exactly -2) outside the centred 12x12 area at
// (2, 2), the colour want (0..1 per channel) inside it.
func checkContentInput(t *testing.T, in []float32, want [3]float32) {
	t.Helper()
	if len(in) != 16*16*3 {
		t.Fatalf("input of %d values, want 16x16x3", len(in))
	}
	bad := 0
	for y := range 16 {
		for x := range 16 {
			for k := range 3 {
				v := in[(y*16+x)*3+k]
				inside := x >= 2 && x < 14 && y >= 2 && y < 14
				ok := v == -2
				if inside {
					ok = math.Abs(float64(v-(want[k]-0.5)/0.25)) < 0.02
				}
				if !ok {
					if bad++; bad < 5 {
						t.Errorf("input (%d,%d) channel %d = %v; inside the content area %v", x, y, k, v, inside)
					}
				}
			}
		}
	}
}

// TestAModelTrainedOnPaddedImagesSeesFramesInItsContentArea runs the agent
// on a real int8 model whose metadata says image_size [12, 12] in its 16x16
// input: LoadModel reports it, the start log names it, and the input tensor
// the interpreter receives holds the frame in the centred 12x12 area and
// black (normalized: -mean/std) around it, as training's pad_to made it.
func TestAModelTrainedOnPaddedImagesSeesFramesInItsContentArea(t *testing.T) {
	path := agenttest.WriteModel(t, t.TempDir(), agenttest.ModelConfig{Labels: []string{"cat", "dog", "empty"}, Seed: 11,
		ImageSize: [2]int{12, 12}})
	c, err := agent.LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	if info := c.Info(); info.ContentHeight != 12 || info.ContentWidth != 12 || info.Height != 16 {
		t.Fatalf("model info %+v, want a 12x12 content area in a 16x16 input", info)
	}
	if _, err := c.(agent.HeadModel).BaseHead(); err != nil {
		t.Errorf("BaseHead of a model with image_size: %v", err)
	}
	rec := &recordingModel{Classifier: c}

	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Model.Path = path
	cfg.Cameras[0].FPS = 100
	cfg.Cameras[0].Preprocess.Fit = agent.FitStretch
	src := agenttest.Images(solid(40, 30, color.RGBA{255, 0, 51, 255}))
	src.Loop = true
	var logs syncBuffer
	a, err := agent.New(cfg, agent.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return rec, nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	waitUntil(t, "a frame classified", func() bool { return len(rec.lastInput()) > 0 })
	checkContentInput(t, rec.lastInput(), [3]float32{1, 0, 0.2})
	waitUntil(t, "the start log", func() bool { return strings.Contains(logs.String(), "agent running") })
	if l := logs.String(); !strings.Contains(l, "input=16x16x3") || !strings.Contains(l, `image_size="12x12 centred, black border"`) {
		t.Errorf("the start log does not name the content area:\n%s", l)
	}
}

func TestApplyFitsTheFrameIntoTheContentArea(t *testing.T) {
	info := agent.ModelInfo{Height: 16, Width: 16, Channels: 3, Mean: []float32{0.5}, Std: []float32{0.25}, ContentHeight: 12, ContentWidth: 12}
	img := solid(40, 30, color.RGBA{0, 255, 102, 255})
	for _, fit := range []string{agent.FitCrop, agent.FitStretch} {
		dst := make([]float32, 16*16*3)
		if err := capture.Apply(agent.PreprocessConfig{Fit: fit}, dst, img, info); err != nil {
			t.Fatal(err)
		}
		checkContentInput(t, dst, [3]float32{0, 1, 0.4})
	}
	// Letterbox: 40x30 in 12x12 is 12x9 at (2, 3.5 -> 3) inside the area;
	// its bars are black too.
	dst := make([]float32, 16*16*3)
	if err := capture.Apply(agent.PreprocessConfig{Fit: agent.FitLetterbox}, dst, img, info); err != nil {
		t.Fatal(err)
	}
	for y := range 16 {
		want := float32(-2)
		if y >= 2+1 && y < 2+1+9 {
			want = 2 // green, (1-0.5)/0.25
		}
		if got := dst[(y*16+8)*3+1]; math.Abs(float64(got-want)) > 0.02 {
			t.Errorf("letterbox row %d green = %v, want %v", y, got, want)
		}
	}
}
