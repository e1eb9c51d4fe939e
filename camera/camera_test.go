package camera

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// drain reads frames until io.EOF and returns the frames' (seq, index) pairs.
func drain(t *testing.T, c *Camera, index func(f *Frame) int) (seqs []uint64, idx []int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var f Frame
	defer f.Close()
	for {
		err := c.Next(ctx, &f)
		if err == io.EOF {
			return seqs, idx
		}
		if err != nil {
			t.Fatalf("Next after %d frames: %v (stats %+v)", len(seqs), err, c.Stats())
		}
		seqs = append(seqs, f.Seq)
		idx = append(idx, index(&f))
	}
}

// checkDelivery checks that each delivered frame is the one its sequence
// number says, in order, and that delivered plus dropped is every frame.
func checkDelivery(t *testing.T, c *Camera, seqs []uint64, idx []int, total int) {
	t.Helper()
	if len(seqs) == 0 {
		t.Fatal("no frame delivered")
	}
	for i := range seqs {
		if idx[i] != int(seqs[i]-1) {
			t.Errorf("frame seq %d holds picture %d, want %d", seqs[i], idx[i], seqs[i]-1)
		}
		if i > 0 && seqs[i] <= seqs[i-1] {
			t.Errorf("seq went from %d to %d", seqs[i-1], seqs[i])
		}
	}
	st := c.Stats()
	if st.Frames != uint64(total) {
		t.Errorf("Stats.Frames = %d, want %d", st.Frames, total)
	}
	if st.Delivered != uint64(len(seqs)) || st.Delivered+st.Dropped != st.Frames {
		t.Errorf("delivered %d (stats %d) + dropped %d != frames %d", len(seqs), st.Delivered, st.Dropped, st.Frames)
	}
	if st.State != StateEnded {
		t.Errorf("state %v at the end of the file, want ended", st.State)
	}
}

func TestVideoFileDeliversFramesInOrderAndCountsTheDropped(t *testing.T) {
	for _, src := range []string{"file:%s", "%s"} {
		t.Run(src, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "clip.avi")
			writeVideo(t, p, 40, 64, 48)
			c := openTest(t, Config{Source: strings.Replace(src, "%s", p, 1)})
			seqs, idx := drain(t, c, func(f *Frame) int { return codedIndex(f.Mat) })
			checkDelivery(t, c, seqs, idx, 40)
		})
	}
}

func TestLoopingVideoFileStartsAgainAtItsEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clip.avi")
	writeVideo(t, p, 10, 64, 48)
	c := openTest(t, Config{Source: "file:" + p + "?loop=1"})
	var f Frame
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for f.Seq < 35 {
		if err := c.Next(ctx, &f); err != nil {
			t.Fatalf("Next: %v", err)
		}
		if got, want := codedIndex(f.Mat), int(f.Seq-1)%10; got != want {
			t.Fatalf("frame seq %d holds picture %d, want %d", f.Seq, got, want)
		}
	}
	if st := c.Stats(); st.Reconnects != 0 || st.Errors != 0 {
		t.Errorf("looping is not a failure: %d reconnects, %d errors (%s)", st.Reconnects, st.Errors, st.LastError)
	}
}

func TestImageFoldersAndGlobsDeliverFilesInNameOrder(t *testing.T) {
	dir := t.TempDir()
	writePNGs(t, dir, 25, 32, 24)
	// Files that are not images are not frames.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	for _, src := range []string{"images:" + dir, "images:" + dir + "/*.png", dir + "/frame-*.png", dir} {
		t.Run(src, func(t *testing.T) {
			c := openTest(t, Config{Source: src})
			seqs, idx := drain(t, c, func(f *Frame) int { return pngIndex(f.Mat) })
			checkDelivery(t, c, seqs, idx, 25)
		})
	}
}

