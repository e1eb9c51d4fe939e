package classify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
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
	// Embedding says where the embedding comes from: "output 1", or for a
	// classifier without one the input of its last FULLY_CONNECTED
	// (modelio.ExposeEmbedding); when there is none, why.
	Embedding string
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
	// A classifier from elsewhere has no embedding output: the features its
	// last FULLY_CONNECTED reads serve, so that on-device learning works.
	embedding := "output 1"
	if len(m.Outputs) == 1 {
		if how, err := modelio.ExposeEmbedding(m); err == nil {
			embedding = how
		} else {
			embedding = "none: " + err.Error()
		}
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
	// The agent's contract with a model (resnet/modelio): one image input,
	// scores at output 0, the embedding at output 1 when there is one.
	io, err := modelio.Describe(m)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	c.info.Height, c.info.Width, c.info.Channels = io.Input.Height, io.Input.Width, io.Input.Channels
	c.info.ContentHeight, c.info.ContentWidth = io.Input.ContentHeight, io.Input.ContentWidth
	c.info.Embedding = embedding
	if io.Embedding != nil {
		c.info.EmbeddingDim = io.Embedding.Len
	} else if !strings.HasPrefix(embedding, "none") {
		c.info.Embedding = "none: output 1 is not an embedding (FLOAT32 or INT8, 2 values or more)"
	}
	// The same names the head gets from head.FromModel, so that a class
	// is called alike before and after on-device training.
	c.info.Labels = io.Labels
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

type tfliteClassifier struct {
	proto *interp.Interpreter // only cloned: no arena of its own
	head  *resnet.Model       // the classifier alone (classifierModel), or nil
	info  ModelInfo
}

// fullModel reads the model file again, for what needs every weight
// (exporting). The file must still be the one that was loaded.
func (c *tfliteClassifier) fullModel() (*resnet.Model, error) {
	data, err := c.verifiedFile()
	if err != nil {
		return nil, err
	}
	m, err := resnet.LoadShared(data)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", c.info.Path, err)
	}
	return m, nil
}

// verifiedFile reads the model file again, refusing it when it is no longer
// the file that was loaded (the agent keeps no copy of its bytes).
func (c *tfliteClassifier) verifiedFile() ([]byte, error) {
	data, err := os.ReadFile(c.info.Path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.info.SHA256 {
		return nil, fmt.Errorf("model %q changed on disk since it was loaded (sha256 %x, loaded %s); reload the model first", c.info.Path, sum, c.info.SHA256)
	}
	return data, nil
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
	// Describe checked the output is FLOAT32 or per-tensor INT8 and emb
	// holds it: ReadFloat32 cannot fail here.
	s.embOut.ReadFloat32(s.emb)
	return s.emb
}

func (s *tfliteSession) Input() []float32 { return s.input }

func (s *tfliteSession) Run() ([]float32, error) {
	if s.in.Type == resnet.Int8 { // a float input is s.input itself
		if err := s.in.SetFloat32(s.input); err != nil {
			return nil, err
		}
	}
	if err := s.it.Invoke(); err != nil {
		return nil, err
	}
	if _, err := s.out.ReadFloat32(s.scores); err != nil {
		return nil, err
	}
	return s.scores, nil
}
