// Package cameratest provides a synthetic frame source with the same methods
// as *camera.Camera (Next, Stats, Snapshot, Close), for testing code that
// consumes frames without a camera, a video file or real time.
//
// Frame n (Seq n, counting from 1) is a solid colour that encodes n, so a
// test can tell which frame reached it: see Color and SeqOf.
package cameratest

import (
	"context"
	"io"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/shortcut-edge/shortcut/camera"
)

// Source produces synthetic frames. The zero value is not ready: use New.
type Source struct {
	width, height int
	frames        uint64
	period        time.Duration
	start         time.Time

	mu     sync.Mutex
	seq    uint64
	fail   map[uint64]error
	closed bool
	stats  camera.Stats
	last   gocv.Mat
}

// Options configure a Source. Zero fields take the defaults shown.
type Options struct {
	Width, Height int           // 64x48
	Frames        int           // frames before io.EOF; 0 is endless
	Period        time.Duration // timestamp spacing (no sleeping); 100ms
	Start         time.Time     // first timestamp; 2024-01-01 UTC
}

// New returns a source of synthetic frames.
func New(o Options) *Source {
	if o.Width <= 0 {
		o.Width = 64
	}
	if o.Height <= 0 {
		o.Height = 48
	}
	if o.Period <= 0 {
		o.Period = 100 * time.Millisecond
	}
	if o.Start.IsZero() {
		o.Start = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Source{
		width: o.Width, height: o.Height, frames: uint64(max(0, o.Frames)),
		period: o.Period, start: o.Start,
		fail:  map[uint64]error{},
		stats: camera.Stats{Source: "cameratest", State: camera.StateStarting},
		last:  gocv.NewMat(),
	}
}

// FailAt makes the Next call that would deliver frame seq return err
// instead; the frame is skipped and counted as an error.
func (s *Source) FailAt(seq uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[seq] = err
}

// Color is the BGR colour of frame seq: blue and green hold its low 16 bits.
func Color(seq uint64) (b, g, r uint8) {
	return uint8(seq), uint8(seq >> 8), 0x80
}

// SeqOf reads the frame number back from a frame's top-left pixel (modulo
// 65536). It works on lossless frames (the fake's, or PNG images).
func SeqOf(m gocv.Mat) uint64 {
	v := m.GetVecbAt(0, 0)
	return uint64(v[0]) | uint64(v[1])<<8
}

// Next fills dst with the next frame, or returns io.EOF after the last one,
// camera.ErrClosed after Close, or an error set with FailAt.
func (s *Source) Next(ctx context.Context, dst *camera.Frame) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return camera.ErrClosed
	}
	if s.frames > 0 && s.seq >= s.frames {
		s.stats.State = camera.StateEnded
		return io.EOF
	}
	s.seq++
	if err, ok := s.fail[s.seq]; ok {
		s.stats.Errors++
		s.stats.LastError = err.Error()
		s.stats.State = camera.StateDegraded
		return err
	}
	dst.Ensure()
	b, g, r := Color(s.seq)
	if dst.Mat.Rows() != s.height || dst.Mat.Cols() != s.width || dst.Mat.Type() != gocv.MatTypeCV8UC3 {
		dst.Mat.Close()
		dst.Mat = gocv.NewMatWithSize(s.height, s.width, gocv.MatTypeCV8UC3)
	}
	dst.Mat.SetTo(gocv.NewScalar(float64(b), float64(g), float64(r), 0))
	dst.Seq = s.seq
	dst.Time = s.start.Add(time.Duration(s.seq-1) * s.period)
	dst.Mat.CopyTo(&s.last)
	s.stats.Frames++
	s.stats.Delivered++
	s.stats.State = camera.StateOK
	s.stats.LastFrameTime = dst.Time
	return nil
}

// Stats returns the counters; only Frames, Delivered and Errors move.
func (s *Source) Stats() camera.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Snapshot encodes the last frame delivered as JPEG.
func (s *Source) Snapshot(quality int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, camera.ErrClosed
	}
	if s.seq == 0 || s.last.Empty() {
		return nil, camera.ErrNoFrame
	}
	return camera.EncodeJPEG(s.last, quality)
}

// Close releases the source; Next then returns camera.ErrClosed.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.stats.State = camera.StateClosed
		s.last.Close()
	}
	return nil
}
