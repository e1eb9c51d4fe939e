package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// waitLimit bounds every wait for something the agent should do; it is a
// deadlock guard, not a timing assertion.
const waitLimit = 20 * time.Second

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// mosquitto is a real broker on a loopback port, owned by one test.
type mosquitto struct {
	t    *testing.T
	port int
	conf string
	cmd  *exec.Cmd
}

func startMosquitto(t *testing.T, port int) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/mosquitto"); e != nil {
			t.Fatalf("mosquitto is not installed (apt-get install mosquitto): %v", err)
		}
		bin = "/usr/sbin/mosquitto"
	}
	if port == 0 {
		port = freePort(t)
	}
	m := &mosquitto{t: t, port: port, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	t.Cleanup(m.stop)
	deadline := time.Now().Add(waitLimit)
	for {
		c, err := net.Dial("tcp", m.addr())
		if err == nil {
			c.Close()
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %s: %v", m.addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquitto) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }
func (m *mosquitto) url() string  { return "tcp://" + m.addr() }

func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

// msg is one message a subscriber saw.
type msg struct {
	Topic    string
	Payload  string
	Retained bool
}

// subscriber records every message on its filters.
type subscriber struct {
	t      *testing.T
	client paho.Client
	mu     sync.Mutex
	msgs   []msg
}

func subscribe(t *testing.T, brokerURL string, filters ...string) *subscriber {
	t.Helper()
	s := &subscriber{t: t}
	o := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(fmt.Sprintf("test-%d", rand.Uint64())).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(true)
	s.client = paho.NewClient(o)
	if tok := s.client.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("test subscriber cannot connect to %s: %v", brokerURL, tok.Error())
	}
	for _, f := range filters {
		tok := s.client.Subscribe(f, 1, func(_ paho.Client, m paho.Message) {
			s.mu.Lock()
			s.msgs = append(s.msgs, msg{Topic: m.Topic(), Payload: string(m.Payload()), Retained: m.Retained()})
			s.mu.Unlock()
		})
		if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
			t.Fatalf("subscribe %q: %v", f, tok.Error())
		}
	}
	t.Cleanup(func() { s.client.Disconnect(50) })
	return s
}

func (s *subscriber) on(topic string) []msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []msg
	for _, m := range s.msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls until ok holds on the messages of topic.
func (s *subscriber) waitFor(topic, what string, ok func([]msg) bool) []msg {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		got := s.on(topic)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %v for %s on %q; got %d message(s): %v", waitLimit, what, topic, len(got), got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hasPayload(p string) func([]msg) bool {
	return func(ms []msg) bool {
		for _, m := range ms {
			if m.Payload == p {
				return true
			}
		}
		return false
	}
}

func atLeast(n int) func([]msg) bool { return func(ms []msg) bool { return len(ms) >= n } }

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var (
	modelOnce  sync.Once
	modelDir   string
	modelFiles [2]string
	modelErr   error
)

// realModels writes two small int8 ResNets (different weights) with
// labels, once per test binary: real models for the reload and process
// tests.
func realModels(t *testing.T) [2]string {
	t.Helper()
	modelOnce.Do(func() {
		modelDir, modelErr = os.MkdirTemp("", "agent-models-")
		if modelErr != nil {
			return
		}
		for i := range modelFiles {
			m, err := build.ResNet(build.Config{Depth: 8, Input: [3]int{16, 16, 3}, Classes: 3, Weights: build.RandomWeights(uint64(i + 1)),
				Meta: resnet.Metadata{Name: "tiny", Version: fmt.Sprint(i + 1), Labels: []string{"cat", "dog", "empty"},
					Mean: []float32{0.5}, Std: []float32{0.25}}})
			if err != nil {
				modelErr = err
				return
			}
			r := rand.New(rand.NewPCG(uint64(i), 9))
			var samples []quant.Sample
			for range 4 {
				v := make([]float32, 16*16*3)
				for j := range v {
					v[j] = float32(r.NormFloat64())
				}
				samples = append(samples, quant.Sample{v})
			}
			if m, err = quant.Model(m, samples, quant.Options{}); err != nil {
				modelErr = err
				return
			}
			modelFiles[i] = filepath.Join(modelDir, fmt.Sprintf("tiny%d.tflite", i+1))
			if modelErr = m.WriteFile(modelFiles[i]); modelErr != nil {
				return
			}
		}
	})
	if modelErr != nil {
		t.Fatalf("building the test models: %v", modelErr)
	}
	return modelFiles
}

func TestMain(m *testing.M) {
	code := m.Run()
	if modelDir != "" {
		os.RemoveAll(modelDir)
	}
	os.Exit(code)
}

// testConfig is a valid configuration for one camera fed by the test.
func testConfig(brokerURL string) agent.Config {
	c := agent.Defaults()
	c.Device.ID = "testdev"
	c.Model.Path = "fake.tflite"
	c.Model.Watch = false
	c.Cameras = []agent.CameraConfig{{ID: "front", Source: "synthetic", FPS: 0, Queue: 16}}
	c.MQTT.Broker = brokerURL
	c.MQTT.ReconnectMin = 100 * time.Millisecond
	c.MQTT.ReconnectMax = 200 * time.Millisecond
	c.MQTT.ConnectTimeout = 2 * time.Second
	c.MQTT.Predictions.MaxRate = 0
	c.HTTP.Address = "127.0.0.1:0"
	c.Decision = agent.DecisionConfig{Threshold: 0.6, Release: 0.4, Frames: 2}
	return c
}

// fakeModel is a 2x2x1 classifier whose scores are chosen per frame: the
// frame's first pixel is an index into table.
func fakeModel(table [][]float32) *agenttest.Classifier {
	return &agenttest.Classifier{
		Model: agent.ModelInfo{Name: "fake", Version: "7", SHA256: strings.Repeat("ab", 32), Labels: []string{"cat", "dog", "empty"},
			Height: 2, Width: 2, Channels: 1},
		Fn: func(in []float32) []float32 { return table[int(in[0])] },
	}
}

// framesFor is one 2x2x1 tensor per table row, in order.
func framesFor(rows ...int) [][]float32 {
	var out [][]float32
	for _, r := range rows {
		out = append(out, []float32{float32(r), 0, 0, 0})
	}
	return out
}

// running starts a in the background and returns a stop function that
// cancels it and waits for Run to return.
func running(t *testing.T, a *agent.Agent) (stop func()) {
	t.Helper()
	if err := a.Start(); err != nil {
		t.Fatalf("agent start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("agent Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("agent Run did not return %v after cancel", waitLimit)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
