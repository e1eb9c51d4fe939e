package agent

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/armnn"
)

// loadModel loads the configured model and, when model.accelerator asks for
// Arm NN, moves inference there if Arm NN accepts the model and agrees with
// our kernels; otherwise our own kernels run it.
func (a *Agent) loadModel(path string) (Classifier, error) {
	c, err := a.opt.LoadModel(path)
	if err != nil {
		return nil, err
	}
	c = Accelerate(c, a.cfg.Model.Accelerator, a.log)
	// Loading read the whole file and prepared copies of its weights; the
	// file buffer is garbage now. Hand it back to the OS at once instead of
	// keeping it resident until the scavenger gets to it.
	debug.FreeOSMemory()
	return c, nil
}

// Accelerate returns c running on the accelerator named by the
// configuration ("cpu", "armnn-cpu", "armnn-gpu"). Arm NN is used only when
// the binary was built with it (-tags armnn), it loads the model, and its
// scores on a test input agree with ours within the tolerance NOTES gives;
// anything else logs why and keeps c.
func Accelerate(c Classifier, accelerator string, log *slog.Logger) Classifier {
	backends, err := armnn.Backends(accelerator)
	tc, ok := c.(*tfliteClassifier)
	if err != nil || backends == nil || !ok {
		return c
	}
	fallback := func(why error) Classifier {
		log.Warn("Arm NN not used, running our own kernels", "accelerator", accelerator, "model", tc.info.Path, "err", why)
		return c
	}
	data, err := os.ReadFile(tc.info.Path)
	if err != nil {
		return fallback(err)
	}
	want, _ := hex.DecodeString(tc.info.SHA256)
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], want) {
		return fallback(fmt.Errorf("%s changed since it was loaded", tc.info.Path))
	}
	net, err := armnn.Load(data, armnn.Options{Backends: backends})
	if err != nil {
		return fallback(err)
	}
	ours, theirs := tc.NewSession(), net.NewSession()
	if len(ours.Input()) != len(theirs.Input()) {
		net.Close()
		return fallback(fmt.Errorf("Arm NN sees %d input values, our runtime %d", len(theirs.Input()), len(ours.Input())))
	}
	for i := range ours.Input() {
		v := float32(math.Sin(float64(i) * 0.37))
		ours.Input()[i], theirs.Input()[i] = v, v
	}
	wantScores, err := ours.Run()
	if err != nil {
		net.Close()
		return fallback(err)
	}
	wantScores = append([]float32(nil), wantScores...)
	got, err := theirs.Run()
	if err != nil {
		net.Close()
		return fallback(err)
	}
	m, err := resnet.LoadShared(data)
	if err != nil {
		net.Close()
		return fallback(err)
	}
	d, limit, unit, err := armnn.Agreement(m, wantScores, got)
	if err == nil && d > limit {
		err = fmt.Errorf("Arm NN's scores are %.3g %s from ours (limit %.3g)", d, unit, limit)
	}
	if err != nil {
		net.Close()
		return fallback(err)
	}
	log.Info("model runs on Arm NN", "backends", net.Backends(), "arm_nn", armnn.Version(),
		"agreement", fmt.Sprintf("%.3g %s (limit %.3g)", d, unit, limit))
	return &armnnClassifier{tfliteClassifier: tc, net: net}
}

// armnnClassifier runs sessions on Arm NN; reading and exporting the head
// still use the model held by our runtime.
type armnnClassifier struct {
	*tfliteClassifier
	net *armnn.Net
}

func (c *armnnClassifier) NewSession() Session { return c.net.NewSession() }
