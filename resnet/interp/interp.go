// Package interp runs a *resnet.Model: it prepares every operator once
// (checks types and shapes, computes quantization multipliers, padding and
// the memory plan) and then evaluates the graph on demand without
// allocating. Inputs come from the caller through Input(i) views, outputs
// go back through Output(i) views; every activation lives in one arena
// planned from tensor lifetimes.
//
// The arithmetic is the reference kernels' (resnet/internal/ref), which
// follow TFLite's reference integer kernels bit for bit. int8 CONV_2D,
// DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD and MAX_POOL_2D run on the
// optimized kernels of
// resnet/internal/fast (SIMD micro-kernels chosen from the CPU's features,
// with weights packed here at New), which give the same bytes; the
// reference kernels stay selectable through Options.Kernels.
//
// An Interpreter is not safe for concurrent use: run one per goroutine.
// Clone makes another one cheaply; clones share the prepared, read-only
// weights and each has its own arena, scratch memory and worker threads.
// With more than one thread an interpreter owns worker goroutines: Close
// stops them (they are also stopped once the interpreter is garbage, but
// Close does it deterministically).
package interp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// DefaultMaxArenaBytes is the arena limit when Options.MaxArenaBytes is 0.
// ResNet-50 at 224x224 needs about 10 MiB; a model asking for more than
// 1 GiB is far more likely a hostile file than a classifier.
const DefaultMaxArenaBytes = 1 << 30

// The values of Options.Arithmetic.
const (
	ArithmeticReference = "reference"
	ArithmeticXNNPACK   = "xnnpack"
)

// MaxThreads is the most threads New accepts. Every job wakes every
// worker, so thousands of them (a typo'd --threads) would make an inference
// take minutes instead of failing.
const MaxThreads = 256

// Options tune New.
type Options struct {
	// MaxArenaBytes bounds the activation arena (and every single
	// activation tensor). 0 means DefaultMaxArenaBytes.
	MaxArenaBytes int64
	// Threads is the number of threads an inference uses: the calling
	// goroutine plus Threads-1 worker goroutines owned by the interpreter,
	// which split the output tiles of convolutions and the elements of
	// adds. 0 means one per CPU (runtime.GOMAXPROCS); 1 runs everything on
	// the calling goroutine without any synchronization. At most
	// MaxThreads.
	Threads int
	// Kernels picks the kernel implementation: "" or "auto" (the fastest
	// this CPU runs), "ref" (the plain-Go reference kernels only), or one
	// micro-kernel family of resnet/internal/fast by name: "avx512vnni",
	// "avxvnni", "avx2" (amd64), "neondot", "neon" (arm64) or "go" (any
	// CPU); New refuses one the CPU lacks. Every choice gives the same
	// bytes; forcing one is for tests and benchmarks.
	Kernels string
	// Arithmetic picks the integer requantization: "" or "reference"
	// (TFLite's reference kernels, the specification: the default) or
	// "xnnpack" (what the XNNPACK delegate of real TFLite builds computes:
	// float32 requantization rounded half to even for int8 CONV_2D,
	// DEPTHWISE_CONV_2D and FULLY_CONNECTED with symmetric weights, and
	// XNNPACK's integer ADD). The two differ by one LSB on near-ties; pick
	// "xnnpack" to reproduce LiteRT / tfjs-tflite outputs byte for byte.
	// See resnet/internal/ref/xnnpack.go.
	Arithmetic string
	// KeepAll gives every activation tensor its own region, so that after
	// Invoke every intermediate tensor still holds its value (for per-layer
	// comparisons), and keeps the data of every constant tensor readable
	// through TensorByIndex (without it, weights the optimized kernels
	// packed are not kept). It costs memory: the arena is then the sum of
	// all activation sizes.
	KeepAll bool
}

// Interpreter runs one prepared model. Use it from one goroutine at a time.
type Interpreter struct {
	prog     *program // shared with clones, read-only after New
	arena    []byte
	released bool // ReleaseArena dropped the arena: bind a new one before use
	tensors  []Tensor
	run      *fast.Runner // scratch and worker threads of this interpreter
}

