package camera

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

var quiet = slog.New(slog.DiscardHandler)

// Frames in test videos and streams are solid colours that encode their
// index robustly enough to survive JPEG: blue = (i%32)*8, green = (i/32)*8.
func codedColor(i int) gocv.Scalar {
	return gocv.NewScalar(float64(i%32*8), float64(i/32*8), 128, 0)
}

// codedIndex reads the index back from a frame's centre pixel.
func codedIndex(m gocv.Mat) int {
	v := m.GetVecbAt(m.Rows()/2, m.Cols()/2)
	return int(math.Round(float64(v[0])/8)) + 32*int(math.Round(float64(v[1])/8))
}

// writeVideo writes an MJPG .avi of n coded frames.
func writeVideo(t testing.TB, path string, n, w, h int) {
	t.Helper()
	vw, err := gocv.VideoWriterFile(path, "MJPG", 25, w, h, true)
	if err != nil {
		t.Fatalf("VideoWriter %s: %v", path, err)
	}
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	for i := 0; i < n; i++ {
		m.SetTo(codedColor(i))
		if err := vw.Write(m); err != nil {
			t.Fatalf("write frame %d to %s: %v", i, path, err)
		}
	}
	vw.Close()
}

// writePNGs writes n lossless images whose top-left pixel holds the index
// exactly (blue = low byte, green = high byte), named frame-0000.png....
func writePNGs(t testing.TB, dir string, n, w, h int) {
	t.Helper()
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	for i := 0; i < n; i++ {
		m.SetTo(gocv.NewScalar(float64(i&0xff), float64(i>>8), 200, 0))
		p := filepath.Join(dir, fmt.Sprintf("frame-%04d.png", i))
		if !gocv.IMWrite(p, m) {
			t.Fatalf("IMWrite %s failed", p)
		}
	}
}

func pngIndex(m gocv.Mat) int {
	v := m.GetVecbAt(0, 0)
	return int(v[0]) | int(v[1])<<8
}

// fakeClock advances only when the camera sleeps, so pacing is exact.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  time.Duration
	sleeps []time.Duration
}

func (f *fakeClock) sleepsSoFar() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.now = f.now.Add(max(d, 0))
	f.slept += max(d, 0)
	f.sleeps = append(f.sleeps, d)
	f.mu.Unlock()
	runtime.Gosched()
	return nil
}

// openTest opens a camera and closes it when the test ends.
func openTest(t testing.TB, cfg Config) *Camera {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%q): %v", cfg.Source, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mjpegServer is an MJPEG-over-HTTP camera of our own on 127.0.0.1 that can
// be stopped and restarted on the same port.
type mjpegServer struct {
	t        testing.TB
	addr     string
	perConn  int           // frames per connection before the stream ends; 0 = endless
	interval time.Duration // between frames
	hang     bool          // after the first frame, send nothing more but keep the connection
	once     bool          // serve one connection, then answer 503
	jpegs    [][]byte
	served   atomic.Int64
	srv      *http.Server
	wg       sync.WaitGroup
}

func newMJPEGServer(t testing.TB, s *mjpegServer) *mjpegServer {
	t.Helper()
	s.t = t
	m := gocv.NewMatWithSize(48, 64, gocv.MatTypeCV8UC3)
	defer m.Close()
	for i := 0; i < 64; i++ {
		m.SetTo(codedColor(i))
		b, err := gocv.IMEncode(gocv.JPEGFileExt, m)
		if err != nil {
			t.Fatal(err)
		}
		s.jpegs = append(s.jpegs, b)
	}
	s.addr = "127.0.0.1:0"
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *mjpegServer) url() string { return "http://" + s.addr + "/stream.mjpg" }

func (s *mjpegServer) start() {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.srv.Serve(ln)
	}()
}

func (s *mjpegServer) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.wg.Wait()
		s.srv = nil
	}
}

func (s *mjpegServer) serve(w http.ResponseWriter, r *http.Request) {
	n := s.served.Add(1)
	if s.once && n > 1 {
		http.Error(w, "gone", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	fl := w.(http.Flusher)
	for i := 0; s.perConn == 0 || i < s.perConn; i++ {
		b := s.jpegs[i%len(s.jpegs)]
		if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(b)); err != nil {
			return
		}
		if _, err := w.Write(append(b, '\r', '\n')); err != nil {
			return
		}
		fl.Flush()
		if s.hang {
			<-r.Context().Done()
			return
		}
		if s.interval > 0 {
			select {
			case <-time.After(s.interval):
			case <-r.Context().Done():
				return
			}
		}
	}
	fmt.Fprintf(w, "--frame--\r\n")
}

// leakCheck records goroutines and open Mats now; call the returned
// function after closing everything to compare.
func leakCheck(t *testing.T) func() {
	t.Helper()
	g0 := runtime.NumGoroutine()
	m0, counting := openMats()
	return func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if g := runtime.NumGoroutine(); g > g0 {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before, %d after closing everything\n%s", g0, g, buf)
		}
		if !counting {
			t.Log("Mat leak check needs -tags matprofile (gocv's Mat profile); goroutines were checked")
			return
		}
		if m, _ := openMats(); m != m0 {
			t.Errorf("open Mats: %d before, %d after closing everything (a Mat leaked)", m0, m)
		}
	}
}

func tempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}
