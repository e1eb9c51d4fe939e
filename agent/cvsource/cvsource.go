// Package cvsource connects real cameras to the agent: it implements
// capture.FrameSource on package camera (OpenCV through gocv), so that the
// agent package itself stays free of cgo.
//
// Frames come from camera.Open (V4L2 cameras, video files, image folders,
// RTSP, MJPEG over HTTP, GStreamer pipelines; the camera reopens a failed
// source with back-off) and go through camera.Preprocessor (region of
// interest, crop/letterbox/stretch, normalization, in OpenCV) straight into
// capture.Frame.Pixels, the model's HWC float32 input, sized and normalized
// for the model the agent says is running (capture.ModelAware). The source
// also serves /snapshot.jpg from the camera's full frame
// (capture.Snapshotter) and reports the camera's state and counters
// (capture.StatsSource) for /metrics and /healthz.
//
//	a, err := agent.New(cfg, agent.Options{
//		OpenSource:  cvsource.Opener(cvsource.Options{}),
//		CheckSource: cvsource.Check,
//	})
package cvsource

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shortcut-edge/shortcut/agent/capture"
	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
	"github.com/shortcut-edge/shortcut/camera"
)

// Options tune the cameras an Opener opens. Zero values take the camera
// package's defaults.
type Options struct {
	Logger *slog.Logger
	// ReadTimeout: a live source without a frame for this long is
	// reopened (default 5s).
	ReadTimeout time.Duration
	// Backoff paces reopen attempts (default 250ms doubling to 30s).
	Backoff camera.Backoff
}

// Check is the config.SourceChecker that goes with Opener: "synthetic", or
// a camera source string (camera.ParseSource). Video files and image
// folders must exist; devices and streams may appear later.
func Check(s string) error {
	if s == "synthetic" {
		return nil
	}
	spec, err := camera.ParseSource(s)
	if err != nil {
		return err
	}
	switch spec.Kind {
	case camera.KindFile:
		if _, err := os.Stat(spec.Path); err != nil {
			return fmt.Errorf("%q: video file: %w", s, err)
		}
	case camera.KindImages:
		if st, err := os.Stat(spec.Path); err == nil && st.IsDir() {
			return nil
		}
		if m, _ := filepath.Glob(spec.Path); len(m) == 0 {
			return fmt.Errorf("%q: no folder or file matches %q", s, spec.Path)
		}
	}
	return nil
}

// Opener returns the capture.SourceOpener for camera sources; "synthetic"
// goes to capture.OpenSource.
func Opener(o Options) capture.SourceOpener {
	return func(cc config.CameraConfig) (capture.FrameSource, error) {
		if cc.Source == "synthetic" {
			return capture.OpenSource(cc)
		}
		return Open(cc, o)
	}
}

// Source is one camera as an capture.FrameSource.
type Source struct {
	id  string
	cam *camera.Camera
	pc  config.PreprocessConfig

	model atomic.Pointer[classify.ModelInfo] // set by the agent (SetModel)

	// Used by Next only (the agent's capture goroutine).
	frame camera.Frame
	pre   *camera.Preprocessor
	preOf classify.ModelInfo // the model pre was made for

	closeOnce sync.Once
}

// Open starts capturing from cc.Source (see package camera for the
// strings). A malformed string and a missing file fail here; a camera or
// stream that cannot be reached yet does not: it is retried in the
// background, and the agent reports it as reconnecting.
func Open(cc config.CameraConfig, o Options) (*Source, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	cam, err := camera.Open(context.Background(), camera.Config{Source: cc.Source, FPS: cc.FPS, ReadTimeout: o.ReadTimeout,
		Backoff: o.Backoff, Logger: log.With("camera", cc.ID)})
	if err != nil {
		return nil, fmt.Errorf("camera %q: %w", cc.ID, err)
	}
	return &Source{id: cc.ID, cam: cam, pc: cc.Preprocess}, nil
}

