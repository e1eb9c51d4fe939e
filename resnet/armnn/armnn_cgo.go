//go:build armnn

package armnn

/*
#cgo CXXFLAGS: -std=c++14 -O2
#cgo LDFLAGS: -larmnnTfLiteParser -larmnn
#include <stdlib.h>
#include "glue.h"
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet"
)

// probeChildEnv carries the backends to a probe child; its presence makes
// this package's init run the probe and exit.
const probeChildEnv = "SHORTCUT_ARMNN_PROBE_CHILD"

// Exit codes of the probe child.
const (
	probeOK      = 0
	probeRefused = 3
	probeFailed  = 4
)

// ProbeTimeout bounds the probe (parse, optimize, load and one run).
var ProbeTimeout = 5 * time.Minute

func init() {
	backends, ok := os.LookupEnv(probeChildEnv)
	if !ok {
		return
	}
	model, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "armnn probe: reading the model:", err)
		os.Exit(probeFailed)
	}
	n, err := load(model, strings.Split(backends, ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		var r *RefusedError
		if errors.As(err, &r) {
			os.Exit(probeRefused)
		}
		os.Exit(probeFailed)
	}
	if err := n.run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(probeFailed)
	}
	os.Exit(probeOK)
}

// Available reports whether Arm NN can be used (it is linked in: always).
func Available() error { return nil }

// Registered lists the Arm NN backends installed on this machine.
func Registered() []string {
	s := C.sc_registered()
	defer C.sc_free_string(s)
	var out []string
	for _, b := range strings.Fields(strings.NewReplacer(",", " ").Replace(C.GoString(s))) {
		out = append(out, b)
	}
	return out
}

// Version is Arm NN's version (e.g. "22.0").
func Version() string { return C.GoString(C.sc_version()) }

// Net is a model loaded into Arm NN. Its methods are safe for concurrent
// use; runs are serialized.
type Net struct {
	mu       sync.Mutex
	c        *C.sc_net
	inputs   []TensorInfo
	outputs  []TensorInfo
	inBuf    [][]byte // views of C memory
	outBuf   [][]byte
	backends string
	cleanup  runtime.Cleanup
}

// Load parses a .tflite image, optimizes it for o.Backends and loads it.
// A model or backend Arm NN will not take gives a *RefusedError. Unless
// SHORTCUT_ARMNN_PROBE=off, the model is first tried in a child process
// (see the package documentation).
func Load(model []byte, o Options) (*Net, error) {
	if err := checkOptions(model, o); err != nil {
		return nil, err
	}
	if os.Getenv(ProbeEnv) != "off" {
		if err := probe(model, o.Backends); err != nil {
			return nil, err
		}
	}
	return load(model, o.Backends)
}

func load(model []byte, backends []string) (*Net, error) {
	cm := C.CBytes(model)
	defer C.free(cm)
	cb := C.CString(strings.Join(backends, ","))
	defer C.free(unsafe.Pointer(cb))
	var code C.int
	var cerr *C.char
	c := C.sc_load(cm, C.size_t(len(model)), cb, &code, &cerr)
	if c == nil {
		msg := C.GoString(cerr)
		C.sc_free_string(cerr)
		if code == C.SC_REFUSED {
			return nil, &RefusedError{Backends: backends, Msg: msg}
		}
		return nil, fmt.Errorf("armnn: loading the model on %s: %s", strings.Join(backends, ","), msg)
	}
	n := &Net{c: c, backends: C.GoString(C.sc_backends_used(c))}
	for i := 0; i < int(C.sc_num_inputs(c)); i++ {
		t := C.sc_input(c, C.int(i))
		n.inputs = append(n.inputs, infoOf(t))
		n.inBuf = append(n.inBuf, unsafe.Slice((*byte)(t.data), int(t.bytes)))
	}
	for i := 0; i < int(C.sc_num_outputs(c)); i++ {
		t := C.sc_output(c, C.int(i))
		n.outputs = append(n.outputs, infoOf(t))
		n.outBuf = append(n.outBuf, unsafe.Slice((*byte)(t.data), int(t.bytes)))
	}
	n.cleanup = runtime.AddCleanup(n, func(c *C.sc_net) { C.sc_free(c) }, c)
	return n, nil
}

func infoOf(t *C.sc_tensor) TensorInfo {
	ti := TensorInfo{Type: DType(t.dtype), Scale: float32(t.scale), ZeroPoint: int32(t.zero_point)}
	for d := 0; d < int(t.ndims); d++ {
		ti.Shape = append(ti.Shape, int(t.dims[d]))
	}
	return ti
}

// probe loads and runs the model once in a child copy of this executable,
// so that an Arm NN assert() kills the child, not the caller.
func probe(model []byte, backends []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("armnn: cannot find this executable for the probe (%v); set %s=off to load without it", err, ProbeEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), probeChildEnv+"="+strings.Join(backends, ","))
	cmd.Stdin = bytes.NewReader(model)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil {
		return nil
	}
	msg := lastLine(stderr.String())
	if ctx.Err() != nil {
		return fmt.Errorf("armnn: the probe of the model on %s took over %v", strings.Join(backends, ","), ProbeTimeout)
	}
	// An assert() in C++ raises SIGABRT, which the Go runtime in the child
	// reports ("SIGABRT: abort", exit status 2) after glibc printed the
	// assertion.
	if a := assertion(stderr.String()); a != "" {
		return &RefusedError{Backends: backends, Msg: a, Aborted: true}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() == probeRefused {
			return &RefusedError{Backends: backends, Msg: strings.TrimPrefix(msg, refusedPrefix(backends)+": ")}
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if ws.Signal() == syscall.SIGABRT {
				return &RefusedError{Backends: backends, Msg: msg, Aborted: true}
			}
			return fmt.Errorf("armnn: the probe died (%v) on %s: %s", ws.Signal(), strings.Join(backends, ","), msg)
		}
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("armnn: the probe failed on %s: %s", strings.Join(backends, ","), msg)
}

// refusedPrefix is what RefusedError.Error puts before the message, so the
// child's text is not wrapped twice.
func refusedPrefix(backends []string) string {
	return strings.TrimSuffix((&RefusedError{Backends: backends}).Error(), ": ")
}

// assertion finds glibc's "...: Assertion `...' failed." line in a child's
// output when the child then aborted; "" otherwise.
func assertion(out string) string {
	if !strings.Contains(out, "SIGABRT") {
		return ""
	}
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, "Assertion `"); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "SIGABRT (no assertion text)"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// Inputs and Outputs describe the network's tensors, in model order.
func (n *Net) Inputs() []TensorInfo  { return n.inputs }
func (n *Net) Outputs() []TensorInfo { return n.outputs }

// Backends is the backend list the network was optimized for.
func (n *Net) Backends() string { return n.backends }

// Close frees the network; using it afterwards is an error.
func (n *Net) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return
	}
	n.cleanup.Stop()
	C.sc_free(n.c)
	n.c = nil
	n.inBuf, n.outBuf = nil, nil
}

// run runs the network on its input buffers; the caller holds mu (or owns
// the net alone).
func (n *Net) run() error {
	if n.c == nil {
		return errors.New("armnn: the network is closed")
	}
	var cerr *C.char
	if C.sc_run(n.c, &cerr) != 0 {
		msg := C.GoString(cerr)
		C.sc_free_string(cerr)
		return fmt.Errorf("armnn: %s", msg)
	}
	return nil
}

// RunRaw runs the network on raw input bytes (one slice per input, in the
// tensor's type and shape, little-endian) and returns copies of the raw
// outputs.
func (n *Net) RunRaw(inputs [][]byte) ([][]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return nil, errors.New("armnn: the network is closed")
	}
	if len(inputs) != len(n.inBuf) {
		return nil, fmt.Errorf("armnn: the network has %d inputs, %d given", len(n.inBuf), len(inputs))
	}
	for i, in := range inputs {
		if len(in) != len(n.inBuf[i]) {
			return nil, fmt.Errorf("armnn: input %d (%v %v) needs %d bytes, got %d", i, n.inputs[i].Type, n.inputs[i].Shape, len(n.inBuf[i]), len(in))
		}
		copy(n.inBuf[i], in)
	}
	if err := n.run(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(n.outBuf))
	for i, b := range n.outBuf {
		out[i] = append([]byte(nil), b...)
	}
	return out, nil
}

// Session feeds input 0 from float32 values (quantizing for an int8 or
// uint8 input) and returns output 0 as float32 scores (dequantized). Use one
// Session per goroutine; Sessions of one Net share its weights.
type Session struct {
	n         *Net
	inQ       *resnet.Quant    // input 0's quantization (TensorInfo.quant)
	outQ      [2]*resnet.Quant // outputs 0 and 1
	input     []float32
	scores    []float32
	embedding []float32 // output 1 (the pooled embedding), when the model has one
}

// Embedding is output 1 of the last Run, dequantized (nil when the model has
// a single output); the slice is reused by the next Run.
func (s *Session) Embedding() []float32 { return s.embedding }

// readOutput converts an output buffer to float32 values.
func readOutput(t TensorInfo, q *resnet.Quant, b []byte, dst []float32) error {
	switch t.Type {
	case Float32:
		copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(dst)))
	case Int8:
		q.DequantizeInt8(dst, unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(dst)))
	case Uint8:
		for i := range dst {
			dst[i] = t.Scale * float32(int32(b[i])-t.ZeroPoint)
		}
	default:
		return fmt.Errorf("is %v; a session reads FLOAT32, INT8 or UINT8", t.Type)
	}
	return nil
}

// NewSession makes a session over input 0 and output 0.
func (n *Net) NewSession() *Session {
	s := &Session{n: n}
	if len(n.inputs) > 0 {
		s.input = make([]float32, n.inputs[0].NumElements())
		s.inQ = n.inputs[0].quant()
	}
	if len(n.outputs) > 0 {
		s.scores = make([]float32, n.outputs[0].NumElements())
		s.outQ[0] = n.outputs[0].quant()
	}
	if len(n.outputs) > 1 {
		s.embedding = make([]float32, n.outputs[1].NumElements())
		s.outQ[1] = n.outputs[1].quant()
	}
	return s
}

// Input is the buffer to fill: input 0's elements, in its layout (NHWC).
func (s *Session) Input() []float32 { return s.input }

// Run classifies Input; the returned slice is reused by the next Run.
func (s *Session) Run() ([]float32, error) {
	n := s.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.c == nil {
		return nil, errors.New("armnn: the network is closed")
	}
	if len(n.inputs) != 1 || len(n.outputs) < 1 {
		return nil, fmt.Errorf("armnn: a session needs one input and an output; the network has %d inputs, %d outputs", len(n.inputs), len(n.outputs))
	}
	in, buf := n.inputs[0], n.inBuf[0]
	switch in.Type {
	case Float32:
		copy(unsafe.Slice((*float32)(unsafe.Pointer(&buf[0])), len(s.input)), s.input)
	case Int8:
		s.inQ.QuantizeInt8(unsafe.Slice((*int8)(unsafe.Pointer(&buf[0])), len(s.input)), s.input)
	case Uint8:
		for i, v := range s.input {
			q := math.Round(float64(v)/float64(in.Scale)) + float64(in.ZeroPoint)
			buf[i] = byte(max(0, min(255, q)))
		}
	default:
		return nil, fmt.Errorf("armnn: input 0 is %v; a session feeds FLOAT32, INT8 or UINT8", in.Type)
	}
	if err := n.run(); err != nil {
		return nil, err
	}
	if err := readOutput(n.outputs[0], s.outQ[0], n.outBuf[0], s.scores); err != nil {
		return nil, fmt.Errorf("armnn: output 0: %w", err)
	}
	if len(n.outputs) > 1 {
		if err := readOutput(n.outputs[1], s.outQ[1], n.outBuf[1], s.embedding); err != nil {
			return nil, fmt.Errorf("armnn: output 1: %w", err)
		}
	}
	return s.scores, nil
}
