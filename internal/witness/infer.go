package witness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shortcut-edge/shortcut/internal/npy"
)

// Array is the contents of one tensor: Data is []float32, []int32, []int8 or
// []uint8 in C order, with len(Data) the product of Shape.
type Array struct {
	Shape []int
	Data  any
}

// Infer runs the model file once on in-memory inputs (in the order of the
// model's inputs) and returns all its outputs. It starts a node process per
// call; for many runs, write .npy files and use Run.
func Infer(ctx context.Context, model string, engine Engine, threads int, inputs ...Array) ([]Array, error) {
	dir, err := os.MkdirTemp("", "witness-")
	if err != nil {
		return nil, fmt.Errorf("witness: %v", err)
	}
	defer os.RemoveAll(dir)
	job := Job{Model: model, Engine: engine, Threads: threads, OutputDir: filepath.Join(dir, "out")}
	if err := os.Mkdir(job.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("witness: %v", err)
	}
	for i, in := range inputs {
		p := filepath.Join(dir, fmt.Sprintf("input_%d.npy", i))
		if err := npy.Write(p, in.Shape, in.Data); err != nil {
			return nil, fmt.Errorf("witness: input %d of %s: %w", i, model, err)
		}
		job.Inputs = append(job.Inputs, p)
	}
	res, err := Run(ctx, []Job{job})
	if err != nil {
		return nil, err
	}
	if res[0].Err != nil {
		return nil, res[0].Err
	}
	outs := make([]Array, len(res[0].Outputs))
	for i := range outs {
		shape, data, err := npy.Read(filepath.Join(job.OutputDir, fmt.Sprintf("output_%d.npy", i)))
		if err != nil {
			return nil, fmt.Errorf("witness: output %d of %s: %w", i, model, err)
		}
		outs[i] = Array{Shape: shape, Data: data}
	}
	return outs, nil
}