// SetModel says which model the pixels are for; Next makes its
// preprocessor again when the model's input changes.
func (s *Source) SetModel(info classify.ModelInfo) { s.model.Store(&info) }

// Next waits for the camera's next frame and returns it as the model's
// input (Frame.Pixels). io.EOF ends a file or folder without loop.
func (s *Source) Next(ctx context.Context) (capture.Frame, error) {
	info := s.model.Load()
	if info == nil {
		return capture.Frame{}, fmt.Errorf("camera %q: no model set (capture.ModelAware.SetModel must come before Next)", s.id)
	}
	if err := s.cam.Next(ctx, &s.frame); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, camera.ErrClosed) {
			return capture.Frame{}, capture.ErrSourceDone
		}
		return capture.Frame{}, err
	}
	if err := s.preprocessor(*info); err != nil {
		return capture.Frame{}, err
	}
	// A new slice per frame: the agent keeps the frame while it passes
	// through the pipeline's queues.
	px := make([]float32, s.pre.Len())
	if err := s.pre.Float32(s.frame.Mat, px); err != nil {
		return capture.Frame{}, fmt.Errorf("camera %q frame %d: %w", s.id, s.frame.Seq, err)
	}
	return capture.Frame{Seq: s.frame.Seq, Time: s.frame.Time, Pixels: px}, nil
}

// preprocessor (re)makes the OpenCV preprocessor for the model's input.
func (s *Source) preprocessor(info classify.ModelInfo) error {
	if s.pre != nil && sameInput(s.preOf, info) {
		return nil
	}
	if info.Channels != 1 && info.Channels != 3 {
		return fmt.Errorf("camera %q: model %q wants %d channels; cameras give 1 (grey) or 3 (RGB)", s.id, info.Name, info.Channels)
	}
	mean, std := capture.Norm(s.pc, info)
	pc := camera.PreprocessConfig{Width: info.Width, Height: info.Height, Grey: info.Channels == 1, Mean: mean, Std: std}
	switch s.pc.Fit {
	case config.FitLetterbox:
		pc.Fit = camera.FitLetterbox
	case config.FitStretch:
		pc.Fit = camera.FitStretch
	default:
		pc.Fit = camera.FitCrop
	}
	if r := s.pc.ROI; len(r) == 4 {
		pc.ROI = image.Rect(r[0], r[1], r[2], r[3])
	}
	if info.ContentHeight > 0 && info.ContentWidth > 0 {
		// The model was trained on smaller images padded to its input.
		pc.Content = image.Pt(info.ContentWidth, info.ContentHeight)
	}
	pre, err := camera.NewPreprocessor(pc)
	if err != nil {
		return fmt.Errorf("camera %q: %w", s.id, err)
	}
	if s.pre != nil {
		s.pre.Close()
	}
	s.pre, s.preOf = pre, info
	return nil
}

func sameInput(a, b classify.ModelInfo) bool {
	eq := func(x, y []float32) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a.Height == b.Height && a.Width == b.Width && a.Channels == b.Channels && eq(a.Mean, b.Mean) && eq(a.Std, b.Std) &&
		a.ContentHeight == b.ContentHeight && a.ContentWidth == b.ContentWidth
}

// Snapshot is the camera's newest full frame as JPEG.
func (s *Source) Snapshot(quality int) ([]byte, error) { return s.cam.Snapshot(quality) }

// SourceStats is the camera's state and counters.
func (s *Source) SourceStats() capture.SourceStats {
	st := s.cam.Stats()
	return capture.SourceStats{State: st.State.String(), Frames: st.Frames, Dropped: st.Dropped, Reconnects: st.Reconnects,
		Errors: st.Errors, LastError: strings.TrimSpace(st.LastError)}
}

// Close stops the camera and waits for its goroutines. The agent calls it
// after the last Next has returned.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.cam.Close()
		s.frame.Close()
		if s.pre != nil {
			s.pre.Close()
		}
	})
	return nil
}
