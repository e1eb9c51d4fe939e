package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/shortcut-edge/shortcut/internal/buildinfo"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/onnx"
)

// `export` writes a training run as model.json + weights (train/EXPORT.md);
// converting a finished .tflite into ONNX is a different job, so it is its
// own command.
func init() {
	commands["export-onnx"] = command{"convert a .tflite model (float or int8) to ONNX, for ONNX Runtime", runExportONNX}
}

func runExportONNX(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("export-onnx")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train export-onnx --model M.tflite --out M.onnx [--onnx-activations int8|uint8]\n\n"+
			"Writes the model as ONNX (opset 13): the input keeps its NHWC shape and is transposed to\n"+
			"NCHW inside; every output (scores, embedding) keeps its name. An int8 model becomes a QDQ\n"+
			"graph (QuantizeLinear/DequantizeLinear around float operators, per-channel int8 weights,\n"+
			"int32 biases) that ONNX Runtime fuses into its integer kernels. See resnet/onnx.\n\n")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "the .tflite model")
	out := fs.String("out", "", "the .onnx file to write")
	acts := fs.String("onnx-activations", string(onnx.Int8), "int8 models: activation type in ONNX, int8 (the .tflite's values) or uint8 (zero points + 128, what ONNX Runtime's x86 integer kernels want; weights stay int8)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *out == "" {
		return fmt.Errorf("--model and --out are required")
	}
	if *acts != string(onnx.Int8) && *acts != string(onnx.UInt8) {
		return fmt.Errorf("--onnx-activations %q: want int8 or uint8", *acts)
	}
	m, err := resnet.LoadFile(*model)
	if err != nil {
		return err
	}
	b, err := onnx.Export(m, onnx.Options{Activations: onnx.Activations(*acts), ProducerVersion: buildinfo.Version})
	if err != nil {
		return fmt.Errorf("model %q: %w", *model, err)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d bytes, %d operators from %s (activations %s)\n", *out, len(b), len(m.Operators), *model, *acts)
	return nil
}
