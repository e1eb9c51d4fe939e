package cameratest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/camera"
)

// frameSource is the shape a consumer such as the agent depends on; the fake
// and the real camera must both fit it.
type frameSource interface {
	Next(ctx context.Context, dst *camera.Frame) error
	Stats() camera.Stats
	Snapshot(quality int) ([]byte, error)
	Close() error
}

var (
	_ frameSource = (*Source)(nil)
	_ frameSource = (*camera.Camera)(nil)
)

func TestFakeFramesEncodeTheirSequenceAndTime(t *testing.T) {
	s := New(Options{Width: 8, Height: 4, Frames: 300, Period: 50 * time.Millisecond})
	defer s.Close()
	var f camera.Frame
	defer f.Close()
	ctx := context.Background()
	for want := uint64(1); ; want++ {
		err := s.Next(ctx, &f)
		if err == io.EOF {
			if want != 301 {
				t.Fatalf("io.EOF after %d frames, want 300", want-1)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != want || SeqOf(f.Mat) != want {
			t.Fatalf("frame seq %d reads back as %d, want %d", f.Seq, SeqOf(f.Mat), want)
		}
		if f.Mat.Cols() != 8 || f.Mat.Rows() != 4 {
			t.Fatalf("frame is %dx%d, want 8x4", f.Mat.Cols(), f.Mat.Rows())
		}
		if got := f.Time.Sub(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)); got != time.Duration(want-1)*50*time.Millisecond {
			t.Fatalf("frame %d at +%v", want, got)
		}
	}
	if st := s.Stats(); st.Frames != 300 || st.State != camera.StateEnded {
		t.Errorf("stats %+v, want 300 frames and ended", st)
	}
}

func TestFakeFailuresAndClose(t *testing.T) {
	s := New(Options{})
	boom := errors.New("boom")
	s.FailAt(2, boom)
	var f camera.Frame
	defer f.Close()
	ctx := context.Background()
	if _, err := s.Snapshot(90); !errors.Is(err, camera.ErrNoFrame) {
		t.Errorf("Snapshot before a frame: %v", err)
	}
	if err := s.Next(ctx, &f); err != nil {
		t.Fatal(err)
	}
	if err := s.Next(ctx, &f); !errors.Is(err, boom) {
		t.Errorf("frame 2: %v, want the injected error", err)
	}
	if err := s.Next(ctx, &f); err != nil || f.Seq != 3 {
		t.Errorf("after the failure: seq %d, err %v; want frame 3", f.Seq, err)
	}
	if b, err := s.Snapshot(90); err != nil || len(b) < 100 {
		t.Errorf("Snapshot: %d bytes, %v", len(b), err)
	}
	if st := s.Stats(); st.Errors != 1 {
		t.Errorf("%d errors counted, want 1", st.Errors)
	}
	s.Close()
	if err := s.Next(ctx, &f); !errors.Is(err, camera.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s2 := New(Options{})
	defer s2.Close()
	if err := s2.Next(cctx, &f); !errors.Is(err, context.Canceled) {
		t.Errorf("Next with a cancelled context: %v", err)
	}
}
