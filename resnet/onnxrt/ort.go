//go:build onnxruntime

package onnxrt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/modelio"
	"github.com/shortcut-edge/shortcut/resnet/onnx"
)

// Built reports whether this binary can run ONNX Runtime.
func Built() bool { return true }

// env is the process's one ONNX Runtime environment: a process loads one
// libonnxruntime.so.
var env struct {
	sync.Mutex
	library string // loaded and initialised from this path
}

func initEnv(lib string) error {
	if lib == "" {
		return errors.New("onnxrt: no library given: set model.onnxruntime_library to the path of libonnxruntime.so")
	}
	env.Lock()
	defer env.Unlock()
	if env.library != "" {
		if env.library != lib {
			return fmt.Errorf("onnxrt: ONNX Runtime is already loaded from %s in this process; it cannot also load %s", env.library, lib)
		}
		return nil
	}
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("onnxrt: library: %w", err)
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("onnxrt: loading %s: %w (onnxruntime_go v1.27 needs ONNX Runtime 1.24 or newer)", lib, err)
	}
	env.library = lib
	return nil
}

// ioInfo is one graph input or output as ONNX Runtime sees it, with the
// .tflite's quantization for an INT8 one.
type ioInfo struct {
	name  string
	typ   ort.TensorElementDataType
	shape ort.Shape
	n     int
	quant *resnet.Quant // INT8 only
}

// Net is a model converted to ONNX, ready to open sessions.
type Net struct {
	onnx   []byte
	opt    Options
	input  ioInfo
	scores ioInfo
	emb    *ioInfo // nil without an embedding output
}

// Load converts m to ONNX (int8 models in QDQ form; on x86 with uint8
// activations, the form ONNX Runtime's integer kernels fuse) and checks that
// ONNX Runtime can open it with the provider asked for.
func Load(m *resnet.Model, opt Options) (*Net, error) {
	if opt.Provider == "" {
		opt.Provider = CPU
	}
	io, err := modelio.Describe(m)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	act := onnx.Int8
	if runtime.GOARCH == "amd64" && opt.Provider == CPU {
		act = onnx.UInt8
	}
	data, err := onnx.Export(m, onnx.Options{Activations: act})
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	if err := initEnv(opt.Library); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("onnxrt: reading the exported model: %w", err)
	}
	if len(ins) != 1 || len(outs) != len(m.Outputs) {
		return nil, fmt.Errorf("onnxrt: ONNX Runtime sees %d inputs and %d outputs; the model has 1 and %d", len(ins), len(outs), len(m.Outputs))
	}
	n := &Net{onnx: data, opt: opt}
	if n.input, err = info(ins[0], m.Tensors[io.Input.Tensor].Quant); err != nil {
		return nil, err
	}
	if n.scores, err = info(outs[0], io.Scores.Quant); err != nil {
		return nil, err
	}
	if e := io.Embedding; e != nil {
		ei, err := info(outs[e.Index], e.Quant)
		if err != nil {
			return nil, err
		}
		n.emb = &ei
	}
	// Open one session now: a provider the library lacks, or a model it
	// refuses, fails here rather than on the first frame.
	s, err := n.NewSession()
	if err != nil {
		return nil, err
	}
	s.Close()
	return n, nil
}

func info(v ort.InputOutputInfo, q *resnet.Quant) (ioInfo, error) {
	i := ioInfo{name: v.Name, typ: v.DataType, shape: v.Dimensions, n: int(v.Dimensions.FlattenedSize())}
	switch v.DataType {
	case ort.TensorElementDataTypeFloat:
	case ort.TensorElementDataTypeInt8:
		if _, _, ok := q.PerTensor(); !ok {
			return i, fmt.Errorf("onnxrt: %q is INT8 without per-tensor quantization", v.Name)
		}
		i.quant = q
	default:
		return i, fmt.Errorf("onnxrt: %q is %v; the session feeds and reads FLOAT or INT8 tensors", v.Name, v.DataType)
	}
	if i.n < 1 {
		return i, fmt.Errorf("onnxrt: %q has shape %v", v.Name, v.Dimensions)
	}
	return i, nil
}

// Provider is the execution provider the net runs on.
func (n *Net) Provider() Provider { return n.opt.Provider }

// Close releases nothing: sessions own their resources.
func (n *Net) Close() {}

