package camera

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"gocv.io/x/gocv"
)

// reader is one open connection to a source. A reader is used by one
// goroutine at a time; read and skip may block (a cgo call cannot be
// interrupted), which is why the camera watches them from outside.
type reader interface {
	// read decodes the next frame into *dst, replacing or reusing its
	// allocation. It returns errEnd at the end of a file or folder, a
	// badFrameError for a frame that could not be decoded (the source is
	// still usable), or any other error when the source must be reopened.
	read(ctx context.Context, dst *gocv.Mat) error
	// skip consumes the next frame without decoding it, to keep a live
	// source's queue fresh while pacing.
	skip(ctx context.Context) error
	close()
}

var errEnd = errors.New("end of stream")

// badFrameError is a frame that could not be used; the source is still open.
type badFrameError struct{ err error }

func (e badFrameError) Error() string { return e.err.Error() }
func (e badFrameError) Unwrap() error { return e.err }

func badFrame(format string, args ...any) error {
	return badFrameError{fmt.Errorf(format, args...)}
}

// openReader connects to a source.
func openReader(ctx context.Context, spec Spec, client *http.Client) (reader, error) {
	switch spec.Kind {
	case KindDevice, KindFile, KindRTSP, KindGStreamer:
		return openCV(spec)
	case KindImages:
		return openImages(spec)
	case KindHTTP:
		return openMJPEG(ctx, spec, client)
	}
	return nil, fmt.Errorf("camera source %q: unknown kind %d", spec.Raw, spec.Kind)
}

// cvReader reads through OpenCV's VideoCapture.
type cvReader struct {
	spec  Spec
	vc    *gocv.VideoCapture
	total int // frames a file says it holds; 0 when unknown
	n     int // frames read so far
}

func openCV(spec Spec) (*cvReader, error) {
	var (
		vc   *gocv.VideoCapture
		err  error
		what string
	)
	switch spec.Kind {
	case KindDevice:
		if spec.Path != "" {
			what = fmt.Sprintf("V4L2 device %q", spec.Path)
			if _, serr := os.Stat(spec.Path); serr != nil {
				return nil, fmt.Errorf("%s: %w (list cameras with: ls /dev/video*; v4l2-ctl --list-devices)", what, serr)
			}
			vc, err = gocv.VideoCaptureFileWithAPI(spec.Path, gocv.VideoCaptureV4L2)
		} else {
			what = fmt.Sprintf("camera index %d", spec.Device)
			if _, serr := os.Stat(fmt.Sprintf("/dev/video%d", spec.Device)); serr != nil {
				return nil, fmt.Errorf("%s: /dev/video%d does not exist (list cameras with: ls /dev/video*)", what, spec.Device)
			}
			vc, err = gocv.VideoCaptureDeviceWithAPI(spec.Device, gocv.VideoCaptureV4L2)
		}
	case KindFile:
		what = fmt.Sprintf("video file %q", spec.Path)
		st, serr := os.Stat(spec.Path)
		if serr != nil {
			return nil, fmt.Errorf("%s: %w", what, serr)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("%s is a folder (use images:%s for a folder of images)", what, spec.Path)
		}
		vc, err = gocv.VideoCaptureFileWithAPI(spec.Path, gocv.VideoCaptureFFmpeg)
	case KindRTSP:
		what = fmt.Sprintf("RTSP stream %q", spec.URL)
		vc, err = gocv.VideoCaptureFileWithAPI(spec.URL, gocv.VideoCaptureFFmpeg)
	case KindGStreamer:
		what = fmt.Sprintf("GStreamer pipeline %q", spec.Pipeline)
		vc, err = gocv.VideoCaptureFileWithAPI(spec.Pipeline, gocv.VideoCaptureGstreamer)
	}
	if err != nil || vc == nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		hint := "check that it exists and is readable"
		switch spec.Kind {
		case KindFile:
			hint = "the file is not a video OpenCV's FFmpeg backend can decode (corrupt or unsupported codec)"
		case KindRTSP:
			hint = "check the URL, credentials and that the camera is reachable"
		case KindGStreamer:
			hint = "check the pipeline with gst-launch-1.0 (with fakesink in place of appsink) and that its plugins are installed"
		case KindDevice:
			hint = "the device may be busy (another program) or not a capture device"
		}
		return nil, fmt.Errorf("open %s: OpenCV could not open it: %s", what, hint)
	}
	r := &cvReader{spec: spec, vc: vc}
	switch spec.Kind {
	case KindFile:
		r.total = int(vc.Get(gocv.VideoCaptureFrameCount))
	case KindDevice:
		if spec.FourCC != "" {
			vc.Set(gocv.VideoCaptureFOURCC, vc.ToCodec(spec.FourCC))
		}
		if spec.Width > 0 {
			vc.Set(gocv.VideoCaptureFrameWidth, float64(spec.Width))
		}
		if spec.Height > 0 {
			vc.Set(gocv.VideoCaptureFrameHeight, float64(spec.Height))
		}
		if spec.FPS > 0 {
			vc.Set(gocv.VideoCaptureFPS, spec.FPS)
		}
		// A short driver queue keeps the frames we read recent.
		vc.Set(gocv.VideoCaptureBufferSize, 1)
	}
	return r, nil
}

func (r *cvReader) read(_ context.Context, dst *gocv.Mat) error {
	if !r.vc.Read(dst) {
		if r.spec.Kind != KindFile {
			return badFrame("%s source %q: read failed", r.spec.Kind, r.spec.Raw)
		}
		if r.total > 0 && r.n < r.total {
			err := fmt.Errorf("video file %q ended early: read %d of the %d frames its header announces (truncated or corrupt)", r.spec.Path, r.n, r.total)
			if !r.spec.Loop {
				// Nothing more to read: end, with the error on record.
				return fmt.Errorf("%w: %w", errEnd, err)
			}
			return err
		}
		if !r.spec.Loop {
			return errEnd
		}
		if r.n == 0 {
			return fmt.Errorf("video file %q holds no frames", r.spec.Path)
		}
		// Reopening is more robust than seeking to frame 0, which some codecs refuse.
		again, err := openCV(r.spec)
		if err != nil {
			return err
		}
		r.vc.Close()
		r.vc, r.total, r.n = again.vc, again.total, 0
		if !r.vc.Read(dst) {
			return fmt.Errorf("video file %q: no frame after rewinding", r.spec.Path)
		}
	}
	if dst.Empty() {
		return badFrame("%s source %q: empty frame", r.spec.Kind, r.spec.Raw)
	}
	r.n++
	return nil
}

func (r *cvReader) skip(context.Context) error {
	r.vc.Grab(1)
	return nil
}

func (r *cvReader) close() { r.vc.Close() }

// imagesReader reads still images in name order.
type imagesReader struct {
	spec  Spec
	files []string
	i     int
}

func openImages(spec Spec) (*imagesReader, error) {
	files, err := listImages(spec.Path)
	if err != nil {
		return nil, err
	}
	return &imagesReader{spec: spec, files: files}, nil
}

func (r *imagesReader) read(_ context.Context, dst *gocv.Mat) error {
	if r.i >= len(r.files) {
		if !r.spec.Loop {
			return errEnd
		}
		r.i = 0
	}
	name := r.files[r.i]
	r.i++
	m := gocv.IMRead(name, gocv.IMReadColor)
	if m.Empty() {
		m.Close()
		return badFrame("image %q: OpenCV cannot decode it (empty, corrupt or not an image)", name)
	}
	dst.Close()
	*dst = m
	return nil
}

func (r *imagesReader) skip(context.Context) error {
	r.i++
	return nil
}

func (r *imagesReader) close() {}
