package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/shortcut-edge/shortcut/train"
)

func init() {
	commands["export"] = command{"write a trained run as folded float weights + model.json for quantize (train/EXPORT.md)", runExport}
}

func runExport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("export")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train export --run DIR --out DIR [--latest]\n\n"+
			"Writes the model of a run (its best/ checkpoint unless --latest) with batch norm folded\n"+
			"into the convolutions: OUT/model.json (graph, classes, input normalization) and\n"+
			"OUT/weights.bin (float32). The format is documented in train/EXPORT.md; quantize reads it.\n\n")
		fs.PrintDefaults()
	}
	run := fs.String("run", "", "run directory written by fit or import-weights")
	out := fs.String("out", "", "output directory")
	latest := fs.Bool("latest", false, "export the latest checkpoint instead of best/")
	be := fs.String("backend", "cpu", "backend used to read the checkpoint (cpu is enough)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *run == "" || *out == "" {
		return fmt.Errorf("--run and --out are required")
	}
	m, err := train.Export(train.ExportOptions{Backend: *be, Dir: *run, Latest: *latest, Out: *out})
	if err != nil {
		return err
	}
	var bytes int64
	if st, err := os.Stat(filepath.Join(*out, m.Weights)); err == nil {
		bytes = st.Size()
	}
	convs := 0
	for _, op := range m.Ops {
		if op.Op == "conv2d" {
			convs++
		}
	}
	fmt.Fprintf(stdout, "exported %s: %s, input %v, %d classes, %d ops (%d conv2d), %d tensors, %d weight bytes\n",
		*out, m.Arch, m.Input.Shape, len(m.Classes), len(m.Ops), convs, len(m.Tensors), bytes)
	fmt.Fprintf(stdout, "manifest=%s\n", filepath.Join(*out, "model.json"))
	return nil
}
