package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/shortcut-edge/shortcut/agent/head"
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
	Labels  []string // one per class (head.ClassLabels): never empty, never repeated
	// Input size the model wants.
	Height, Width, Channels int
	// Mean and Std normalize 0..1 pixels per channel: (p - Mean) / Std.
	Mean, Std []float32
	// ContentHeight and ContentWidth, when not 0, are the size of the
	// images the model was trained on inside its larger input (the
	// metadata's image_size; training's pad_to): frames are fitted into
	// that area, centred, and the border around it is black (pixel 0).
	// 0 uses the whole input.
	ContentHeight, ContentWidth int
	// EmbeddingDim is the width of the model's embedding output (output 1,
	// the classifier's input), or 0 when it has none. On-device learning
	// needs it.
	EmbeddingDim int
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

// EmbeddingSession is a Session of a model with an embedding output.
type EmbeddingSession interface {
	Session
	// Embedding is the last Run's embedding (ModelInfo.EmbeddingDim
	// values); the slice is reused by the next Run.
	Embedding() []float32
}

// HeadModel is a Classifier whose classifier layer can be read out and
// replaced: what on-device learning trains from and exports to.
type HeadModel interface {
	Classifier
	// BaseHead is the model's own classifier as a head.Head.
	BaseHead() (*head.Head, error)
	// ExportHead returns the .tflite bytes of the model with h as its
	// classifier; calibration embeddings set an int8 model's logits range.
	ExportHead(h *head.Head, calibration [][]float32) ([]byte, error)
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
	// data is not touched again (no second copy of the weights), and nothing
	// kept after LoadModel returns points into it: the interpreter keeps only
	// packed weights and the classifier is copied out, so the file buffer
	// goes back to the GC.
	m, err := resnet.LoadShared(data)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	sum := sha256.Sum256(data)
	c := &tfliteClassifier{proto: it, head: classifierModel(m), info: ModelInfo{
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
	if m.Meta.HasImageSize() { // Load checked it against input 0
		c.info.ContentHeight, c.info.ContentWidth = m.Meta.ImageSize[0], m.Meta.ImageSize[1]
	}
	out := it.Output(0)
	if out == nil || out.NumElements() < 1 || (out.Type != resnet.Float32 && out.Type != resnet.Int8) {
		return nil, fmt.Errorf("model %q: output 0 (%v) is not a FLOAT32 or INT8 score vector", path, shapeOf(out))
	}
	n := out.NumElements()
	if e := it.Output(1); e != nil && e.NumElements() >= 2 && (e.Type == resnet.Float32 || e.Type == resnet.Int8) {
		c.info.EmbeddingDim = e.NumElements()
	}
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
	// The same names the head gets from head.FromModel, so that a class
	// is called alike before and after on-device training.
	c.info.Labels = head.ClassLabels(m.Meta.Labels, n)
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
	// The prototype only ever clones: free its activation arena and workers.
	it.ReleaseArena()
	it.Close()
	return c, nil
}

// classifierModel returns a small model holding only m's classifier: its
// FULLY_CONNECTED (with copies of the weights and bias) feeding its SOFTMAX,
// the classifier's input as graph input, m's description and labels. That
// is all head.FromModel reads, without keeping m's other weights. It
// returns nil when m has no single FULLY_CONNECTED -> SOFTMAX pair whose
// logits only the SOFTMAX reads: BaseHead then reads the whole file, so that
// head.FromModel reports the problem.
func classifierModel(m *resnet.Model) *resnet.Model {
	producer := make(map[int]int, len(m.Operators))
	for i, op := range m.Operators {
		for _, t := range op.Outputs {
			producer[t] = i
		}
	}
	fc, sm, found := -1, -1, 0
	for i, op := range m.Operators {
		if op.Op != resnet.OpSoftmax || len(op.Inputs) != 1 || len(op.Outputs) != 1 {
			continue
		}
		if p, ok := producer[op.Inputs[0]]; ok && m.Operators[p].Op == resnet.OpFullyConnected {
			fc, sm = p, i
			found++
		}
	}
	if found != 1 {
		return nil
	}
	f, s := m.Operators[fc], m.Operators[sm]
	if len(f.Inputs) < 2 || len(f.Inputs) > 3 || len(f.Outputs) != 1 {
		return nil
	}
	logits := f.Outputs[0]
	for i, op := range m.Operators {
		if i != sm && slices.Contains(op.Inputs, logits) {
			return nil
		}
	}
	tensor := func(i int) resnet.Tensor {
		t := m.Tensors[i]
		t.Shape = slices.Clone(t.Shape)
		t.Data = slices.Clone(t.Data)
		return t
	}
	h := &resnet.Model{Description: m.Description, Meta: m.Meta, Inputs: []int{0}}
	h.Meta.Labels = slices.Clone(m.Meta.Labels)
	h.Meta.OutputNames = nil
	h.Meta.ImageSize = [2]int{} // its input is the embedding, not the image
	h.Tensors = append(h.Tensors, tensor(f.Inputs[0]), tensor(f.Inputs[1]))
	fcIn := []int{0, 1}
	if len(f.Inputs) == 3 && f.Inputs[2] >= 0 {
		h.Tensors = append(h.Tensors, tensor(f.Inputs[2]))
		fcIn = append(fcIn, 2)
	}
	nl := len(h.Tensors)
	h.Tensors = append(h.Tensors, tensor(logits), tensor(s.Outputs[0]))
	h.Outputs = []int{nl + 1}
	h.Operators = []resnet.Operator{
		{Op: f.Op, Version: f.Version, Inputs: fcIn, Outputs: []int{nl}, Options: f.Options},
		{Op: s.Op, Version: s.Version, Inputs: []int{nl}, Outputs: []int{nl + 1}, Options: s.Options},
	}
	if h.Validate() != nil {
		return nil
	}
	return h
}

func shapeOf(t *interp.Tensor) any {
	if t == nil {
		return "missing"
	}
	return t.Shape
}

type tfliteClassifier struct {
	proto *interp.Interpreter // only cloned: no arena of its own
	head  *resnet.Model       // the classifier alone (classifierModel), or nil
	info  ModelInfo
}

// fullModel reads the model file again, for what needs every weight
// (exporting). The file must still be the one that was loaded.
func (c *tfliteClassifier) fullModel() (*resnet.Model, error) {
	data, err := os.ReadFile(c.info.Path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.info.SHA256 {
		return nil, fmt.Errorf("model %q changed on disk since it was loaded (sha256 %x, loaded %s); reload the model first", c.info.Path, sum, c.info.SHA256)
	}
	m, err := resnet.LoadShared(data)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", c.info.Path, err)
	}
	return m, nil
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
	if c.info.EmbeddingDim > 0 {
		s.embOut = it.Output(1)
		s.emb = make([]float32, c.info.EmbeddingDim)
	}
	return s
}

func (c *tfliteClassifier) BaseHead() (*head.Head, error) {
	m := c.head
	if m == nil {
		var err error
		if m, err = c.fullModel(); err != nil {
			return nil, err
		}
	}
	h, err := head.FromModel(m)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", c.info.Path, err)
	}
	if h.Dim() != c.info.EmbeddingDim {
		return nil, fmt.Errorf("model %q: its classifier takes %d inputs but output 1 (the embedding) has %d values; on-device learning needs output 1 to be the classifier's input",
			c.info.Path, h.Dim(), c.info.EmbeddingDim)
	}
	return h, nil
}

func (c *tfliteClassifier) ExportHead(h *head.Head, calibration [][]float32) ([]byte, error) {
	full, err := c.fullModel()
	if err != nil {
		return nil, err
	}
	m, err := head.Export(full, h, calibration)
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}

type tfliteSession struct {
	it      *interp.Interpreter
	in, out *interp.Tensor
	input   []float32
	scores  []float32
	embOut  *interp.Tensor // nil without an embedding output
	emb     []float32
}

// Embedding converts the embedding output lazily: most frames never ask.
func (s *tfliteSession) Embedding() []float32 {
	if s.embOut == nil {
		return nil
	}
	if f := s.embOut.Float32(); f != nil {
		copy(s.emb, f)
	} else {
		scale, zp := quantParams(s.embOut.Quant)
		for i, v := range s.embOut.Int8() {
			s.emb[i] = float32((float64(v) - zp) * scale)
		}
	}
	return s.emb
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