func TestPacingSpacesFramesByThePeriod(t *testing.T) {
	dir := t.TempDir()
	writePNGs(t, dir, 20, 16, 16)
	clk := newFakeClock()
	c := openTest(t, Config{Source: "images:" + dir, FPS: 10, clock: clk})
	var t0 time.Time
	ctx := context.Background()
	var f Frame
	defer f.Close()
	for n := 0; ; n++ {
		err := c.Next(ctx, &f)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t0 = f.Time.Add(-time.Duration(f.Seq-1) * 100 * time.Millisecond)
		}
		if got, want := f.Time.Sub(t0), time.Duration(f.Seq-1)*100*time.Millisecond; got != want {
			t.Errorf("frame %d captured at +%v, want +%v", f.Seq, got, want)
		}
	}
	clk.mu.Lock()
	slept := clk.slept
	clk.mu.Unlock()
	// 19 gaps between the 20 frames, and one more before the read that finds the end.
	if want := 20 * 100 * time.Millisecond; slept != want {
		t.Errorf("slept %v in all for 20 frames at 10 fps, want %v", slept, want)
	}
}

func TestLiveSourceAboveTheTargetRateSkipsFramesWithoutDecoding(t *testing.T) {
	srv := newMJPEGServer(t, &mjpegServer{perConn: 300, interval: time.Millisecond, once: true})
	c := openTest(t, Config{Source: srv.url(), FPS: 20, Backoff: Backoff{Initial: time.Hour}})
	waitFor(t, "the 300-frame stream to end", 20*time.Second, func() bool { return c.Stats().Errors > 0 })
	st := c.Stats()
	if st.Frames+st.Skipped != 300 {
		t.Errorf("decoded %d + skipped %d, want the 300 frames sent", st.Frames, st.Skipped)
	}
	if st.Skipped <= st.Frames {
		t.Errorf("at 20 fps from a ~1000 fps stream: decoded %d, skipped only %d", st.Frames, st.Skipped)
	}
}

func truncate(t *testing.T, p string, frac float64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:int(float64(len(b))*frac)], 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTruncatedVideoEndsEarlyWithAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cut.avi")
	writeVideo(t, p, 30, 64, 48)
	truncate(t, p, 0.5)
	c := openTest(t, Config{Source: p})
	seqs, idx := drain(t, c, func(f *Frame) int { return codedIndex(f.Mat) })
	st := c.Stats()
	if st.Frames == 0 || st.Frames >= 30 {
		t.Fatalf("read %d frames of a half-truncated 30-frame video", st.Frames)
	}
	checkDelivery(t, c, seqs, idx, int(st.Frames))
	if st.Errors != 1 || !strings.Contains(st.LastError, "ended early") {
		t.Errorf("errors %d, last %q: want one 'ended early' error", st.Errors, st.LastError)
	}
}

func TestTruncatedLoopingVideoReconnectsAndResumes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cut.avi")
	writeVideo(t, p, 30, 64, 48)
	truncate(t, p, 0.5)
	c := openTest(t, Config{Source: "file:" + p + "?loop=1", Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	var f Frame
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sawRestart := false
	last := -1
	for c.Stats().Reconnects < 3 || !sawRestart {
		if err := c.Next(ctx, &f); err != nil {
			t.Fatalf("Next: %v (stats %+v)", err, c.Stats())
		}
		i := codedIndex(f.Mat)
		sawRestart = sawRestart || (last > 0 && i < last)
		last = i
	}
	if st := c.Stats(); st.Errors < 3 {
		t.Errorf("%d errors after %d reconnects", st.Errors, st.Reconnects)
	}
}

func TestMJPEGServerStoppedAndRestartedIsReconnected(t *testing.T) {
	srv := newMJPEGServer(t, &mjpegServer{interval: 5 * time.Millisecond})
	c := openTest(t, Config{Source: srv.url(), Backoff: Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}})
	var f Frame
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := func() {
		t.Helper()
		if err := c.Next(ctx, &f); err != nil {
			t.Fatalf("Next: %v (stats %+v)", err, c.Stats())
		}
		if f.Mat.Cols() != 64 || f.Mat.Rows() != 48 {
			t.Fatalf("frame is %dx%d, want 64x48", f.Mat.Cols(), f.Mat.Rows())
		}
	}
	next()
	srv.stop()
	waitFor(t, "the camera to notice the server is gone", 10*time.Second, func() bool {
		return c.Stats().State == StateReconnecting && c.Stats().Reconnects >= 2
	})
	before := c.Stats()
	srv.start()
	waitFor(t, "frames after the restart", 10*time.Second, func() bool { return c.Stats().Frames > before.Frames+3 })
	next()
	if st := c.Stats(); st.State != StateOK {
		t.Errorf("state %v after the server came back, want ok (%s)", st.State, st.LastError)
	}
}

