package capture

import (
	"context"
	"errors"
	"fmt"
	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/config"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CaptureOptions say which frames Capture keeps and where.
type CaptureOptions struct {
	Dir      string        // where the PNG files go (made if missing)
	Frames   int           // frames to save per camera, at least 1
	Interval time.Duration // pause between two frames of a camera; 0: as fast as the source gives them
	Camera   string        // one camera's id; "": every configured camera
	// Append lets Dir hold files already: numbering goes on after the
	// highest <camera>-<seq>.png there. Without it Dir must be new or empty,
	// so that a second session never mixes with the first by accident.
	Append bool
	// Flags names the options in errors, as the user typed them
	// (cmd/agent: "--capture", "--frames", "--camera", "--append").
	Flags CaptureFlags
}

// CaptureFlags are the names errors give for CaptureOptions' fields.
type CaptureFlags struct{ Dir, Frames, Interval, Camera, Append string }

// Capture saves frames of the configured cameras exactly as they reach the
// model: each camera's source is opened with open (the agent's own
// opener), its preprocess section (roi, fit) and the model's input size
// and image_size are applied as the pipeline applies them, and the model's
// input tensor is turned back into 8-bit pixels (the normalization undone)
// and written as DIR/<camera>-<seq>.png, Width x Height of the model input.
// That is what calibration and teaching want: what the model sees, not the
// camera's full picture. It returns the files written, in order; progress
// (when not nil) gets one line per file.
func Capture(ctx context.Context, cfg config.Config, info classify.ModelInfo, open SourceOpener, o CaptureOptions, progress io.Writer) ([]string, error) {
	if o.Frames < 1 {
		return nil, fmt.Errorf("%s %d: want at least 1 frame per camera", o.Flags.Frames, o.Frames)
	}
	if o.Interval < 0 {
		return nil, fmt.Errorf("%s %v: want 0 or a positive duration such as 500ms or 2s", o.Flags.Interval, o.Interval)
	}
	if info.Channels != 1 && info.Channels != 3 {
		return nil, fmt.Errorf("model %q wants %d channels; captures are grey (1) or RGB (3)", info.Path, info.Channels)
	}
	cams := cfg.Cameras
	if o.Camera != "" {
		cams = nil
		var ids []string
		for _, c := range cfg.Cameras {
			ids = append(ids, c.ID)
			if c.ID == o.Camera {
				cams = append(cams, c)
			}
		}
		if cams == nil {
			return nil, fmt.Errorf("%s %q: no such camera in the configuration's cameras (ids: %s)", o.Flags.Camera, o.Camera, strings.Join(ids, ", "))
		}
	}
	next, err := prepareCaptureDir(o, cams)
	if err != nil {
		return nil, err
	}
	type cam struct {
		cfg config.CameraConfig
		src FrameSource
		seq int
	}
	var opened []*cam
	defer func() {
		for _, c := range opened {
			c.src.Close()
		}
	}()
	for _, cc := range cams {
		src, err := open(cc)
		if err != nil {
			return nil, fmt.Errorf("cameras[%s].source: %w", cc.ID, err)
		}
		if ma, ok := src.(ModelAware); ok {
			ma.SetModel(info)
		}
		opened = append(opened, &cam{cfg: cc, src: src, seq: next[cc.ID]})
	}
	var files []string
	buf := make([]float32, info.Height*info.Width*info.Channels)
	for i := range o.Frames {
		if i > 0 && o.Interval > 0 {
			select {
			case <-time.After(o.Interval):
			case <-ctx.Done():
				return files, ctx.Err()
			}
		}
		for _, c := range opened {
			f, err := c.src.Next(ctx)
			if errors.Is(err, ErrSourceDone) || errors.Is(err, io.EOF) {
				return files, fmt.Errorf("camera %q (%s) ended after %d of %d frames: lower %s, give it more images, or add ?loop=1 to a file or folder source",
					c.cfg.ID, c.cfg.Source, i, o.Frames, o.Flags.Frames)
			}
			if err != nil {
				return files, fmt.Errorf("camera %q: %w", c.cfg.ID, err)
			}
			px := f.Pixels
			if px == nil {
				if f.Image == nil {
					return files, fmt.Errorf("camera %q frame %d: the source gave neither an image nor pixels", c.cfg.ID, f.Seq)
				}
				if err := Apply(c.cfg.Preprocess, buf, f.Image, info); err != nil {
					return files, fmt.Errorf("camera %q frame %d: %w", c.cfg.ID, f.Seq, err)
				}
				px = buf
			}
			if len(px) != len(buf) {
				return files, fmt.Errorf("camera %q frame %d: %d input values, the model wants %dx%dx%d", c.cfg.ID, f.Seq, len(px), info.Height, info.Width, info.Channels)
			}
			var img image.Image = PixelsImage(px, info, c.cfg.Preprocess)
			if info.Channels == 1 {
				img = greyOf(img.(*image.RGBA))
			}
			c.seq++
			name := filepath.Join(o.Dir, fmt.Sprintf("%s-%06d.png", c.cfg.ID, c.seq))
			if err := writePNG(name, img); err != nil {
				return files, err
			}
			files = append(files, name)
			if progress != nil {
				fmt.Fprintf(progress, "%s\n", name)
			}
		}
	}
	return files, nil
}

// prepareCaptureDir makes o.Dir or checks that it may be written, and
// returns the last sequence number already there per camera (Append).
func prepareCaptureDir(o CaptureOptions, cams []config.CameraConfig) (map[string]int, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("%s: give the folder the frames go to", o.Flags.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.Flags.Dir, o.Dir, err)
	}
	entries, err := os.ReadDir(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.Flags.Dir, o.Dir, err)
	}
	if len(entries) > 0 && !o.Append {
		return nil, fmt.Errorf("%s %s: the folder holds %d entries already; give a new or empty folder, or add %s to add frames after the ones there",
			o.Flags.Dir, o.Dir, len(entries), o.Flags.Append)
	}
	next := map[string]int{}
	for _, e := range entries {
		for _, c := range cams {
			rest, ok := strings.CutPrefix(e.Name(), c.ID+"-")
			if !ok {
				continue
			}
			if n, err := strconv.Atoi(strings.TrimSuffix(rest, ".png")); err == nil && strings.HasSuffix(rest, ".png") && n > next[c.ID] {
				next[c.ID] = n
			}
		}
	}
	return next, nil
}

func greyOf(img *image.RGBA) *image.Gray {
	g := image.NewGray(img.Bounds())
	for i := range len(g.Pix) {
		g.Pix[i] = img.Pix[4*i] // pixelsImage writes grey as R = G = B
	}
	return g
}

// writePNG writes through a temporary file, so that a folder being read
// (by a copy, by shortcut-train) never holds half a picture.
func writePNG(name string, img image.Image) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	err = png.Encode(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("capture: writing %s: %w", name, err)
	}
	return nil
}
