package cvsource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/agent/cvsource"
	"github.com/shortcut-edge/shortcut/camera"
)

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// writeVideo writes an MJPG .avi of n frames with OpenCV's VideoWriter:
// solid colours that change from frame to frame.
func writeVideo(t *testing.T, path string, n, w, h int) {
	t.Helper()
	vw, err := gocv.VideoWriterFile(path, "MJPG", 25, w, h, true)
	if err != nil {
		t.Fatalf("VideoWriter %s: %v", path, err)
	}
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	for i := 0; i < n; i++ {
		m.SetTo(gocv.NewScalar(float64(i*8%256), float64(255-i*5%256), 128, 0))
		if err := vw.Write(m); err != nil {
			t.Fatalf("write frame %d to %s: %v", i, path, err)
		}
	}
	vw.Close()
}

var (
	modelOnce sync.Once
	modelPath string
	modelDir  string
)

func tinyModel(t *testing.T) string {
	modelOnce.Do(func() {
		var err error
		if modelDir, err = os.MkdirTemp("", "cvsource-model-"); err != nil {
			t.Fatal(err)
		}
		modelPath = agenttest.WriteModel(t, modelDir, agenttest.ModelConfig{Labels: []string{"cat", "dog", "empty"}, Seed: 3})
	})
	if modelPath == "" {
		t.Fatal("the test model could not be built (see the first failure)")
	}
	return modelPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if modelDir != "" {
		os.RemoveAll(modelDir)
	}
	os.Exit(code)
}

// newAgent runs an agent with one camera on source, on the real test model
// and a real mosquitto, with the OpenCV sources as cmd/agent wires them.
func newAgent(t *testing.T, broker *agenttest.Broker, source string, o cvsource.Options) *agent.Agent {
	t.Helper()
	cfg := agent.Defaults()
	cfg.Device.ID = "cvdev"
	cfg.Model.Path = tinyModel(t)
	cfg.Model.Watch = false
	cfg.Cameras = []agent.CameraConfig{{ID: "front", Source: source, FPS: 40, Queue: 2}}
	cfg.MQTT.Broker = broker.URL()
	cfg.MQTT.ReconnectMin, cfg.MQTT.ReconnectMax = 100*time.Millisecond, 200*time.Millisecond
	cfg.MQTT.Predictions.MaxRate = 0
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.Learning.Enabled = false
	o.Logger = quiet()
	a, err := agent.New(cfg, agent.Options{Logger: quiet(), OpenSource: cvsource.Opener(o), CheckSource: cvsource.Check})
	if err != nil {
		t.Fatalf("agent.New with source %q: %v", source, err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent Run: %v", err)
			}
		case <-time.After(agenttest.WaitLimit):
			t.Errorf("agent Run did not return after cancel")
		}
	})
	return a
}