func TestReconnectDelaysDoubleUntilAFrameArrivesThenStartOver(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		server *mjpegServer
		want   []time.Duration
	}{
		{"a camera that stops answering", &mjpegServer{perConn: 1, once: true},
			// one frame, so the first delay is the initial one; then only failures
			[]time.Duration{ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 16 * ms}},
		{"a camera that drops every connection after a frame", &mjpegServer{perConn: 1},
			[]time.Duration{ms, ms, ms, ms, ms, ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newMJPEGServer(t, tc.server)
			clk := newFakeClock()
			c := openTest(t, Config{Source: srv.url(), clock: clk,
				Backoff: Backoff{Initial: ms, Max: 16 * ms, Multiplier: 2, Jitter: 0}})
			waitFor(t, "six reconnect delays", 10*time.Second, func() bool { return len(clk.sleepsSoFar()) >= 6 })
			c.Close()
			got := clk.sleepsSoFar()[:6]
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("delays %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestStalledStreamIsReopenedAfterTheReadTimeout(t *testing.T) {
	srv := newMJPEGServer(t, &mjpegServer{hang: true})
	c := openTest(t, Config{Source: srv.url(), ReadTimeout: 50 * time.Millisecond,
		Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	waitFor(t, "three stalls", 10*time.Second, func() bool { return c.Stats().Reconnects >= 3 })
	st := c.Stats()
	if !strings.Contains(st.LastError, "stalled") {
		t.Errorf("last error %q, want a stall", st.LastError)
	}
	if st.Frames < 3 {
		t.Errorf("%d frames: each connection sends one before stalling", st.Frames)
	}
}

func TestHundredReconnectsLeakNoGoroutineOrMat(t *testing.T) {
	srv := newMJPEGServer(t, &mjpegServer{perConn: 2})
	check := leakCheck(t)
	c, err := Open(context.Background(), Config{Source: srv.url(), Logger: quiet,
		Backoff: Backoff{Initial: 100 * time.Microsecond, Max: 200 * time.Microsecond}})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for c.Stats().Reconnects < 100 {
		if err := c.Next(ctx, &f); err != nil {
			t.Fatalf("Next: %v (stats %+v)", err, c.Stats())
		}
		if _, err := c.Snapshot(80); err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
	}
	c.Close()
	f.Close()
	if err := c.Next(ctx, &f); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	f.Close()
	if st := c.Stats(); st.Frames < 100 || st.State != StateClosed {
		t.Errorf("after 100 reconnects: %d frames, state %v", st.Frames, st.State)
	}
	check()
}

func TestOpenRejectsBadSourcesWithAReason(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.avi")
	os.WriteFile(corrupt, bytes.Repeat([]byte("not a video "), 1000), 0o644)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for _, tc := range []struct{ src, want string }{
		{"", "empty source"},
		{"ftp://host/cam", `unsupported URL scheme "ftp"`},
		{"onvif:cam1", `unknown prefix "onvif:"`},
		{filepath.Join(dir, "missing.avi"), "no such file"},
		{"file:" + dir, "is a folder"},
		{corrupt, "could not open it"},
		{"images:" + empty, "no image files"},
		{"images:" + dir + "/*.jpg", "no image files"},
		{"gst:videotestsrc ! fakesink", "appsink"},
		{"file:x.avi?loop=maybe", "loop"},
		{"file:x.avi?speed=2", `unknown option "speed"`},
		{"/dev/video0?width=wide", "width"},
	} {
		t.Run(tc.src, func(t *testing.T) {
			c, err := Open(context.Background(), Config{Source: tc.src, Logger: quiet})
			if err == nil {
				c.Close()
				t.Fatalf("Open(%q) succeeded, want an error containing %q", tc.src, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open(%q) error %q does not contain %q", tc.src, err, tc.want)
			}
		})
	}
	if _, err := Open(context.Background(), Config{Source: "0", FPS: -1}); err == nil {
		t.Error("negative FPS accepted")
	}
}

func TestUnreachableLiveSourcesKeepRetryingWithTheReasonInStats(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>camera page</html>"))
	}))
	defer html.Close()
	for _, tc := range []struct{ src, want string }{
		{"/dev/video87", "/dev/video87"},
		{"87", "/dev/video87 does not exist"},
		{"http://127.0.0.1:1/stream", "connection refused"},
		{html.URL, `Content-Type "text/html" is not multipart`},
	} {
		t.Run(tc.src, func(t *testing.T) {
			c := openTest(t, Config{Source: tc.src, Backoff: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}})
			waitFor(t, "two failed attempts", 10*time.Second, func() bool { return c.Stats().Errors >= 2 })
			st := c.Stats()
			if st.State != StateReconnecting || st.Reconnects == 0 {
				t.Errorf("state %v with %d reconnects, want reconnecting", st.State, st.Reconnects)
			}
			if !strings.Contains(st.LastError, tc.want) {
				t.Errorf("last error %q does not contain %q", st.LastError, tc.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			var f Frame
			defer f.Close()
			if err := c.Next(ctx, &f); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Next with no frames: %v, want the context's deadline", err)
			}
		})
	}
}

func TestUndecodableImagesAreSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	writePNGs(t, dir, 6, 16, 16)
	os.WriteFile(filepath.Join(dir, "frame-0002.png"), nil, 0o644)                // zero bytes
	os.WriteFile(filepath.Join(dir, "frame-0004.png"), []byte("garbage!"), 0o644) // not a PNG
	c := openTest(t, Config{Source: "images:" + dir})
	_, idx := drain(t, c, func(f *Frame) int { return pngIndex(f.Mat) })
	st := c.Stats()
	if st.Frames != 4 || st.Errors != 2 {
		t.Errorf("frames %d errors %d, want 4 and 2 (last error %q)", st.Frames, st.Errors, st.LastError)
	}
	for _, i := range idx {
		if i == 2 || i == 4 {
			t.Errorf("delivered the broken image %d", i)
		}
	}
}

func TestSnapshotIsTheNewestFrameAsJPEG(t *testing.T) {
	dir := t.TempDir()
	writePNGs(t, dir, 3, 40, 30)
	c := openTest(t, Config{Source: "images:" + dir})
	if _, err := c.Snapshot(0); err != nil && !errors.Is(err, ErrNoFrame) {
		t.Fatalf("Snapshot before any frame: %v, want ErrNoFrame or a frame", err)
	}
	drain(t, c, func(f *Frame) int { return 0 })
	b, err := c.Snapshot(95)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("snapshot is not a JPEG: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 40 || s.Y != 30 {
		t.Errorf("snapshot is %v, want 40x30", s)
	}
	r, g, bl, _ := img.At(20, 15).RGBA()
	if r>>8 < 190 || g>>8 > 10 || bl>>8 < 1 || bl>>8 > 4 {
		t.Errorf("snapshot centre is rgb(%d,%d,%d), want about (200,0,2) from the last image", r>>8, g>>8, bl>>8)
	}
	if _, err := c.Snapshot(101); err == nil {
		t.Error("quality 101 accepted")
	}
	c.Close()
	if _, err := c.Snapshot(90); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot after Close: %v, want ErrClosed", err)
	}
}

func TestCancellingTheOpenContextStopsTheCamera(t *testing.T) {
	check := leakCheck(t)
	p := filepath.Join(t.TempDir(), "clip.avi")
	writeVideo(t, p, 5, 32, 32)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Open(ctx, Config{Source: "file:" + p + "?loop=1", FPS: 5, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	var f Frame
	if err := c.Next(context.Background(), &f); err != nil {
		t.Fatal(err)
	}
	cancel()
	var err2 error
	for err2 == nil {
		err2 = c.Next(context.Background(), &f)
	}
	if !errors.Is(err2, context.Canceled) {
		t.Errorf("Next after the Open context ended: %v, want context.Canceled", err2)
	}
	c.Close()
	f.Close()
	check()
}

func TestGStreamerPipelineSource(t *testing.T) {
	c := openTest(t, Config{Source: "gst:videotestsrc num-buffers=50 ! video/x-raw,width=96,height=64 ! videoconvert ! video/x-raw,format=BGR ! appsink",
		OpenTimeout: 10 * time.Second})
	var f Frame
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Next(ctx, &f); err != nil {
		t.Fatalf("Next: %v (stats %+v)", err, c.Stats())
	}
	if f.Mat.Cols() != 96 || f.Mat.Rows() != 64 || f.Mat.Channels() != 3 {
		t.Errorf("frame %dx%dx%d, want 96x64x3", f.Mat.Cols(), f.Mat.Rows(), f.Mat.Channels())
	}
}

// stuckReader stands in for an OpenCV read that blocks inside cgo: after one
// frame its read ignores cancellation until release is closed.
type stuckReader struct {
	release <-chan struct{}
	reads   int
	closed  *atomic.Int32
}

func (r *stuckReader) read(_ context.Context, dst *gocv.Mat) error {
	r.reads++
	if r.reads == 1 {
		m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(1, 2, 3, 0), 8, 8, gocv.MatTypeCV8UC3)
		dst.Close()
		*dst = m
		return nil
	}
	<-r.release
	// A late frame from an abandoned read must not be published.
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(9, 9, 9, 0), 8, 8, gocv.MatTypeCV8UC3)
	dst.Close()
	*dst = m
	return nil
}

func (r *stuckReader) skip(context.Context) error { return nil }
func (r *stuckReader) close()                     { r.closed.Add(1) }

func TestReadsStuckInsideOpenCVAreAbandonedAndCloseWaitsForThem(t *testing.T) {
	check := leakCheck(t)
	release := make(chan struct{})
	var opened, closed atomic.Int32
	cfg := Config{Source: "0", Logger: quiet, ReadTimeout: 20 * time.Millisecond,
		Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		open: func(context.Context, Spec, *http.Client) (reader, error) {
			opened.Add(1)
			return &stuckReader{release: release, closed: &closed}, nil
		}}
	c, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three stalled reads to be abandoned", 10*time.Second, func() bool { return c.Stats().Reconnects >= 3 })
	if closed.Load() != 0 {
		t.Fatalf("%d readers closed while their reads were still blocked", closed.Load())
	}
	closeDone := make(chan struct{})
	go func() { c.Close(); close(closeDone) }()
	select {
	case <-closeDone:
		t.Fatal("Close returned while reads were still blocked")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closeDone
	st := c.Stats()
	n := opened.Load()
	if closed.Load() != n {
		t.Errorf("opened %d readers, closed %d: want every reader closed", n, closed.Load())
	}
	// Each reader gives one frame before sticking; Close may cut off the
	// newest reader before its frame. The late frames read after release
	// belong to abandoned sessions and must not count.
	if st.Frames > uint64(n) || st.Frames+1 < uint64(n) {
		t.Errorf("%d frames from %d readers, want one from each (late frames are not published)", st.Frames, n)
	}
	check()
}
