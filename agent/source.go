package agent

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
// default understands "synthetic" and "images:<glob>". The lead's camera
// package adds its kinds by wrapping this.
type SourceOpener func(cam CameraConfig) (FrameSource, error)

// checkSource validates a source string without opening it.
func checkSource(s string) error {
	switch {
	case s == "":
		return errors.New(`is empty; want "synthetic" or "images:/dir/*.png"`)
	case s == "synthetic":
		return nil
	case strings.HasPrefix(s, "images:"):
		glob := strings.TrimPrefix(s, "images:")
		if _, err := filepath.Match(glob, ""); err != nil {
			return fmt.Errorf("%q: bad pattern: %v", s, err)
		}
		return nil
	}
	return fmt.Errorf(`%q: unknown source kind; want "synthetic" or "images:<glob>"`, s)
}

// OpenSource is the default SourceOpener.
func OpenSource(cam CameraConfig) (FrameSource, error) {
	if err := checkSource(cam.Source); err != nil {
		return nil, fmt.Errorf("camera %q: source %w", cam.ID, err)
	}
	if cam.Source == "synthetic" {
		return &SyntheticSource{W: 64, H: 64}, nil
	}
	glob := strings.TrimPrefix(cam.Source, "images:")
	files, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("camera %q: source %q: %v", cam.ID, cam.Source, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("camera %q: source %q matches no file; check the path", cam.ID, cam.Source)
	}
	sort.Strings(files)
	return &ImageFiles{Files: files, Loop: true}, nil
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