func TestAVideoFileFlowsThroughTheAgentToMQTT(t *testing.T) {
	video := filepath.Join(t.TempDir(), "clip.avi")
	writeVideo(t, video, 30, 64, 48)
	broker := agenttest.StartMosquitto(t, 0)
	sub := agenttest.Subscribe(t, broker.URL(), "shortcut/cvdev/#")
	a := newAgent(t, broker, "file:"+video+"?loop=1", cvsource.Options{})
	base := "http://" + a.HTTPAddr()

	preds := sub.WaitFor("shortcut/cvdev/front/prediction", "predictions from the video", agenttest.AtLeast(40))
	var last uint64
	for i, m := range preds {
		var p agent.Prediction
		if err := json.Unmarshal([]byte(m.Payload), &p); err != nil {
			t.Fatalf("prediction %d is not JSON: %v", i, err)
		}
		if p.Seq <= last {
			t.Errorf("prediction %d has seq %d after %d; seq must increase", i, p.Seq, last)
		}
		last = p.Seq
		if p.Camera != "front" || p.Model.Name != "tiny" || len(p.TopK) != 3 || !strings.Contains("cat dog empty", p.Label) {
			t.Fatalf("prediction %d does not match the payload contract: %+v", i, p)
		}
	}
	if last < 31 {
		t.Errorf("the last seq is %d after %d predictions of a looping 30-frame video; the loop should go on past 30", last, len(preds))
	}

	agenttest.WaitUntil(t, "healthz ready with the camera ok", func() bool {
		h := health(t, base)
		return h.Status == "ready" && h.Cameras[0].Source != nil && h.Cameras[0].Source.State == "ok"
	})
	m := metricsText(t, base)
	for _, series := range []string{`shortcut_camera_state{camera="front",state="ok"} 1`, `shortcut_camera_state{camera="front",state="reconnecting"} 0`} {
		if !strings.Contains(m, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if v := metricValue(m, `shortcut_camera_frames_total{camera="front"}`); v < 30 {
		t.Errorf("shortcut_camera_frames_total = %v, want the frames read (>= 30)", v)
	}
	for _, name := range []string{`shortcut_camera_dropped_total{camera="front"}`, `shortcut_camera_reconnects_total{camera="front"}`, `shortcut_camera_errors_total{camera="front"}`} {
		if metricValue(m, name) < 0 {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// The snapshot is the camera's full frame, not the 16x16 model input.
	resp, err := http.Get(base + "/snapshot.jpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, err := jpeg.Decode(resp.Body)
	if err != nil {
		t.Fatalf("/snapshot.jpg: %s, not a JPEG: %v", resp.Status, err)
	}
	if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
		t.Errorf("snapshot is %v, want the video's 64x48", img.Bounds())
	}
}

func TestACameraThatDisappearsMakesHealthDegradedUntilItIsBack(t *testing.T) {
	cam := startMJPEG(t)
	broker := agenttest.StartMosquitto(t, 0)
	a := newAgent(t, broker, cam.url(), cvsource.Options{Backoff: camera.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}})
	base := "http://" + a.HTTPAddr()
	agenttest.WaitUntil(t, "healthz ready on the MJPEG camera", func() bool { return health(t, base).Status == "ready" })

	cam.stop()
	var h agent.Health
	agenttest.WaitUntil(t, "healthz degraded with the camera reconnecting", func() bool {
		h = health(t, base)
		return h.Status == "degraded" && strings.Contains(strings.Join(h.Reasons, "; "), "camera front: source reconnecting")
	})
	if h.Cameras[0].Source == nil || h.Cameras[0].Source.LastError == "" {
		t.Errorf("healthz camera = %+v, want the source's last error", h.Cameras[0])
	}
	agenttest.WaitUntil(t, "reconnects counted in /metrics", func() bool {
		m := metricsText(t, base)
		return metricValue(m, `shortcut_camera_reconnects_total{camera="front"}`) >= 1 &&
			strings.Contains(m, `shortcut_camera_state{camera="front",state="reconnecting"} 1`)
	})

	frames := health(t, base).Cameras[0].Frames
	cam.start()
	agenttest.WaitUntil(t, "healthz ready again with new frames classified", func() bool {
		h := health(t, base)
		return h.Status == "ready" && h.Cameras[0].Frames > frames+5 && h.Cameras[0].Source.State == "ok"
	})
}

func TestCheckAcceptsEveryCameraSourceStringAndRefusesTyposAndMissingFiles(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "clip.avi")
	writeVideo(t, video, 3, 32, 24)
	frames := filepath.Join(dir, "frames")
	os.Mkdir(frames, 0o755)
	writePNG(t, filepath.Join(frames, "a.png"), color.RGBA{10, 20, 30, 255}, 8, 8)
	for _, tc := range []struct {
		source string
		ok     bool
	}{
		{"synthetic", true},
		{"0", true},
		{"/dev/video7?width=1280&height=720&fps=30&fourcc=MJPG", true}, // devices may be plugged in later
		{"file:" + video, true},
		{"file:" + video + "?loop=1", true},
		{video, true},
		{"images:" + frames, true},
		{"images:" + frames + "/*.png?loop=1", true},
		{"rtsp://user:pass@cam.local:554/stream1", true},
		{"http://cam.local:8080/?action=stream", true},
		{"https://cam.local/mjpeg", true},
		{"gst:videotestsrc ! videoconvert ! appsink", true},
		{"", false},
		{"file:" + filepath.Join(dir, "missing.avi"), false},
		{"images:" + filepath.Join(dir, "nothing", "*.png"), false},
		{"images:" + frames + "?loop=sometimes", false},
		{"ftp://cam.local/x", false},
		{"gst:videotestsrc ! fakesink", false},
		{"webcam:0", false},
		{"/dev/video0?colour=red", false},
	} {
		err := cvsource.Check(tc.source)
		if (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.source, err, tc.ok)
		}
	}
	// The same strings go through the agent's configuration, with key paths.
	yaml := fmt.Sprintf("device: {id: d}\ncameras:\n  - {id: a, source: %q}\n  - {id: b, source: \"rtsp://cam/x\"}\n  - {id: c, source: \"ftp://x\"}\n", video)
	_, err := agent.ParseConfig("t.yaml", []byte(yaml), agent.ConfigOptions{Getenv: func(string) string { return "" }, CheckSource: cvsource.Check})
	if err == nil || !strings.Contains(err.Error(), "cameras[2].source") || strings.Contains(err.Error(), "cameras[0]") || strings.Contains(err.Error(), "cameras[1]") {
		t.Errorf("config with a video file, an RTSP URL and an ftp URL: %v; want one error, at cameras[2].source", err)
	}
}

func TestPixelsAreTheModelsInputAndFollowAModelChange(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a.png"), color.RGBA{255, 0, 51, 255}, 40, 30)
	src, err := cvsource.Open(agent.CameraConfig{ID: "x", Source: "images:" + dir + "?loop=1"}, cvsource.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.WaitLimit)
	defer cancel()
	if _, err := src.Next(ctx); err == nil {
		t.Errorf("Next before SetModel gave no error")
	}
	for _, tc := range []struct {
		info agent.ModelInfo
		want []float32 // per pixel
	}{
		{agent.ModelInfo{Name: "rgb", Height: 4, Width: 6, Channels: 3, Mean: []float32{0.5}, Std: []float32{0.5}}, []float32{1, -1, -0.6}},
		{agent.ModelInfo{Name: "grey", Height: 2, Width: 2, Channels: 1}, []float32{(0.299*255 + 0.114*51) / 255}},
	} {
		src.SetModel(tc.info)
		f, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := tc.info.Height * tc.info.Width * tc.info.Channels
		if len(f.Pixels) != n || f.Image != nil || f.Seq == 0 {
			t.Fatalf("model %s: frame has %d pixels (want %d), image %v, seq %d", tc.info.Name, len(f.Pixels), n, f.Image != nil, f.Seq)
		}
		for i, v := range f.Pixels {
			if want := tc.want[i%len(tc.want)]; math.Abs(float64(v-want)) > 0.01 {
				t.Fatalf("model %s: value %d is %v, want %v", tc.info.Name, i, v, want)
			}
		}
	}
	if st := src.SourceStats(); st.State != "ok" || st.Frames < 2 {
		t.Errorf("stats %+v, want state ok with the frames read", st)
	}
	if b, err := src.Snapshot(80); err != nil || !bytes.HasPrefix(b, []byte{0xFF, 0xD8}) {
		t.Errorf("Snapshot: %v", err)
	}
}

func writePNG(t *testing.T, path string, c color.RGBA, w, h int) {
	t.Helper()
	m := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer m.Close()
	m.SetTo(gocv.NewScalar(float64(c.B), float64(c.G), float64(c.R), 0))
	if !gocv.IMWrite(path, m) {
		t.Fatalf("IMWrite %s failed", path)
	}
}

// mjpegCam is an MJPEG-over-HTTP camera on a fixed loopback port that a
// test can unplug (stop) and plug in again (start).
type mjpegCam struct {
	t    *testing.T
	addr string
	jpgs [][]byte
	srv  *http.Server
	wg   sync.WaitGroup
}

func startMJPEG(t *testing.T) *mjpegCam {
	c := &mjpegCam{t: t, addr: "127.0.0.1:" + strconv.Itoa(agenttest.FreePort(t))}
	for i := range 8 {
		img := image.NewRGBA(image.Rect(0, 0, 32, 24))
		for p := range img.Pix {
			img.Pix[p] = uint8(i*30 + p%7)
		}
		var b bytes.Buffer
		jpeg.Encode(&b, img, nil)
		c.jpgs = append(c.jpgs, b.Bytes())
	}
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *mjpegCam) url() string { return "http://" + c.addr + "/stream.mjpg" }

func (c *mjpegCam) start() {
	var ln net.Listener
	agenttest.WaitUntil(c.t, "the camera's port to be free again", func() bool {
		var err error
		ln, err = net.Listen("tcp", c.addr)
		return err == nil
	})
	c.srv = &http.Server{Handler: http.HandlerFunc(c.serve)}
	c.wg.Go(func() { c.srv.Serve(ln) })
}

func (c *mjpegCam) stop() {
	if c.srv != nil {
		c.srv.Close()
		c.wg.Wait()
		c.srv = nil
	}
}

func (c *mjpegCam) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "multipart/x-mixed-replace; boundary=frame")
	for i := 0; ; i++ {
		b := c.jpgs[i%len(c.jpgs)]
		if _, err := fmt.Fprintf(w, "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", len(b)); err != nil {
			return
		}
		if _, err := w.Write(append(b, '\r', '\n')); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-time.After(10 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	}
}

