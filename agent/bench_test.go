package agent_test

// Benchmarks for `make bench` (scripts/bench.sh); plain `go test` never
// runs them. Each reports its own unit and suppresses ns/op where an
// iteration is not the thing measured:
//
//	BenchmarkFrameOverhead  ns/frame: the agent's own cost per frame
//	                        (preprocess copy, decision, JSON, MQTT) with an
//	                        instant classifier, predictions on and off
//	BenchmarkResidentMemory MB_rss: a separate shortcut-agent process with
//	                        an int8 ResNet-50 loaded and classifying
//	BenchmarkPublish        msgs/s: predictions through the agent's
//	                        publisher to mosquitto, counted by a subscriber,
//	                        QoS 0 and 1

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// pacedSource hands out n copies of one ready model input, never more
// than cap(tokens) ahead of whoever takes the tokens back (the classifier,
// or a subscriber), so that the pipeline never drops a frame and never
// spins: it runs exactly as fast as its slowest stage.
type pacedSource struct {
	px     []float32
	n      int
	issued int
	tokens chan struct{}
	start  chan struct{}
}

func newPacedSource(px []float32, n, window int) *pacedSource {
	return &pacedSource{px: px, n: n, tokens: make(chan struct{}, window), start: make(chan struct{})}
}

func (s *pacedSource) Next(ctx context.Context) (agent.Frame, error) {
	select {
	case <-s.start:
	case <-ctx.Done():
		return agent.Frame{}, ctx.Err()
	}
	if s.issued >= s.n {
		return agent.Frame{}, agent.ErrSourceDone
	}
	select {
	case s.tokens <- struct{}{}:
	case <-ctx.Done():
		return agent.Frame{}, ctx.Err()
	}
	s.issued++
	return agent.Frame{Pixels: s.px}, nil
}

// release gives one token back (non-blocking: a stray message is no harm).
func (s *pacedSource) release() {
	select {
	case <-s.tokens:
	default:
	}
}

func (s *pacedSource) Close() error { return nil }

// instantModel is a fake classifier with h x w x c inputs and `classes`
// labels that always gives the same scores (label 0 clearly on top), and
// calls onRun for each frame.
func instantModel(h, w, c, classes int, onRun func()) *agenttest.Classifier {
	labels := make([]string, classes)
	scores := make([]float32, classes)
	for i := range labels {
		labels[i] = fmt.Sprintf("class_%d", i)
		scores[i] = 0.1 / float32(classes)
	}
	scores[0] = 0.9
	return &agenttest.Classifier{
		Model: agent.ModelInfo{Name: "instant", Version: "1", SHA256: strings.Repeat("cd", 32), Labels: labels, Height: h, Width: w, Channels: c},
		Fn: func([]float32) []float32 {
			if onRun != nil {
				onRun()
			}
			return scores
		},
	}
}

// benchAgent starts an agent on broker with one camera fed by src and the
// classifier m, and waits until its MQTT connection is up.
func benchAgent(b *testing.B, brokerURL string, src agent.FrameSource, m agent.Classifier, edit func(*agent.Config)) *agent.Agent {
	b.Helper()
	cfg := testConfig(brokerURL)
	cfg.HTTP.Address = ""
	cfg.Cameras[0].Queue = 16
	cfg.MQTT.ConnectTimeout = 10 * time.Second
	cfg.MQTT.Predictions.Enabled = true
	cfg.MQTT.Predictions.MaxRate = 0
	if edit != nil {
		edit(&cfg)
	}
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		LoadModel:  func(string) (agent.Classifier, error) { return m, nil },
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil }})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			b.Errorf("agent Run did not return %v after cancel", waitLimit)
		}
	})
	agenttest.WaitUntil(b, "the agent's mqtt connection", func() bool { return a.Health().MQTT.Connected })
	return a
}

