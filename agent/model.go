package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

// ModelInfo describes a loaded classifier: what payloads report and what
// preprocessing needs.
type ModelInfo struct {
	Name    string
	Version string
	SHA256  string
	Path    string
	Labels  []string // one per class, never empty strings
	// Input size the model wants.
	Height, Width, Channels int
	// Mean and Std normalize 0..1 pixels per channel: (p - Mean) / Std.
	Mean, Std []float32
}

// Classifier is a loaded, checked model. Several cameras share one: each
// takes its own Session, which shares the weights.
type Classifier interface {
	Info() ModelInfo
	NewSession() Session
}

// Session runs a Classifier from one goroutine.
type Session interface {
	// Input is the buffer to fill: Height*Width*Channels float32, HWC.
	Input() []float32
	// Run classifies Input and returns one score per class; the slice is
	// reused by the next Run.
	Run() ([]float32, error)
}

// ModelLoader loads and checks a model file.
type ModelLoader func(path string) (Classifier, error)

// LoadModel reads a .tflite file, prepares it, and runs it once on a
// neutral input to check that it produces finite class scores, so that a
// bad file is refused before it replaces a working model.
func LoadModel(path string) (Classifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m, err := resnet.Load(data)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	sum := sha256.Sum256(data)
	c := &tfliteClassifier{proto: it, info: ModelInfo{
		Name: m.Meta.Name, Version: m.Meta.Version, SHA256: hex.EncodeToString(sum[:]), Path: path,
		Mean: m.Meta.Mean, Std: m.Meta.Std,
	}}
	if c.info.Name == "" {
		c.info.Name = m.Description
	}
	in := it.Input(0)
	if in == nil || len(in.Shape) != 4 || in.Shape[0] != 1 || in.Shape[1] < 1 || in.Shape[2] < 1 || in.Shape[3] < 1 {
		return nil, fmt.Errorf("model %q: input 0 has shape %v; the agent needs one image input [1,H,W,C]", path, shapeOf(in))
	}
	if in.Type != resnet.Float32 && in.Type != resnet.Int8 {
		return nil, fmt.Errorf("model %q: input 0 is %v; the agent feeds FLOAT32 or INT8 inputs", path, in.Type)
	}
	c.info.Height, c.info.Width, c.info.Channels = in.Shape[1], in.Shape[2], in.Shape[3]
	out := it.Output(0)
	if out == nil || out.NumElements() < 1 || (out.Type != resnet.Float32 && out.Type != resnet.Int8) {
		return nil, fmt.Errorf("model %q: output 0 (%v) is not a FLOAT32 or INT8 score vector", path, shapeOf(out))
	}
	n := out.NumElements()
	for _, v := range [][]float32{m.Meta.Mean, m.Meta.Std} {
		if len(v) != 0 && len(v) != 1 && len(v) != c.info.Channels {
			return nil, fmt.Errorf("model %q: metadata mean/std have %d values for %d channels", path, len(v), c.info.Channels)
		}
	}
	for _, s := range m.Meta.Std {
		if s == 0 || math.IsNaN(float64(s)) {
			return nil, fmt.Errorf("model %q: metadata std holds %v; every std must be non-zero", path, s)
		}
	}
	c.info.Labels = make([]string, n)
	for i := range c.info.Labels {
		if i < len(m.Meta.Labels) && m.Meta.Labels[i] != "" {
			c.info.Labels[i] = m.Meta.Labels[i]
		} else {
			c.info.Labels[i] = fmt.Sprintf("class_%d", i)
		}
	}
	// The trial run: a grey picture must give finite scores.
	s := c.NewSession()
	scores, err := s.Run()
	if err != nil {
		return nil, fmt.Errorf("model %q: trial run: %w", path, err)
	}
	for i, v := range scores {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("model %q: trial run gave score %v for class %d; the model is broken", path, v, i)
		}
	}
	return c, nil
}

func shapeOf(t *interp.Tensor) any {
	if t == nil {
		return "missing"
	}
	return t.Shape
}

type tfliteClassifier struct {
	proto *interp.Interpreter
	info  ModelInfo
}

func (c *tfliteClassifier) Info() ModelInfo { return c.info }

func (c *tfliteClassifier) NewSession() Session {
	it := c.proto.Clone()
	s := &tfliteSession{it: it, in: it.Input(0), out: it.Output(0)}
	s.input = s.in.Float32()
	if s.input == nil { // int8 input: quantize from a float buffer
		s.input = make([]float32, s.in.NumElements())
	}
	s.scores = make([]float32, s.out.NumElements())
	return s
}

type tfliteSession struct {
	it      *interp.Interpreter
	in, out *interp.Tensor
	input   []float32
	scores  []float32
}

func (s *tfliteSession) Input() []float32 { return s.input }

func (s *tfliteSession) Run() ([]float32, error) {
	if q := s.in.Int8(); q != nil {
		scale, zp := quantParams(s.in.Quant)
		for i, v := range s.input {
			q[i] = int8(max(-128, min(127, math.Round(float64(v)/scale)+zp)))
		}
	}
	if err := s.it.Invoke(); err != nil {
		return nil, err
	}
	if f := s.out.Float32(); f != nil {
		copy(s.scores, f)
	} else {
		scale, zp := quantParams(s.out.Quant)
		for i, v := range s.out.Int8() {
			s.scores[i] = float32((float64(v) - zp) * scale)
		}
	}
	return s.scores, nil
}

func quantParams(q *resnet.Quant) (scale, zp float64) {
	if q == nil || len(q.Scale) == 0 {
		return 1, 0
	}
	scale = float64(q.Scale[0])
	if len(q.ZeroPoint) > 0 {
		zp = float64(q.ZeroPoint[0])
	}
	return scale, zp
}