func health(t *testing.T, base string) agent.Health {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h agent.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("/healthz is not JSON: %v", err)
	}
	return h
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestAModelWithImageSizeGetsFramesInItsContentArea: for a model whose
// metadata says image_size [12, 12] in its 16x16 input, the OpenCV source
// fits frames into the centred 12x12 area and leaves black (pixel 0:
// exactly -mean/std = -2) around it; a model without it gets the whole
// input again.
func TestAModelWithImageSizeGetsFramesInItsContentArea(t *testing.T) {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a.png"), color.RGBA{255, 0, 51, 255}, 40, 30)
	path := agenttest.WriteModel(t, t.TempDir(), agenttest.ModelConfig{Labels: []string{"cat", "dog", "empty"}, Seed: 3, ImageSize: [2]int{12, 12}})
	c, err := agent.LoadModel(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := cvsource.Open(agent.CameraConfig{ID: "x", Source: "images:" + dir + "?loop=1", Preprocess: agent.PreprocessConfig{Fit: agent.FitCrop}},
		cvsource.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.WaitLimit)
	defer cancel()
	colour := []float32{(1 - 0.5) / 0.25, (0 - 0.5) / 0.25, (0.2 - 0.5) / 0.25}
	for _, tc := range []struct {
		name    string
		info    agent.ModelInfo
		content image.Rectangle
	}{
		{"with image_size", c.Info(), image.Rect(2, 2, 14, 14)},
		{"without", agent.ModelInfo{Name: "plain", Height: 16, Width: 16, Channels: 3, Mean: []float32{0.5}, Std: []float32{0.25}}, image.Rect(0, 0, 16, 16)},
	} {
		src.SetModel(tc.info)
		f, err := src.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Pixels) != 16*16*3 {
			t.Fatalf("%s: %d values, want 16x16x3", tc.name, len(f.Pixels))
		}
		bad := 0
		for y := range 16 {
			for x := range 16 {
				for k := range 3 {
					v := f.Pixels[(y*16+x)*3+k]
					ok := v == -2
					if image.Pt(x, y).In(tc.content) {
						ok = math.Abs(float64(v-colour[k])) < 0.02
					}
					if !ok {
						if bad++; bad < 5 {
							t.Errorf("%s: pixel (%d,%d) channel %d = %v (content area %v)", tc.name, x, y, k, v, tc.content)
						}
					}
				}
			}
		}
	}
}