func (n *Net) sessionOptions() (*ort.SessionOptions, error) {
	o, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	fail := func(err error) (*ort.SessionOptions, error) {
		o.Destroy()
		return nil, fmt.Errorf("onnxrt: provider %s: %w", n.opt.Provider, err)
	}
	if n.opt.Threads > 0 {
		if err := o.SetIntraOpNumThreads(n.opt.Threads); err != nil {
			return fail(err)
		}
	}
	switch n.opt.Provider {
	case CPU:
	case CUDA:
		c, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return fail(err)
		}
		defer c.Destroy()
		if err := o.AppendExecutionProviderCUDA(c); err != nil {
			return fail(err)
		}
	case TensorRT:
		t, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return fail(err)
		}
		defer t.Destroy()
		settings := map[string]string{"trt_int8_enable": "1"}
		if n.opt.CacheDir != "" && n.opt.SHA256 != "" {
			dir := filepath.Join(n.opt.CacheDir, "tensorrt", n.opt.SHA256)
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return fail(err)
			}
			settings["trt_engine_cache_enable"], settings["trt_engine_cache_path"] = "1", dir
		}
		if err := t.Update(settings); err != nil {
			return fail(err)
		}
		if err := o.AppendExecutionProviderTensorRT(t); err != nil {
			return fail(err)
		}
	default:
		return fail(errors.New("unknown provider"))
	}
	return o, nil
}

// Session runs a Net from one goroutine, with its own tensors.
type Session struct {
	s      *ort.AdvancedSession
	values []ort.Value // input, scores[, embedding], destroyed by Close
	n      *Net

	input     []float32
	inI8      []int8 // nil for a FLOAT input
	scores    []float32
	outScores ort.Value
	emb       []float32
	outEmb    ort.Value // nil without an embedding
}

// NewSession opens a session; Close it when done.
func (n *Net) NewSession() (*Session, error) {
	s := &Session{n: n}
	fail := func(err error) (*Session, error) {
		s.Close()
		return nil, err
	}
	in, err := newValue(n.input)
	if err != nil {
		return fail(err)
	}
	s.values = append(s.values, in)
	if t, ok := in.(*ort.Tensor[float32]); ok {
		s.input = t.GetData() // the tensor reads this buffer: no copy
	} else {
		s.input = make([]float32, n.input.n)
		s.inI8 = in.(*ort.Tensor[int8]).GetData()
	}
	if s.outScores, err = newValue(n.scores); err != nil {
		return fail(err)
	}
	s.values = append(s.values, s.outScores)
	s.scores = make([]float32, n.scores.n)
	names := []string{n.scores.name}
	outs := []ort.Value{s.outScores}
	if n.emb != nil {
		if s.outEmb, err = newValue(*n.emb); err != nil {
			return fail(err)
		}
		s.values = append(s.values, s.outEmb)
		s.emb = make([]float32, n.emb.n)
		names, outs = append(names, n.emb.name), append(outs, s.outEmb)
	}
	o, err := n.sessionOptions()
	if err != nil {
		return fail(err)
	}
	defer o.Destroy()
	s.s, err = ort.NewAdvancedSessionWithONNXData(n.onnx, []string{n.input.name}, names, []ort.Value{in}, outs, o)
	if err != nil {
		return fail(fmt.Errorf("onnxrt: opening a session on %s: %w", n.opt.Provider, err))
	}
	return s, nil
}

func newValue(i ioInfo) (ort.Value, error) {
	var v ort.Value
	var err error
	if i.typ == ort.TensorElementDataTypeInt8 {
		v, err = ort.NewEmptyTensor[int8](i.shape)
	} else {
		v, err = ort.NewEmptyTensor[float32](i.shape)
	}
	if err != nil {
		return nil, fmt.Errorf("onnxrt: tensor %q: %w", i.name, err)
	}
	return v, nil
}

// Input is the buffer to fill: the model's normalised NHWC image.
func (s *Session) Input() []float32 { return s.input }

// Run classifies Input; the returned slice is reused by the next Run.
func (s *Session) Run() ([]float32, error) {
	if s.inI8 != nil {
		s.n.input.quant.QuantizeInt8(s.inI8, s.input)
	}
	if err := s.s.Run(); err != nil {
		return nil, fmt.Errorf("onnxrt: %w", err)
	}
	read(s.scores, s.outScores, s.n.scores)
	if s.outEmb != nil {
		read(s.emb, s.outEmb, *s.n.emb)
	}
	return s.scores, nil
}

func read(dst []float32, v ort.Value, i ioInfo) {
	if t, ok := v.(*ort.Tensor[int8]); ok {
		i.quant.DequantizeInt8(dst, t.GetData())
		return
	}
	copy(dst, v.(*ort.Tensor[float32]).GetData())
}

// Embedding is the last Run's embedding (nil without one).
func (s *Session) Embedding() []float32 { return s.emb }

// Close releases the session and its tensors.
func (s *Session) Close() {
	if s.s != nil {
		s.s.Destroy()
		s.s = nil
	}
	for _, v := range s.values {
		v.Destroy()
	}
	s.values = nil
}
