package agent_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// waitLimit bounds every wait for something the agent should do; it is a
// deadlock guard, not a timing assertion.
const waitLimit = agenttest.WaitLimit

// The broker and subscriber helpers live in agenttest (cvsource's tests use
// them too); these names keep the tests short.
type msg = agenttest.Msg

func freePort(t *testing.T) int { return agenttest.FreePort(t) }

// noEnv is a Getenv that finds no variable.
func noEnv(string) string { return "" }

func startMosquitto(t *testing.T, port int) *agenttest.Broker {
	return agenttest.StartMosquitto(t, port)
}

func subscribe(t *testing.T, brokerURL string, filters ...string) *agenttest.Subscriber {
	return agenttest.Subscribe(t, brokerURL, filters...)
}

func hasPayload(p string) func([]msg) bool { return agenttest.HasPayload(p) }

func atLeast(n int) func([]msg) bool { return agenttest.AtLeast(n) }

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	agenttest.WaitUntil(t, what, ok)
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
	c.Learning.Enabled = false // tests that learn give it a state directory of their own
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
