package agent_test

import (
	"encoding/json"
	"image"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// loopingAgent is an agent on the fake model whose camera replays frames
// forever (catFrames: always "cat" with score 0.9).
func loopingAgent(t *testing.T, cfg agent.Config, getenv func(string) string) *agent.Agent {
	t.Helper()
	src := agenttest.Tensors(framesFor(0)...)
	src.Loop = true
	cfg.Cameras[0].FPS = 200
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), Getenv: getenv,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDiscoveryIsRepublishedAfterABrokerRestart(t *testing.T) {
	broker := startMosquitto(t, 0)
	a := loopingAgent(t, testConfig(broker.URL()), nil)
	running(t, a)
	sub := subscribe(t, broker.URL(), "homeassistant/#", "shortcut/testdev/availability")
	sub.WaitFor("homeassistant/sensor/testdev/front/config", "discovery", atLeast(1))

	broker.Stop() // persistence false: retained discovery is gone with it
	broker = startMosquitto(t, broker.Port)
	after := subscribe(t, broker.URL(), "homeassistant/#", "shortcut/testdev/availability", "shortcut/testdev/front/state")
	after.WaitFor("homeassistant/sensor/testdev/front/config", "discovery republished on reconnect", atLeast(1))
	after.WaitFor("shortcut/testdev/availability", "online again", hasPayload(agent.Online))
	after.WaitFor("shortcut/testdev/front/state", "state republished on reconnect", atLeast(1))
}

func TestDiscoveryIsRepublishedWhenHomeAssistantComesOnline(t *testing.T) {
	broker := startMosquitto(t, 0)
	a := loopingAgent(t, testConfig(broker.URL()), nil)
	running(t, a)
	sub := subscribe(t, broker.URL(), "homeassistant/sensor/#")
	sub.WaitFor("homeassistant/sensor/testdev/front/config", "the first discovery", atLeast(1))
	sub.WaitFor("homeassistant/sensor/testdev/front/config", "only one discovery", func(ms []msg) bool { return len(ms) == 1 })
	tok := sub.Client.Publish("homeassistant/status", 1, false, "online")
	tok.Wait()
	sub.WaitFor("homeassistant/sensor/testdev/front/config", "discovery again after homeassistant/status online", atLeast(2))
}

func TestAgentStartsWithoutBrokerAndConnectsWhenItAppears(t *testing.T) {
	port := freePort(t) // nothing listens here yet
	cfg := testConfig("tcp://127.0.0.1:" + strconv.Itoa(port))
	a := loopingAgent(t, cfg, nil)
	running(t, a)
	base := "http://" + a.HTTPAddr()

	// Frames flow, predictions are dropped (not stored) while the broker is away.
	waitUntil(t, "frames classified and prediction publishes dropped", func() bool {
		m := metricsText(t, base)
		return metricValue(m, `shortcut_frames_total{camera="front"}`) > 50 &&
			metricValue(m, `shortcut_mqtt_publishes_total{kind="prediction",result="dropped"}`) > 50
	})
	h := health(t, base)
	if h.Status != "degraded" || h.MQTT.Connected || !strings.Contains(strings.Join(h.Reasons, ";"), "mqtt: not connected") {
		t.Errorf("health without a broker = %+v, want degraded with an mqtt reason", h)
	}
	if m := metricsText(t, base); metricValue(m, "shortcut_mqtt_connected") != 0 {
		t.Errorf("shortcut_mqtt_connected = %v without a broker, want 0", metricValue(m, "shortcut_mqtt_connected"))
	}

	broker := startMosquitto(t, port)
	sub := subscribe(t, broker.URL(), "shortcut/#")
	sub.WaitFor("shortcut/testdev/availability", "online once the broker appears", hasPayload(agent.Online))
	sub.WaitFor("shortcut/testdev/front/prediction", "predictions", atLeast(3))
	waitUntil(t, "healthz ready", func() bool { return health(t, base).Status == "ready" })
	if m := metricsText(t, base); metricValue(m, "shortcut_mqtt_connected") != 1 {
		t.Errorf("shortcut_mqtt_connected = %v when connected, want 1", metricValue(m, "shortcut_mqtt_connected"))
	}
}

func TestWithoutABrokerConfiguredTheEmbeddedBrokerServes(t *testing.T) {
	cfg := testConfig("")
	cfg.EmbeddedBroker.Address = "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := loopingAgent(t, cfg, nil)
	running(t, a)
	sub := subscribe(t, "tcp://"+cfg.EmbeddedBroker.Address, "shortcut/#")
	sub.WaitFor("shortcut/testdev/availability", "online on the embedded broker", hasPayload(agent.Online))
	sub.WaitFor("shortcut/testdev/front/prediction", "predictions on the embedded broker", atLeast(2))
	if h := health(t, "http://"+a.HTTPAddr()); !h.MQTT.Embedded {
		t.Errorf("healthz mqtt = %+v, want embedded true", h.MQTT)
	}
}

func TestEmbeddedBrokerOnABusyAddressIsAClearError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig("")
	cfg.EmbeddedBroker.Address = ln.Addr().String()
	a := loopingAgent(t, cfg, nil)
	if err := a.Start(); err == nil || !strings.Contains(err.Error(), "embedded_broker.address") {
		t.Errorf("Start with a busy embedded broker address = %v, want an error naming embedded_broker.address", err)
	}
}