// counter subscribes to filter at qos and counts the messages (and calls
// onMsg for each).
func counter(b *testing.B, brokerURL, filter string, qos byte, onMsg func()) *atomic.Int64 {
	b.Helper()
	var n atomic.Int64
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("bench-%d", rand.Uint64())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		b.Fatalf("bench subscriber cannot connect: %v", tok.Error())
	}
	tok := c.Subscribe(filter, qos, func(paho.Client, paho.Message) {
		n.Add(1)
		if onMsg != nil {
			onMsg()
		}
	})
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		b.Fatalf("subscribe %q: %v", filter, tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(50) })
	return &n
}

func frames(a *agent.Agent) uint64 {
	h := a.Health()
	if len(h.Cameras) == 0 {
		return 0
	}
	return h.Cameras[0].Frames
}

// waitFrames polls until the agent classified n frames (or the deadline
// passes) and returns how many it did.
func waitFrames(a *agent.Agent, n uint64, deadline time.Time) uint64 {
	for {
		got := frames(a)
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(500 * time.Microsecond)
	}
}

// BenchmarkFrameOverhead is the agent's own time per frame, inference
// excluded: ready 224x224x3 inputs (the preprocess stage copies them), an
// instant classifier with 1000 classes, the decision stage, and the
// publisher on a real mosquitto. With predictions on (max_rate 0) every
// frame makes a prediction payload; pub/frame says how many reached a
// subscriber (the rest were dropped at the full publish queue, which is
// the design: the broker's pace never slows the cameras).
func BenchmarkFrameOverhead(b *testing.B) {
	const perOp = 20000
	broker := agenttest.StartMosquitto(b, 0)
	for _, pred := range []bool{true, false} {
		name := "predictions=on"
		if !pred {
			name = "predictions=off"
		}
		b.Run(name, func(b *testing.B) {
			n := perOp * b.N
			px := make([]float32, 224*224*3)
			for i := range px {
				px[i] = float32(i%255) / 255
			}
			src := newPacedSource(px, n, 16)
			m := instantModel(224, 224, 3, 1000, func() { src.release() })
			a := benchAgent(b, broker.URL(), src, m, func(c *agent.Config) { c.MQTT.Predictions.Enabled = pred })
			got := counter(b, broker.URL(), agent.Topics{Prefix: "shortcut", Device: "testdev"}.Prediction("front"), 0, nil)
			b.ResetTimer()
			t0 := time.Now()
			close(src.start)
			done := waitFrames(a, uint64(n), time.Now().Add(60*time.Second))
			el := time.Since(t0)
			b.StopTimer()
			if done < uint64(n) {
				b.Errorf("only %d of %d frames classified in %v", done, n, el)
			}
			time.Sleep(100 * time.Millisecond) // the last publishes land
			b.ReportMetric(float64(el.Nanoseconds())/float64(max(done, 1)), "ns/frame")
			b.ReportMetric(float64(got.Load())/float64(max(done, 1)), "pub/frame")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPublish is the publisher's sustained rate: predictions of a
// tiny instant model, paced by the subscriber so that none is dropped
// (at most 16 on their way: no more than the camera queue holds),
// published with mqtt.qos 0 or 1 to mosquitto and counted by a
// subscriber at the same QoS. Each publish waits for the broker's
// acknowledgement (QoS 1) or for its write (QoS 0).
func BenchmarkPublish(b *testing.B) {
	const perOp = 10000
	broker := agenttest.StartMosquitto(b, 0)
	for _, qos := range []int{0, 1} {
		b.Run(fmt.Sprintf("qos=%d", qos), func(b *testing.B) {
			n := perOp * b.N
			src := newPacedSource([]float32{0, 0, 0, 0}, n, 16)
			got := counter(b, broker.URL(), "shortcut/testdev/front/prediction", byte(qos), func() { src.release() })
			benchAgent(b, broker.URL(), src, instantModel(2, 2, 1, 3, nil), func(c *agent.Config) {
				c.MQTT.QoS = qos
				c.MQTT.ClientID = fmt.Sprintf("bench-agent-%d", qos)
			})
			b.ResetTimer()
			t0 := time.Now()
			close(src.start)
			deadline := time.Now().Add(30 * time.Second)
			for got.Load() < int64(n) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			el := time.Since(t0)
			b.StopTimer()
			if c := got.Load(); c < int64(n) {
				b.Errorf("subscriber got %d of %d predictions in %v", c, n, el)
			}
			b.ReportMetric(float64(got.Load())/el.Seconds(), "msgs/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkResidentMemory is the resident memory of a real shortcut-agent
// process (built here with go build) with an int8 ResNet-50 (224x224,
// 1000 classes, random weights, ~25 MB of weights) loaded, a synthetic
// camera at 5 fps, the embedded broker and HTTP: read from /proc once
// /healthz is ready and some frames were classified. The target is at
// most 150 MB (reported, not asserted). MB_hwm is the peak so far.
func BenchmarkResidentMemory(b *testing.B) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		b.Skip("no go command to build the agent with")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "shortcut-agent")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../cmd/agent").CombinedOutput(); err != nil {
		b.Fatalf("go build ../cmd/agent: %v\n%s", err, out)
	}
	model := filepath.Join(dir, "resnet50-int8.tflite")
	writeResNet50(b, model)
	st, err := os.Stat(model)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rss, hwm, frames := agentRSS(b, bin, model, dir)
		b.ReportMetric(rss, "MB_rss")
		b.ReportMetric(hwm, "MB_hwm")
		b.ReportMetric(float64(frames), "frames")
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "MB_model")
	b.ReportMetric(0, "ns/op")
}

func writeResNet50(b *testing.B, path string) {
	b.Helper()
	m, err := build.ResNet(build.Config{Depth: 50, Input: [3]int{224, 224, 3}, Classes: 1000, Weights: build.RandomWeights(1),
		Meta: resnet.Metadata{Name: "resnet50-random", Version: "1", Mean: []float32{0.5}, Std: []float32{0.25}}})
	if err != nil {
		b.Fatalf("building ResNet-50: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	var samples []quant.Sample
	for range 2 {
		v := make([]float32, 224*224*3)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		samples = append(samples, quant.Sample{v})
	}
	if m, err = quant.Model(m, samples, quant.Options{}); err != nil {
		b.Fatalf("quantizing ResNet-50: %v", err)
	}
	if err := m.WriteFile(path); err != nil {
		b.Fatal(err)
	}
}

// agentRSS runs the agent binary with model until it is ready and has
// classified a few frames, and returns its VmRSS and VmHWM in MB.
func agentRSS(b *testing.B, bin, model, dir string) (rss, hwm float64, frames uint64) {
	b.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", agenttest.FreePort(b))
	conf := filepath.Join(dir, "agent.yaml")
	yaml := fmt.Sprintf(`device: {id: bench}
model: {path: %q, watch: false}
cameras:
  - {id: front, source: synthetic, fps: 5, queue: 2}
mqtt: {broker: ""}
embedded_broker: {address: "127.0.0.1:%d"}
http: {address: %q}
learning: {enabled: false}
log: {level: warn}
`, model, agenttest.FreePort(b), httpAddr)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", conf)
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	const minFrames = 5
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("the agent exited: %v\n%s", err, log)
		default:
		}
		var h agent.Health
		ok := false
		if resp, err := http.Get("http://" + httpAddr + "/healthz"); err == nil {
			ok = json.NewDecoder(resp.Body).Decode(&h) == nil && resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
		if ok && len(h.Cameras) > 0 && h.Cameras[0].Frames >= minFrames {
			frames = h.Cameras[0].Frames
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("the agent was not ready with %d frames within 60s (health %+v)\n%s", minFrames, h, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v) // "123456 kB"
		if len(f) != 2 {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		case "RssAnon", "RssFile":
			// Anonymous memory is ours (heap, weights); file memory is
			// mostly the shared libraries OpenCV brings.
			b.Logf("%s: %.1f MB", k, kb/1024)
		}
	}
	return rss, hwm, frames
}
