package camera

import (
	"fmt"
	"time"

	"gocv.io/x/gocv"
)

// Frame is one captured picture. Its Mat is 8-bit BGR (OpenCV's order), owned
// by the Frame and reused by every Next call that fills it, so a consumer
// allocates once:
//
//	var f camera.Frame
//	defer f.Close()
//	for {
//		if err := cam.Next(ctx, &f); err != nil { ... }
//		pre.Int8(f.Mat, input)
//	}
//
// The zero Frame is ready to use.
type Frame struct {
	// Seq numbers captured frames from 1. A gap between two frames a consumer
	// receives is the number of frames dropped in between.
	Seq uint64
	// Time is when the frame was captured.
	Time time.Time
	Mat  gocv.Mat
}

// Ensure gives the frame a Mat if it has none yet.
func (f *Frame) Ensure() {
	if f.Mat.Ptr() == nil {
		f.Mat = gocv.NewMat()
	}
}

// Close releases the frame's Mat. The Frame can be used again afterwards.
func (f *Frame) Close() error {
	if f.Mat.Ptr() != nil {
		err := f.Mat.Close()
		f.Mat = gocv.Mat{}
		return err
	}
	return nil
}

// JPEG encodes the frame as JPEG at the given quality (1-100; 0 means 90).
func (f *Frame) JPEG(quality int) ([]byte, error) {
	return EncodeJPEG(f.Mat, quality)
}

// EncodeJPEG encodes a BGR or grey Mat as JPEG (quality 1-100; 0 means 90).
func EncodeJPEG(m gocv.Mat, quality int) ([]byte, error) {
	if quality == 0 {
		quality = 90
	}
	if quality < 1 || quality > 100 {
		return nil, fmt.Errorf("JPEG quality %d: want 1 to 100", quality)
	}
	if m.Ptr() == nil || m.Empty() {
		return nil, fmt.Errorf("encode JPEG: the frame is empty")
	}
	b, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return nil, fmt.Errorf("encode JPEG (%dx%d): %w", m.Cols(), m.Rows(), err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("encode JPEG (%dx%d, type %v): OpenCV returned no bytes", m.Cols(), m.Rows(), m.Type())
	}
	return b, nil
}