// program is everything Prepare computes: shared by an interpreter and its
// clones, never written after New.
type program struct {
	kernels   []kernel
	inputs    []int
	outputs   []int
	templates []Tensor // per model tensor: description; constants carry data
	offsets   []int64  // arena offset per tensor, -1 when not in the arena
	arenaSize int64
	scratch   int // bytes of kernel scratch (padded convolution inputs)
	threads   int
}

// kernel is one prepared operator. eval reads and writes the interpreter's
// tensors by index and must not allocate.
type kernel interface {
	eval(ts []Tensor, _ *fast.Runner)
}

// New checks m and prepares it for Invoke. The model must not be modified
// afterwards: constant tensors are used in place where they are aligned.
// Every problem is an error naming the operator and tensor; New never
// panics on a bad model.
func New(m *resnet.Model, opts Options) (*Interpreter, error) {
	if m == nil {
		return nil, errors.New("interp: nil model")
	}
	// The graph's structure is checked once, by the model package; prepare
	// relies on it and checks what each operator needs.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("interp: %w", err)
	}
	return prepare(m, opts)
}

// prepare is New after the model package's validation.
func prepare(m *resnet.Model, opts Options) (*Interpreter, error) {
	if m == nil {
		return nil, errors.New("interp: nil model")
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("interp: this runtime reads tensor data in place and needs a little-endian CPU")
	}
	if opts.MaxArenaBytes < 0 {
		return nil, fmt.Errorf("interp: Options.MaxArenaBytes is %d; want 0 (default %d) or a positive limit", opts.MaxArenaBytes, DefaultMaxArenaBytes)
	}
	if opts.MaxArenaBytes == 0 {
		opts.MaxArenaBytes = DefaultMaxArenaBytes
	}
	// Keep every size sum far from int64 overflow.
	opts.MaxArenaBytes = min(opts.MaxArenaBytes, 1<<50)
	if opts.Threads < 0 || opts.Threads > MaxThreads {
		return nil, fmt.Errorf("interp: Options.Threads is %d; want 0 (one per CPU) to %d (this machine has %d CPUs: more threads than CPUs only slow an inference down)",
			opts.Threads, MaxThreads, runtime.NumCPU())
	}
	if opts.Threads == 0 {
		opts.Threads = runtime.GOMAXPROCS(0)
	}
	b := &builder{m: m, opts: opts}
	switch opts.Arithmetic {
	case "", ArithmeticReference:
	case ArithmeticXNNPACK:
		b.xnnpack = true
	default:
		return nil, fmt.Errorf("interp: Options.Arithmetic is %q; want %q (the default) or %q", opts.Arithmetic, ArithmeticReference, ArithmeticXNNPACK)
	}
	switch opts.Kernels {
	case "", "auto":
		b.isa, b.useFast = fast.Best(), true
	case "ref":
	default:
		isa, err := fast.ParseISA(opts.Kernels)
		if err != nil {
			return nil, fmt.Errorf("interp: Options.Kernels: %v; or use \"auto\" or \"ref\"", err)
		}
		if !isa.Supported() {
			return nil, fmt.Errorf("interp: Options.Kernels is %q, but this CPU cannot run it (it runs: %v)", opts.Kernels, fast.Available())
		}
		b.isa, b.useFast = isa, true
	}
	prog, err := b.build()
	if err != nil {
		return nil, err
	}
	return prog.newInterpreter(), nil
}

// newInterpreter gives prog a fresh arena and tensor views into it.
func (p *program) newInterpreter() *Interpreter {
	it := &Interpreter{prog: p, run: fast.NewRunner(p.threads, p.scratch)}
	if p.threads > 1 {
		// Stop the workers of an interpreter dropped without Close.
		runtime.AddCleanup(it, (*fast.Runner).Close, it.run)
	}
	it.tensors = make([]Tensor, len(p.templates))
	for i, t := range p.templates {
		t.Shape = append([]int(nil), t.Shape...) // callers may not reshape a clone's sibling
		it.tensors[i] = t
	}
	it.bindArena()
	return it
}