func TestHTTPServesHealthMetricsAndSnapshot(t *testing.T) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	src := agenttest.Images(img)
	src.Loop = true
	cfg.Cameras[0].FPS = 100
	model := fakeModel(contractTable)
	model.Fn = func([]float32) []float32 { return contractTable[0] }
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	base := "http://" + a.HTTPAddr()
	waitUntil(t, "healthz ready", func() bool { return health(t, base).Status == "ready" })

	m := metricsText(t, base)
	for _, name := range []string{"shortcut_frames_total", "shortcut_frames_dropped_total", "shortcut_stage_seconds_bucket",
		"shortcut_mqtt_connected", "shortcut_mqtt_publishes_total", "shortcut_model_info", "shortcut_errors_total"} {
		if !strings.Contains(m, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for _, stage := range []string{"capture", "preprocess", "inference", "total"} {
		if !strings.Contains(m, `shortcut_stage_seconds_count{camera="front",stage="`+stage+`"}`) {
			t.Errorf("/metrics lacks stage %s", stage)
		}
	}
	if !strings.Contains(m, `shortcut_model_info{head_version="",name="fake",sha256="`+strings.Repeat("ab", 32)+`",version="7"} 1`) {
		t.Errorf("/metrics lacks the model info series")
	}

	resp, err := http.Get(base + "/snapshot.jpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "image/jpeg" {
		t.Fatalf("/snapshot.jpg: %s %s", resp.Status, ct)
	}
	snap, err := jpeg.Decode(resp.Body)
	if err != nil {
		t.Fatalf("/snapshot.jpg is not a JPEG: %v", err)
	}
	if snap.Bounds() != img.Bounds() {
		t.Errorf("snapshot is %v, want the camera's %v", snap.Bounds(), img.Bounds())
	}
	if r, _ := http.Get(base + "/snapshot.jpg?camera=nope"); r == nil || r.StatusCode != 404 {
		t.Errorf("/snapshot.jpg?camera=nope: want 404")
	}
}

func TestSystemdGetsReadyAndWatchdogOnlyWhileFramesFlow(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "40000"} // 40 ms: pings every 20 ms
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	const frames = 6
	src := agenttest.Tensors(framesFor(0, 0, 0, 0, 0, 0)...)
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), Getenv: func(k string) string { return env[k] },
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	read := func(limit time.Duration) (string, bool) {
		conn.SetReadDeadline(time.Now().Add(limit))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
	first, ok := read(waitLimit)
	if !ok || !strings.HasPrefix(first, "READY=1") {
		t.Fatalf("first notification = %q, want READY=1", first)
	}
	base := "http://" + a.HTTPAddr()
	waitUntil(t, "all frames classified", func() bool {
		h := health(t, base)
		return len(h.Cameras) == 1 && h.Cameras[0].Frames == frames
	})
	// Frames stopped. Drain what was sent for the last frames, then the
	// pings must stop: many watchdog periods pass in silence.
	for {
		if _, ok := read(200 * time.Millisecond); !ok {
			break
		}
	}
	if got, ok := read(300 * time.Millisecond); ok {
		t.Errorf("got %q after frames stopped; the watchdog must not be fed without frames", got)
	}
}

func TestSystemdWatchdogIsFedWhileFramesFlow(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env := map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "40000"}
	broker := startMosquitto(t, 0)
	a := loopingAgent(t, testConfig(broker.URL()), func(k string) string { return env[k] })
	running(t, a)
	seen := map[string]int{}
	conn.SetReadDeadline(time.Now().Add(waitLimit))
	for seen["WATCHDOG=1"] < 3 {
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notifications so far %v: %v", seen, err)
		}
		if seen["WATCHDOG=1"] == 0 && seen["READY"] == 0 && string(buf[:n]) == "WATCHDOG=1" {
			t.Errorf("WATCHDOG=1 came before READY=1")
		}
		if strings.HasPrefix(string(buf[:n]), "READY=1") {
			seen["READY"]++
		}
		seen[string(buf[:n])]++
	}
	if seen["READY"] != 1 {
		t.Errorf("READY=1 sent %d times, want once", seen["READY"])
	}
}

// --- helpers for HTTP ---

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
	if (h.Status == "ready") != (resp.StatusCode == 200) {
		t.Errorf("/healthz status %q came with HTTP %d; want 200 for ready, 503 for degraded", h.Status, resp.StatusCode)
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
