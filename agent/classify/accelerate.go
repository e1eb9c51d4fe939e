package classify

import (
	"fmt"
	"log/slog"
	"math"

	"github.com/shortcut-edge/shortcut/agent/payload"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/armnn"
	"github.com/shortcut-edge/shortcut/resnet/onnxrt"
)

// AccelOptions are the configuration's model.accelerator and
// model.onnxruntime_library, and the state directory (TensorRT's engine
// cache).
type AccelOptions struct {
	Accelerator        string
	OnnxRuntimeLibrary string
	StateDir           string
}

// AcceleratorStatus says what runs the model, for /healthz (payload.AcceleratorStatus).
type AcceleratorStatus = payload.AcceleratorStatus

// SlowToPrepare says whether an accelerator may take minutes to take a
// model (TensorRT builds an engine for it on first use): the agent then
// prepares it in the background and runs our kernels meanwhile.
func SlowToPrepare(accelerator string) bool { return accelerator == "onnxruntime-tensorrt" }

// Accelerate returns c running on the accelerator model.accelerator names:
// "cpu" (our kernels), "armnn-cpu" or "armnn-gpu" (Arm NN, in binaries
// built with -tags armnn), "onnxruntime-cpu", "onnxruntime-cuda" or
// "onnxruntime-tensorrt" (ONNX Runtime from model.onnxruntime_library, in
// binaries built with -tags onnxruntime). An engine is used only when it
// loads the model and its scores on a test input agree with ours within the
// tolerance NOTES gives; anything else logs why and keeps c.
func Accelerate(c Classifier, cfg AccelOptions, log *slog.Logger) (Classifier, AcceleratorStatus) {
	st := AcceleratorStatus{Requested: cfg.Accelerator, InUse: "cpu"}
	if st.Requested == "" {
		st.Requested = "cpu"
	}
	if p, ok, err := onnxrt.ParseAccelerator(cfg.Accelerator); err != nil || ok {
		if err != nil {
			st.Reason = err.Error()
			return c, st
		}
		out, err := accelerateORT(c, p, cfg, log)
		if err != nil {
			st.Reason = err.Error()
			log.Warn("ONNX Runtime not used, running our own kernels", "accelerator", cfg.Accelerator, "err", err)
			return c, st
		}
		st.InUse = cfg.Accelerator
		return out, st
	}
	out, err := accelerateArmNN(c, cfg.Accelerator, log)
	if err != nil {
		st.Reason = err.Error()
	} else if out != c {
		st.InUse = cfg.Accelerator
	}
	return out, st
}

// accelerateArmNN moves c to Arm NN; it returns c itself for "cpu", and an
// error (after logging it) when Arm NN cannot take the model.
func accelerateArmNN(c Classifier, accelerator string, log *slog.Logger) (Classifier, error) {
	backends, err := armnn.Backends(accelerator)
	tc, ok := c.(*tfliteClassifier)
	if err != nil {
		return c, err
	}
	if backends == nil || !ok {
		return c, nil
	}
	fallback := func(why error) (Classifier, error) {
		log.Warn("Arm NN not used, running our own kernels", "accelerator", accelerator, "model", tc.info.Path, "err", why)
		return c, why
	}
	data, err := tc.verifiedFile()
	if err != nil {
		return fallback(err)
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
	return &armnnClassifier{tfliteClassifier: tc, net: net}, nil
}

// armnnClassifier runs sessions on Arm NN; reading and exporting the head
// still use the model held by our runtime.
type armnnClassifier struct {
	*tfliteClassifier
	net *armnn.Net
}

func (c *armnnClassifier) NewSession() Session { return c.net.NewSession() }

// accelerateORT moves c to ONNX Runtime: the model converted by our
// exporter, run by model.onnxruntime_library with provider p, used when its
// scores on a test input agree with ours (Arm NN's tolerance) and its
// embedding has our width, so that on-device learning keeps working.
func accelerateORT(c Classifier, p onnxrt.Provider, cfg AccelOptions, log *slog.Logger) (Classifier, error) {
	tc, ok := c.(*tfliteClassifier)
	if !ok {
		return c, fmt.Errorf("ONNX Runtime runs models loaded from a .tflite file")
	}
	data, err := tc.verifiedFile()
	if err != nil {
		return c, err
	}
	m, err := resnet.LoadShared(data)
	if err != nil {
		return c, err
	}
	net, err := onnxrt.Load(m, onnxrt.Options{Library: cfg.OnnxRuntimeLibrary, Provider: p, CacheDir: cfg.StateDir, SHA256: tc.info.SHA256})
	if err != nil {
		return c, err
	}
	theirs, err := net.NewSession()
	if err != nil {
		return c, err
	}
	defer theirs.Close()
	agreement, err := agreeORT(tc.NewSession(), theirs, m, tc.info.EmbeddingDim)
	if err != nil {
		return c, err
	}
	log.Info("model runs on ONNX Runtime", "provider", p, "library", cfg.OnnxRuntimeLibrary,
		"agreement", agreement)
	return &ortClassifier{tfliteClassifier: tc, net: net}, nil
}

// agreeORT runs one test input through our session and ONNX Runtime's and
// refuses ONNX Runtime when its scores are further from ours than Arm NN's
// tolerance allows (m gives the scores' quantization), or its embedding
// has another width than embDim. It returns the agreement, for the log.
func agreeORT(ours Session, theirs *onnxrt.Session, m *resnet.Model, embDim int) (string, error) {
	if len(ours.Input()) != len(theirs.Input()) {
		return "", fmt.Errorf("ONNX Runtime sees %d input values, our runtime %d", len(theirs.Input()), len(ours.Input()))
	}
	for i := range ours.Input() {
		v := float32(math.Sin(float64(i) * 0.37))
		ours.Input()[i], theirs.Input()[i] = v, v
	}
	want, err := ours.Run()
	if err != nil {
		return "", err
	}
	want = append([]float32(nil), want...)
	got, err := theirs.Run()
	if err != nil {
		return "", err
	}
	d, limit, unit, err := armnn.Agreement(m, want, got)
	if err == nil && d > limit {
		err = fmt.Errorf("ONNX Runtime's scores are %.3g %s from ours (limit %.3g); the model stays on our kernels", d, unit, limit)
	}
	if err != nil {
		return "", err
	}
	if len(theirs.Embedding()) != embDim {
		return "", fmt.Errorf("ONNX Runtime's embedding has %d values, ours %d", len(theirs.Embedding()), embDim)
	}
	return fmt.Sprintf("%.3g %s (limit %.3g)", d, unit, limit), nil
}

// ortClassifier runs sessions on ONNX Runtime; reading and exporting the
// head still use the model held by our runtime.
type ortClassifier struct {
	*tfliteClassifier
	net *onnxrt.Net
}

func (c *ortClassifier) NewSession() Session {
	s, err := c.net.NewSession()
	if err != nil {
		// Load opened one already; a later failure (memory) must not stop
		// the camera: our kernels take over for this session.
		return c.tfliteClassifier.NewSession()
	}
	return s
}