// bindArena allocates a fresh arena and points the activation tensors into
// it.
func (it *Interpreter) bindArena() {
	p := it.prog
	it.arena = alignedBytes(p.arenaSize)
	for i := range it.tensors {
		if off := p.offsets[i]; off >= 0 {
			t := &it.tensors[i]
			n := int64(t.NumElements() * t.Type.Size())
			t.data = it.arena[off : off+n : off+n]
		}
	}
	it.released = false
}

// ReleaseArena frees the activation arena of an interpreter kept only to
// Clone from or to read tensor descriptions (names, types, shapes,
// quantization): the activation tensors lose their data, and slices taken
// from their views before must not be used any more. The next Invoke,
// Input, Output or TensorByIndex allocates a new, zeroed arena, so the
// interpreter still works; Clone never needed it.
func (it *Interpreter) ReleaseArena() {
	it.arena = nil
	for i := range it.tensors {
		if it.prog.offsets[i] >= 0 {
			it.tensors[i].data = nil
		}
	}
	it.released = true
}

// Invoke runs every operator in order. It does not allocate (except once
// after ReleaseArena). Fill the inputs first (Input(i).Int8() or
// .Float32()); read outputs afterwards.
func (it *Interpreter) Invoke() error {
	if it.run == nil {
		return errors.New("interp: Invoke after Close")
	}
	if it.released {
		it.bindArena()
	}
	for _, k := range it.prog.kernels {
		k.eval(it.tensors, it.run)
	}
	return nil
}

// Close stops the interpreter's worker goroutines (there are none with one
// thread). The interpreter cannot Invoke afterwards; its tensors stay
// readable. Closing twice is harmless.
func (it *Interpreter) Close() {
	if it.run != nil {
		it.run.Close()
		it.run = nil
	}
}

// Clone returns a new interpreter for the same prepared model with its own
// arena, scratch memory and worker goroutines (inputs not copied; Close it
// separately). It is cheap: weights and plans are shared.
func (it *Interpreter) Clone() *Interpreter { return it.prog.newInterpreter() }

// NumInputs is the number of graph inputs.
func (it *Interpreter) NumInputs() int { return len(it.prog.inputs) }

// NumOutputs is the number of graph outputs.
func (it *Interpreter) NumOutputs() int { return len(it.prog.outputs) }

// Input is graph input i, or nil when i is out of range.
func (it *Interpreter) Input(i int) *Tensor {
	if i < 0 || i >= len(it.prog.inputs) {
		return nil
	}
	if it.released {
		it.bindArena()
	}
	return &it.tensors[it.prog.inputs[i]]
}

// Output is graph output i, or nil when i is out of range.
func (it *Interpreter) Output(i int) *Tensor {
	if i < 0 || i >= len(it.prog.outputs) {
		return nil
	}
	if it.released {
		it.bindArena()
	}
	return &it.tensors[it.prog.outputs[i]]
}

// NumTensors is the number of tensors in the model.
func (it *Interpreter) NumTensors() int { return len(it.tensors) }

// TensorByIndex is model tensor i (nil when out of range), for debugging.
// Intermediate tensors share arena space unless Options.KeepAll is set, so
// after Invoke an intermediate may hold a later operator's data. Tensors
// that no operator uses have no data, and neither have constants that only
// the optimized kernels read (they keep their own packed copy) unless
// Options.KeepAll is set.
func (it *Interpreter) TensorByIndex(i int) *Tensor {
	if i < 0 || i >= len(it.tensors) {
		return nil
	}
	if it.released {
		it.bindArena()
	}
	return &it.tensors[i]
}

// MACs is the number of multiply-accumulates one Invoke performs in
// convolutions and fully connected layers (padding taps included), for
// reporting GMAC/s.
func (it *Interpreter) MACs() int64 { return it.prog.macs() }

// ArenaBytes is the size of this interpreter's activation arena.
func (it *Interpreter) ArenaBytes() int64 { return it.prog.arenaSize }

// arenaBase is for tests: the arena's first byte, to check alignment.
func (it *Interpreter) arenaBase() uintptr {
	if len(it.arena) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(it.arena)))
}
