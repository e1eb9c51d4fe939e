package agent_test

import (
	"sync/atomic"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// statsSource is a looping fake camera whose SourceStats state the test
// sets, as an OpenCV camera that loses its stream reports it.
type statsSource struct {
	*agenttest.Source
	state atomic.Value // string
}

func (s *statsSource) SourceStats() agent.SourceStats {
	st, _ := s.state.Load().(string)
	return agent.SourceStats{State: st}
}

// TestCameraAvailabilityIsOfflineWhileItsSourceReconnects: the camera's
// availability topic (which Home Assistant ANDs with the device's) says
// offline while the source reconnects, and online again once it is back.
func TestCameraAvailabilityIsOfflineWhileItsSourceReconnects(t *testing.T) {
	broker := startMosquitto(t, 0)
	sub := subscribe(t, broker.URL(), "shortcut/testdev/front/availability")
	src := &statsSource{Source: agenttest.Tensors(framesFor(0)...)}
	src.Loop = true
	src.state.Store("ok")
	cfg := testConfig(broker.URL())
	cfg.Cameras[0].FPS = 20
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	const topic = "shortcut/testdev/front/availability"
	latest := func(p string) func([]agenttest.Msg) bool {
		return func(ms []agenttest.Msg) bool { return len(ms) > 0 && ms[len(ms)-1].Payload == p }
	}
	sub.WaitFor(topic, "online", latest(agent.Online))
	src.state.Store(agent.SourceReconnecting)
	sub.WaitFor(topic, "offline while reconnecting", latest(agent.Offline))
	src.state.Store("ok")
	sub.WaitFor(topic, "online again", latest(agent.Online))
}
