package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

const arithmeticHelp = "int8 arithmetic: reference (TFLite's reference kernels, the default) or xnnpack (XNNPACK's float requantization: byte-for-byte what LiteRT.js and TFLite's XNNPACK delegate compute)"

const kernelsHelp = "kernel path: auto (the fastest this CPU has), ref (the reference kernels), go, avx512vnni, avxvnni, avx2, neon, neondot"

func loadInterpreter(path string, threads int, arithmetic, kernels string) (*interp.Interpreter, error) {
	if path == "" {
		return nil, fmt.Errorf("--model is required")
	}
	m, err := resnet.LoadFile(path)
	if err != nil {
		return nil, err
	}
	it, err := interp.New(m, interp.Options{Threads: threads, Arithmetic: arithmetic, Kernels: kernels})
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	return it, nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// setInput copies a .npy file into model input k, checking type and shape.
func setInput(it *interp.Interpreter, k int, path string) error {
	shape, data, err := npy.Read(path)
	if err != nil {
		return err
	}
	t := it.Input(k)
	if !sameShape(shape, t.Shape) {
		return fmt.Errorf("input %d %q: %s has shape %v, the model wants %v", k, t.Name, path, shape, t.Shape)
	}
	switch v := data.(type) {
	case []float32:
		if t.Type != resnet.Float32 {
			return fmt.Errorf("input %d %q: %s holds float32, the model wants %v", k, t.Name, path, t.Type)
		}
		copy(t.Float32(), v)
	case []int8:
		if t.Type != resnet.Int8 {
			return fmt.Errorf("input %d %q: %s holds int8, the model wants %v", k, t.Name, path, t.Type)
		}
		copy(t.Int8(), v)
	default:
		return fmt.Errorf("input %d %q: %s holds %T; use float32 or int8 as the model's input is", k, t.Name, path, data)
	}
	return nil
}

func writeOutput(it *interp.Interpreter, k int, path string) error {
	t := it.Output(k)
	switch t.Type {
	case resnet.Float32:
		return npy.Write(path, t.Shape, t.Float32())
	case resnet.Int8:
		return npy.Write(path, t.Shape, t.Int8())
	}
	return fmt.Errorf("output %d %q has type %v, which .npy export does not handle", k, t.Name, t.Type)
}

func runInfer(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("infer")
	model := fs.String("model", "", "the .tflite model to run")
	var ins, outs multiFlag
	fs.Var(&ins, "input", ".npy file for the next model input (repeat, in model order)")
	fs.Var(&outs, "output", ".npy file to write for the next model output (repeat, in model order)")
	threads := fs.Int("threads", 1, "worker threads")
	arithmetic := fs.String("arithmetic", interp.ArithmeticReference, arithmeticHelp)
	kernels := fs.String("kernels", "auto", kernelsHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	it, err := loadInterpreter(*model, *threads, *arithmetic, *kernels)
	if err != nil {
		return err
	}
	if len(ins) != it.NumInputs() {
		return fmt.Errorf("model %q has %d inputs, got %d --input files", *model, it.NumInputs(), len(ins))
	}
	if len(outs) == 0 || len(outs) > it.NumOutputs() {
		return fmt.Errorf("model %q has %d outputs, got %d --output files (give 1 to %d)", *model, it.NumOutputs(), len(outs), it.NumOutputs())
	}
	for k, p := range ins {
		if err := setInput(it, k, p); err != nil {
			return err
		}
	}
	if err := it.Invoke(); err != nil {
		return err
	}
	for k, p := range outs {
		if err := writeOutput(it, k, p); err != nil {
			return err
		}
	}
	return nil
}

// fillRandom writes plausible input: standard-normal floats, or int8 values
// spread over the tensor's quantized range.
func fillRandom(it *interp.Interpreter, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for k := 0; k < it.NumInputs(); k++ {
		t := it.Input(k)
		switch t.Type {
		case resnet.Float32:
			v := t.Float32()
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
		case resnet.Int8:
			v := t.Int8()
			for i := range v {
				v[i] = int8(r.IntN(256) - 128)
			}
		}
	}
}

func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("bench")
	model := fs.String("model", "", "the .tflite model to time")
	threads := fs.Int("threads", 1, "worker threads")
	iters := fs.Int("iters", 10, "timed inferences after one warm-up")
	arithmetic := fs.String("arithmetic", interp.ArithmeticReference, arithmeticHelp)
	kernels := fs.String("kernels", "auto", kernelsHelp)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *iters < 1 {
		return fmt.Errorf("--iters must be at least 1, got %d", *iters)
	}
	it, err := loadInterpreter(*model, *threads, *arithmetic, *kernels)
	if err != nil {
		return err
	}
	fillRandom(it, 1)
	if err := it.Invoke(); err != nil { // warm-up: page in weights, fill caches
		return err
	}
	best := time.Duration(1<<63 - 1)
	start := time.Now()
	for i := 0; i < *iters; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		if err := it.Invoke(); err != nil {
			return err
		}
		best = min(best, time.Since(t0))
	}
	mean := time.Since(start) / time.Duration(*iters)
	fmt.Fprintf(stdout, "model=%s threads=%d kernels=%s arithmetic=%s iters=%d min_ms=%.2f\n", *model, *threads, *kernels, *arithmetic, *iters, ms(best))
	fmt.Fprintf(stdout, "ms_per_inference=%.2f\n", ms(mean))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
