package agent_test

import (
	"image"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/agent/classify"
)

// slowEngine stands in for TensorRT, which cannot run here: preparing a
// model blocks until the test releases it, then the model "runs on" the
// engine (our classifier under another name).
type slowEngine struct {
	release  chan struct{}
	prepared atomic.Int32
}

type onEngine struct{ agent.Classifier }

func (e *slowEngine) accelerate(c agent.Classifier, o classify.AccelOptions, _ *slog.Logger) (agent.Classifier, agent.AcceleratorStatus) {
	<-e.release
	e.prepared.Add(1)
	return onEngine{c}, agent.AcceleratorStatus{Requested: o.Accelerator, InUse: o.Accelerator}
}

// TensorRT builds its engine for minutes on a first start: the agent runs
// the model on our kernels meanwhile, /healthz says the accelerator is
// preparing, and the prepared engine is swapped in when it is ready. A
// reload while an engine is being prepared makes that engine moot: the new
// model gets one of its own.
func TestASlowAcceleratorIsPreparedInTheBackground(t *testing.T) {
	models := realModels(t)
	path := filepath.Join(t.TempDir(), "model.tflite")
	copyFile(t, models[0], path)
	cfg := testConfig(startMosquitto(t, 0).URL())
	cfg.Model.Path = path
	cfg.Model.Accelerator = "onnxruntime-tensorrt"
	cfg.Model.OnnxRuntimeLibrary = "/opt/jetpack/libonnxruntime.so" // not opened: the engine is the test's
	cfg.Cameras[0].FPS = 50
	src := agenttest.Images(image.NewGray(image.Rect(0, 0, 20, 20)))
	src.Loop = true
	eng := &slowEngine{release: make(chan struct{})}
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), Accelerate: eng.accelerate,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil }})
	if err != nil {
		t.Fatal(err)
	}
	running(t, a)
	waitUntil(t, "frames classified while the engine is prepared", func() bool {
		h := a.Health()
		return len(h.Cameras) == 1 && h.Cameras[0].Frames > 2
	})
	st := a.Health().Accelerator
	if st == nil || !st.Preparing || st.InUse != "cpu" || st.Requested != "onnxruntime-tensorrt" || !strings.Contains(st.Reason, "TensorRT builds its engine") {
		t.Fatalf("/healthz accelerator while preparing = %+v, want preparing, cpu in use, and why", st)
	}

	// A reload before the engine is ready: the first model's engine, once
	// prepared, is not swapped in; the new model's is.
	copyFile(t, models[1], path)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	eng.release <- struct{}{} // the first model's engine
	waitUntil(t, "the first engine prepared", func() bool { return eng.prepared.Load() == 1 })
	if st := a.Health().Accelerator; st == nil || !st.Preparing {
		t.Fatalf("after the moot engine, accelerator = %+v, want still preparing (for the reloaded model)", st)
	}
	close(eng.release) // the reloaded model's engine
	waitUntil(t, "the engine in use", func() bool {
		st := a.Health().Accelerator
		return st != nil && !st.Preparing && st.InUse == "onnxruntime-tensorrt"
	})
	if got, want := a.Model().SHA256, fileSHA(t, models[1]); got != want {
		t.Errorf("model in use %s, want the reloaded %s", got, want)
	}
	n := a.Health().Cameras[0].Frames
	waitUntil(t, "frames on the engine", func() bool { return a.Health().Cameras[0].Frames > n+2 })
}

// An engine still being built when the agent is told to stop does not hold
// the stop: systemd would kill an agent that waits minutes for TensorRT.
func TestAStopDoesNotWaitForAnAcceleratorBeingPrepared(t *testing.T) {
	models := realModels(t)
	cfg := testConfig(startMosquitto(t, 0).URL())
	cfg.Model.Path = models[0]
	cfg.Model.Accelerator = "onnxruntime-tensorrt"
	cfg.Model.OnnxRuntimeLibrary = "/opt/jetpack/libonnxruntime.so" // not opened: the engine is the test's
	src := agenttest.Images(image.NewGray(image.Rect(0, 0, 20, 20)))
	src.Loop = true
	eng := &slowEngine{release: make(chan struct{})}
	defer close(eng.release) // the abandoned build ends with the test
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), Accelerate: eng.accelerate,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil }})
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, a)
	waitUntil(t, "frames classified while the engine is prepared", func() bool {
		h := a.Health()
		return len(h.Cameras) == 1 && h.Cameras[0].Frames > 2 && h.Accelerator != nil && h.Accelerator.Preparing
	})
	start := time.Now()
	stop() // fails the test if Run has not returned within waitLimit
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v to return with an engine still being built; want it not to wait for the build", d)
	}
	if n := eng.prepared.Load(); n != 0 {
		t.Errorf("%d engine(s) prepared; the build was still blocked, want 0", n)
	}
}
