// Command agree runs one .tflite model on the same random input through
// `shortcut-train infer` and through a real TFLite (LiteRT.js), and prints
// how far apart the outputs are (in LSB of the int8 tensor behind each
// output) and whether the top-1 class is the same.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
	"github.com/shortcut-edge/shortcut/resnet"
)

func main() {
	bin := flag.String("train", "bin/shortcut-train", "the shortcut-train binary")
	model := flag.String("model", "", "the .tflite model (float inputs)")
	dir := flag.String("dir", os.TempDir(), "where to write .npy files")
	flag.Parse()
	if err := run(*bin, *model, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "agree:", err)
		os.Exit(1)
	}
}

func run(bin, model, dir string) error {
	m, err := resnet.LoadFile(model)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(7, 7))
	args := []string{"infer", "--model", model}
	var inputs []string
	for k, ti := range m.Inputs {
		t := m.Tensors[ti]
		if t.Type != resnet.Float32 {
			return fmt.Errorf("input %d is %v; agree feeds float inputs only", k, t.Type)
		}
		v := make([]float32, t.NumElements())
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		p := filepath.Join(dir, fmt.Sprintf("in%d.npy", k))
		if err := npy.Write(p, t.Shape, v); err != nil {
			return err
		}
		inputs = append(inputs, p)
		args = append(args, "--input", p)
	}
	var ours []string
	for k := range m.Outputs {
		p := filepath.Join(dir, fmt.Sprintf("ours%d.npy", k))
		ours = append(ours, p)
		args = append(args, "--output", p)
	}
	t0 := time.Now()
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s infer: %v: %s", bin, err, out)
	}
	fmt.Printf("ours: %v (load + one inference)\n", time.Since(t0).Round(time.Millisecond))
	tdir := filepath.Join(dir, "tflite")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := witness.Run(ctx, []witness.Job{{Model: model, Inputs: inputs, OutputDir: tdir, Engine: witness.LiteRT, Threads: 1}})
	if err != nil {
		return err
	}
	if res[0].Err != nil {
		return fmt.Errorf("LiteRT.js: %v", res[0].Err)
	}
	for k, ti := range m.Outputs {
		_, a, err := npy.Read(ours[k])
		if err != nil {
			return err
		}
		_, b, err := npy.Read(filepath.Join(tdir, fmt.Sprintf("output_%d.npy", k)))
		if err != nil {
			return err
		}
		x, y := a.([]float32), b.([]float32)
		scale := 1.0
		for _, op := range m.Operators {
			if op.Op == resnet.OpDequantize && op.Outputs[0] == ti {
				scale = float64(m.Tensors[op.Inputs[0]].Quant.Scale[0])
			}
		}
		worst, ax, ay := 0.0, 0, 0
		for i := range x {
			worst = math.Max(worst, math.Abs(float64(x[i]-y[i]))/scale)
			if x[i] > x[ax] {
				ax = i
			}
			if y[i] > y[ay] {
				ay = i
			}
		}
		fmt.Printf("output %d %q (%d values): max difference %.2f LSB; argmax ours %d, TFLite %d\n", k, m.Tensors[ti].Name, len(x), worst, ax, ay)
	}
	return nil
}
