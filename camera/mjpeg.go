package camera

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	"gocv.io/x/gocv"
)

// maxJPEGPart bounds one MJPEG part, so a broken stream cannot exhaust memory.
const maxJPEGPart = 32 << 20

// mjpegReader reads an MJPEG-over-HTTP stream (multipart/x-mixed-replace),
// the format of most IP cameras, ESP32-CAM and mjpg-streamer. It is written
// in Go rather than left to OpenCV's FFmpeg backend, which also reads it,
// because a Go read can be cancelled: a stalled stream is dropped at once
// instead of blocking a cgo call for FFmpeg's 30 s timeout.
type mjpegReader struct {
	spec Spec
	resp *http.Response
	mr   *multipart.Reader
	buf  bytes.Buffer // reused across frames
}

func openMJPEG(ctx context.Context, spec Spec, client *http.Client) (*mjpegReader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("MJPEG stream %q: %w", spec.URL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("MJPEG stream %q: %w", spec.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("MJPEG stream %q: HTTP status %s", spec.URL, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		resp.Body.Close()
		return nil, fmt.Errorf("MJPEG stream %q: Content-Type %q is not multipart/x-mixed-replace with a boundary (is this a stream URL, not a snapshot or web page?)", spec.URL, ct)
	}
	// Some cameras put the leading dashes into the boundary parameter itself.
	boundary := strings.TrimPrefix(params["boundary"], "--")
	return &mjpegReader{spec: spec, resp: resp, mr: multipart.NewReader(resp.Body, boundary)}, nil
}

func (r *mjpegReader) next() (*multipart.Part, error) {
	p, err := r.mr.NextPart()
	if err == io.EOF {
		return nil, fmt.Errorf("MJPEG stream %q: the server ended the stream", r.spec.URL)
	}
	if err != nil {
		return nil, fmt.Errorf("MJPEG stream %q: %w", r.spec.URL, err)
	}
	return p, nil
}

func (r *mjpegReader) read(_ context.Context, dst *gocv.Mat) error {
	p, err := r.next()
	if err != nil {
		return err
	}
	r.buf.Reset()
	var n int64
	if size, cerr := strconv.ParseInt(p.Header.Get("Content-Length"), 10, 64); cerr == nil && size > 0 && size <= maxJPEGPart {
		// Read exactly the announced bytes: waiting for the next boundary
		// would hold every frame back until the camera sends the next one.
		n, err = io.CopyN(&r.buf, p, size)
	} else {
		n, err = r.buf.ReadFrom(io.LimitReader(p, maxJPEGPart+1))
	}
	if err != nil {
		return fmt.Errorf("MJPEG stream %q: reading a part: %w", r.spec.URL, err)
	}
	if n > maxJPEGPart {
		return fmt.Errorf("MJPEG stream %q: a part is larger than %d bytes", r.spec.URL, maxJPEGPart)
	}
	if n == 0 {
		return badFrame("MJPEG stream %q: empty part", r.spec.URL)
	}
	m, err := gocv.IMDecode(r.buf.Bytes(), gocv.IMReadColor)
	if err != nil || m.Empty() {
		if err == nil {
			m.Close()
		}
		return badFrame("MJPEG stream %q: a %d-byte part is not a decodable JPEG", r.spec.URL, n)
	}
	dst.Close()
	*dst = m
	return nil
}

func (r *mjpegReader) skip(context.Context) error {
	p, err := r.next()
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, p)
	return err
}

func (r *mjpegReader) close() { r.resp.Body.Close() }
