package agent

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime/debug"

	"github.com/shortcut-edge/shortcut/agent/classify"
)

// loadModel loads the configured model and, when model.accelerator asks for
// Arm NN or ONNX Runtime, moves inference there if that engine accepts the
// model and agrees with our kernels; otherwise our own kernels run it. An
// accelerator that is slow to prepare (TensorRT, which builds an engine)
// is prepared in the background (prepareAccelerators): our kernels run the
// model until it is ready, and /healthz says it is preparing.
func (a *Agent) loadModel(path string) (Classifier, error) {
	c, err := a.opt.LoadModel(path)
	if err != nil {
		return nil, err
	}
	if how := c.Info().Embedding; how != "output 1" {
		a.log.Info("model embedding for on-device learning", "model", path, "embedding", how)
	}
	opts := a.accelOptions()
	if classify.SlowToPrepare(opts.Accelerator) {
		a.accel.Store(&AcceleratorStatus{Requested: opts.Accelerator, InUse: "cpu", Preparing: true,
			Reason: fmt.Sprintf("preparing %s in the background (TensorRT builds its engine: minutes on a first start, cached in %s); our kernels run the model meanwhile",
				opts.Accelerator, filepath.Join(opts.StateDir, "tensorrt"))})
		select { // a newer model replaces one still waiting
		case <-a.prepare:
		default:
		}
		a.prepare <- &modelRef{c: c, info: c.Info()}
	} else {
		var st AcceleratorStatus
		c, st = a.accelerate(c, opts)
		a.accel.Store(&st)
	}
	// Loading read the whole file and prepared copies of its weights; the
	// file buffer is garbage now. Hand it back to the OS at once instead of
	// keeping it resident until the scavenger gets to it.
	debug.FreeOSMemory()
	return c, nil
}

func (a *Agent) accelOptions() classify.AccelOptions {
	return classify.AccelOptions{Accelerator: a.cfg.Model.Accelerator,
		OnnxRuntimeLibrary: a.cfg.Model.OnnxRuntimeLibrary, StateDir: a.cfg.Learning.StateDir}
}

func (a *Agent) accelerate(c Classifier, opts classify.AccelOptions) (Classifier, AcceleratorStatus) {
	if a.opt.Accelerate != nil {
		return a.opt.Accelerate(c, opts, a.log)
	}
	return classify.Accelerate(c, opts, a.log)
}

// preparedEngine is what a background accelerate returned.
type preparedEngine struct {
	c  Classifier
	st AcceleratorStatus
}

// prepareAccelerators prepares, one at a time, the accelerators of the
// models loadModel handed over, and swaps each prepared one in if its
// model is still the one running (a reload meanwhile makes it moot).
func (a *Agent) prepareAccelerators(ctx context.Context) {
	for {
		var m *modelRef
		select {
		case <-ctx.Done():
			return
		case m = <-a.prepare:
		}
		a.log.Info("preparing the accelerator in the background; our kernels run the model meanwhile", "accelerator", a.cfg.Model.Accelerator, "model", m.info.Path)
		// The engine build is a library call that takes no context
		// (TensorRT: minutes). A stop does not wait for it: the call is
		// left to the process's exit, and nothing it returns is used.
		done := make(chan preparedEngine, 1)
		go func() {
			c, st := a.accelerate(m.c, a.accelOptions())
			done <- preparedEngine{c, st}
		}()
		var r preparedEngine
		select {
		case <-ctx.Done():
			a.log.Info("stopping while the accelerator is being prepared; not waiting for it", "accelerator", a.cfg.Model.Accelerator)
			return
		case r = <-done:
		}
		c, st := r.c, r.st
		a.reloadMu.Lock()
		if cur := a.model.Load(); cur != nil && cur.c == m.c && ctx.Err() == nil {
			if c != m.c {
				a.setModel(c)
			}
			a.accel.Store(&st)
			a.log.Info("accelerator prepared", "requested", st.Requested, "in_use", st.InUse, "reason", st.Reason)
		} else if cl, ok := c.(io.Closer); ok && c != m.c {
			cl.Close() // prepared for a model no longer running
		}
		a.reloadMu.Unlock()
	}
}
