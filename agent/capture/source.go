package capture

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // images: sources may hold JPEG files
	_ "image/png"  // images: sources may hold PNG files
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
)

// Frame is what a FrameSource yields: one picture from one camera. Either
// Image is set (the agent resizes and normalizes it for the model) or Pixels
// already holds the model input: H*W*C float32 values, HWC order,
// normalized. Image, when present, also feeds /snapshot.jpg.
type Frame struct {
	Seq    uint64
	Time   time.Time // when the picture was captured
	Image  image.Image
	Pixels []float32
}

// FrameSource is a camera as the agent sees it. Next blocks until the next
// frame or ctx ends; io.EOF (or ErrSourceDone) ends the camera's pipeline
// without error. A FrameSource is used from one goroutine.
type FrameSource interface {
	Next(ctx context.Context) (Frame, error)
	Close() error
}

// ErrSourceDone is returned by finite sources once their last frame is out.
var ErrSourceDone = errors.New("source: no more frames")

// SourceOpener opens a camera's source from its configured string; the
// default, OpenSource, understands "synthetic" and "images:". Package
// agent/cvsource opens every camera source (V4L2, files, RTSP, MJPEG,
// GStreamer) and falls back to OpenSource for the rest.
type SourceOpener func(cam config.CameraConfig) (FrameSource, error)

// A FrameSource may also implement the interfaces below; the agent uses
// what it finds.

// Snapshotter serves /snapshot.jpg from the source's own newest frame (a
// camera's full picture, rather than the model's input).
type Snapshotter interface {
	Snapshot(quality int) ([]byte, error)
}

// SourceStats is a source's own account of its health, for /metrics and
// /healthz.
type SourceStats struct {
	// State is starting, ok, degraded, reconnecting, ended or closed.
	State      string
	Frames     uint64 // captured by the source
	Dropped    uint64 // replaced by a newer frame before the agent took them
	Reconnects uint64
	Errors     uint64
	LastError  string
}

// Source states that make /healthz degraded.
const (
	SourceReconnecting = "reconnecting"
	SourceDegraded     = "degraded"
)

// StatsSource reports SourceStats.
type StatsSource interface {
	SourceStats() SourceStats
}

// ModelAware is a source that makes the model's input itself
// (Frame.Pixels). The agent calls SetModel before the first Next and again,
// from another goroutine, whenever the model is replaced.
type ModelAware interface {
	SetModel(classify.ModelInfo)
}

// OpenSource is the default SourceOpener: "synthetic" and "images:"
// (PNG and JPEG files of a folder or glob, in name order, decoded in Go).
func OpenSource(cam config.CameraConfig) (FrameSource, error) {
	if err := config.CheckSource(cam.Source); err != nil {
		return nil, fmt.Errorf("camera %q: source %w", cam.ID, err)
	}
	if cam.Source == "synthetic" {
		return &SyntheticSource{W: 64, H: 64}, nil
	}
	path, loop, _ := config.ParseImages(cam.Source)
	var files []string
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("camera %q: source %q: %v", cam.ID, cam.Source, err)
		}
		for _, e := range entries {
			if ext := strings.ToLower(filepath.Ext(e.Name())); !e.IsDir() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	} else {
		var err error
		if files, err = filepath.Glob(path); err != nil {
			return nil, fmt.Errorf("camera %q: source %q: %v", cam.ID, cam.Source, err)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("camera %q: source %q matches no PNG or JPEG file; check the path", cam.ID, cam.Source)
	}
	sort.Strings(files)
	return &ImageFiles{Files: files, Loop: loop}, nil
}

// ImageFiles yields PNG or JPEG files in order, decoding each when it is
// due, and starts over when Loop is set.
type ImageFiles struct {
	Files []string
	Loop  bool
	seq   uint64
}

func (s *ImageFiles) Next(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if len(s.Files) == 0 || (!s.Loop && s.seq >= uint64(len(s.Files))) {
		return Frame{}, ErrSourceDone
	}
	name := s.Files[s.seq%uint64(len(s.Files))]
	s.seq++
	img, err := decodeImageFile(name)
	if err != nil {
		return Frame{}, err
	}
	return Frame{Seq: s.seq, Time: time.Now(), Image: img}, nil
}

func (s *ImageFiles) Close() error { return nil }

func decodeImageFile(name string) (image.Image, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("image source: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("image source: %q is not a PNG or JPEG image: %v", name, err)
	}
	return img, nil
}

// SyntheticSource draws a moving gradient: a source that needs no camera
// and no files, for trying the daemon out.
type SyntheticSource struct {
	W, H int
	seq  uint64
}

func (s *SyntheticSource) Next(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	s.seq++
	img := image.NewRGBA(image.Rect(0, 0, max(s.W, 1), max(s.H, 1)))
	shift := int(s.seq * 4)
	for y := 0; y < img.Rect.Dy(); y++ {
		for x := 0; x < img.Rect.Dx(); x++ {
			img.SetRGBA(x, y, color.RGBA{uint8(x*4 + shift), uint8(y * 4), uint8(128 + shift), 255})
		}
	}
	return Frame{Seq: s.seq, Time: time.Now(), Image: img}, nil
}

func (s *SyntheticSource) Close() error { return nil }
