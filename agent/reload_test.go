package agent_test

import (
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil { // atomic, as an installer would do
		t.Fatal(err)
	}
}

func predictionsWithSHA(sha string) func([]msg) bool {
	return func(ms []msg) bool {
		for _, m := range ms {
			var p agent.Prediction
			if json.Unmarshal([]byte(m.Payload), &p) == nil && p.Model.SHA256 == sha {
				return true
			}
		}
		return false
	}
}

func TestModelReplacedByGarbageKeepsTheOldModelRunning(t *testing.T) {
	models := realModels(t)
	path := filepath.Join(t.TempDir(), "model.tflite")
	copyFile(t, models[0], path)
	oldSHA, newSHA := fileSHA(t, models[0]), fileSHA(t, models[1])

	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Model.Path = path
	cfg.Model.Watch = true
	cfg.Model.WatchInterval = 20e6 // 20 ms
	cfg.Cameras[0].FPS = 100
	src := agenttest.Images(image.NewGray(image.Rect(0, 0, 20, 20)))
	src.Loop = true
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	sub := subscribe(t, broker.URL(), "shortcut/testdev/event", "shortcut/testdev/front/prediction")
	sub.WaitFor("shortcut/testdev/front/prediction", "predictions from the first model", predictionsWithSHA(oldSHA))

	// The watcher notices the garbage file.
	if err := os.WriteFile(path, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	events := sub.WaitFor("shortcut/testdev/event", "a reload-failed event", atLeast(1))
	var ev agent.Event
	if err := json.Unmarshal([]byte(events[0].Payload), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != agent.EventModelReloadFailed || ev.Device != "testdev" || ev.Path != path || ev.Model == nil || ev.Model.SHA256 != oldSHA || ev.Message == "" {
		t.Errorf("event = %+v, want model_reload_failed naming the path and the old model still running", ev)
	}
	// SIGHUP does the same: an explicit reload of the garbage fails too.
	if err := a.Reload(); err == nil {
		t.Errorf("Reload of a garbage file returned nil")
	}
	if got := a.Model().SHA256; got != oldSHA {
		t.Errorf("model in use after a failed reload has sha %s, want the old %s", got, oldSHA)
	}
	n := len(sub.On("shortcut/testdev/front/prediction"))
	sub.WaitFor("shortcut/testdev/front/prediction", "predictions continuing after the failed reload", atLeast(n+3))

	// A good file is swapped in without stopping the pipeline.
	copyFile(t, models[1], path)
	if err := a.Reload(); err != nil {
		t.Fatalf("Reload of a good model: %v", err)
	}
	sub.WaitFor("shortcut/testdev/event", "a reloaded event", func(ms []msg) bool {
		for _, m := range ms {
			var e agent.Event
			if json.Unmarshal([]byte(m.Payload), &e) == nil && e.Kind == agent.EventModelReloaded && e.Model != nil && e.Model.SHA256 == newSHA {
				return true
			}
		}
		return false
	})
	sub.WaitFor("shortcut/testdev/front/prediction", "predictions from the new model", predictionsWithSHA(newSHA))
}
