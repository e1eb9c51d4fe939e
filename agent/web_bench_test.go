package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// BenchmarkPageViewerCPU measures what the web page costs the agent: the
// built binary on the demo model, one camera reading 640x480 JPEGs at
// 10 fps, its CPU time (user + system, from /proc/<pid>/stat) over a fixed
// interval, in three runs: without the HTTP server, with it but no viewer,
// and with one viewer of the page (its MJPEG stream at 10 fps and its
// event stream). It prints a table and reports the viewer's cost as
// %core-viewer. Run it alone, once:
//
//	go test ./agent -run '^$' -bench PageViewerCPU -benchtime 1x
//
// SHORTCUT_BENCH_SECONDS sets the interval (default 10).
func BenchmarkPageViewerCPU(b *testing.B) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		b.Skip("needs /proc")
	}
	interval := 10 * time.Second
	if s, err := strconv.Atoi(os.Getenv("SHORTCUT_BENCH_SECONDS")); err == nil && s > 0 {
		interval = time.Duration(s) * time.Second
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "shortcut-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/shortcut-edge/shortcut/cmd/agent").CombinedOutput(); err != nil {
		b.Fatalf("go build cmd/agent: %v\n%s", err, out)
	}
	imgs := filepath.Join(dir, "camera")
	os.MkdirAll(imgs, 0o755)
	for i := range 4 { // a few different pictures, so that no frame is a copy of the last
		writeNoiseJPEG(b, filepath.Join(imgs, fmt.Sprintf("f%d.jpg", i)), 640, 480, uint64(i))
	}
	broker := agenttest.StartMosquitto(b, 0)
	model, _ := filepath.Abs("../configs/demo/fashion-resnet8-int8.tflite")

	// start runs the binary with the HTTP server on addr ("": none) and
	// returns its pid and a stop function.
	start := func(addr string) (int, func()) {
		cfg := filepath.Join(dir, "agent.yaml")
		yaml := fmt.Sprintf(`device: {id: bench}
model: {path: %q, watch: false}
cameras:
  - {id: front, source: "images:%s/*.jpg?loop=1", fps: 10}
mqtt: {broker: %q}
http: {address: %q}
learning: {enabled: false}
log: {level: warn}
`, model, imgs, broker.URL(), addr)
		if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "-config", cfg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second) // start, load the model, settle
		return cmd.Process.Pid, func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	// measure is the process's CPU time over one interval.
	measure := func(pid int) time.Duration {
		t0, err := procCPU(pid)
		if err == nil {
			time.Sleep(interval)
			var t1 time.Duration
			if t1, err = procCPU(pid); err == nil {
				return t1 - t0
			}
		}
		b.Fatal(err)
		return 0
	}
	// view is one viewer of the page: it loads it, then follows the live
	// image and the event stream until stop is called, which returns how
	// many JPEG frames and events it received.
	view := func(base string) (stop func() (frames, events int)) {
		ctx, cancel := context.WithCancel(context.Background())
		if resp, err := http.Get(base + "/"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		frameCount, eventCount := make(chan int, 1), make(chan int, 1)
		follow := func(path, prefix string, count chan<- int) {
			n := 0
			defer func() { count <- n }()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(nil, 4<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), prefix) {
					n++
				}
			}
		}
		go follow("/cameras/front/stream.mjpg", "Content-Type: image/jpeg", frameCount)
		go follow("/api/v1/events", "event: ", eventCount)
		time.Sleep(time.Second)
		return func() (int, int) {
			cancel()
			return <-frameCount, <-eventCount
		}
	}

	pid, stop := start("")
	var noHTTP []time.Duration
	for range 2 {
		noHTTP = append(noHTTP, measure(pid))
	}
	stop()
	addr := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(b))
	pid, stop = start(addr)
	var idle, viewer []time.Duration
	var frames, events int
	for range 2 {
		idle = append(idle, measure(pid))
		end := view("http://" + addr)
		viewer = append(viewer, measure(pid))
		f, e := end()
		frames, events = frames+f, events+e
	}
	stop()

	mean := func(d []time.Duration) float64 {
		var s time.Duration
		for _, x := range d {
			s += x
		}
		return s.Seconds() / float64(len(d)) / interval.Seconds() * 100 // % of one core
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nagent CPU, %% of one core (user+system over %v intervals; demo model, 640x480 JPEG camera at 10 fps):\n", interval)
	fmt.Fprintf(&sb, "%-46s %-18s %8s\n", "run", "intervals", "mean")
	for _, r := range []struct {
		what string
		d    []time.Duration
	}{{"no HTTP server", noHTTP}, {"page served, no viewer", idle}, {"one viewer: MJPEG 640x480 10 fps + events", viewer}} {
		var each []string
		for _, x := range r.d {
			each = append(each, fmt.Sprintf("%.1f%%", 100*x.Seconds()/interval.Seconds()))
		}
		fmt.Fprintf(&sb, "%-46s %-18s %7.1f%%\n", r.what, strings.Join(each, " "), mean(r.d))
	}
	fmt.Fprintf(&sb, "the page with no viewer adds %+.1f%% of a core; one viewer adds %+.1f%% (%d MJPEG frames, %d events received in %v)\n",
		mean(idle)-mean(noHTTP), mean(viewer)-mean(idle), frames, events, 2*interval)
	fmt.Print(sb.String())
	b.ReportMetric(mean(viewer)-mean(idle), "%core-viewer")
	b.ReportMetric(mean(idle)-mean(noHTTP), "%core-idle-page")
}

// procCPU is a process's user + system CPU time so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after its
	// closing parenthesis start with field 3 (state).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	const hz = 100                              // USER_HZ: 100 on every Linux architecture the agent runs on
	return time.Duration(utime+stime) * time.Second / hz, nil
}

// writeNoiseJPEG writes a w x h photo-like JPEG: gradients and noise, as
// hard to compress as a camera's picture.
func writeNoiseJPEG(b testing.TB, path string, w, h int, seed uint64) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(seed, 1))
	for y := range h {
		for x := range w {
			n := uint8(r.IntN(40))
			img.SetRGBA(x, y, color.RGBA{uint8(x*255/w)/2 + n, uint8(y*255/h)/2 + n, uint8(seed*60) + n, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
}
