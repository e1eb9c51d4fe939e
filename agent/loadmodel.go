package agent

import (
	"runtime/debug"

	"github.com/shortcut-edge/shortcut/agent/classify"
)

// loadModel loads the configured model and, when model.accelerator asks for
// Arm NN or ONNX Runtime, moves inference there if that engine accepts the
// model and agrees with our kernels; otherwise our own kernels run it.
func (a *Agent) loadModel(path string) (Classifier, error) {
	c, err := a.opt.LoadModel(path)
	if err != nil {
		return nil, err
	}
	if how := c.Info().Embedding; how != "output 1" {
		a.log.Info("model embedding for on-device learning", "model", path, "embedding", how)
	}
	var st AcceleratorStatus
	c, st = classify.Accelerate(c, classify.AccelOptions{Accelerator: a.cfg.Model.Accelerator,
		OnnxRuntimeLibrary: a.cfg.Model.OnnxRuntimeLibrary, StateDir: a.cfg.Learning.StateDir}, a.log)
	a.accel.Store(&st)
	// Loading read the whole file and prepared copies of its weights; the
	// file buffer is garbage now. Hand it back to the OS at once instead of
	// keeping it resident until the scavenger gets to it.
	debug.FreeOSMemory()
	return c, nil
}
