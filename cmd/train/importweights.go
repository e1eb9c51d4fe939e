package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shortcut-edge/shortcut/train"
	"github.com/shortcut-edge/shortcut/train/models"
)

func init() {
	commands["import-weights"] = command{"turn pretrained torchvision-layout weights (.pth or safetensors) into a run (fit --resume, export)", runImportWeights}
}

// parseClasses reads --classes: a count ("10"), names ("cat,dog") or @FILE (one name a line).
func parseClasses(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return nil, nil
	case strings.HasPrefix(s, "@"):
		b, err := os.ReadFile(s[1:])
		if err != nil {
			return nil, fmt.Errorf("--classes: %w", err)
		}
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		if len(out) < 2 {
			return nil, fmt.Errorf("--classes %s: %d names, need at least 2 (one a line)", s, len(out))
		}
		return out, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 2 {
			return nil, fmt.Errorf("--classes %d: need at least 2", n)
		}
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.Itoa(i)
		}
		return out, nil
	}
	out := strings.Split(s, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("--classes %q: need at least 2 names", s)
	}
	return out, nil
}

func parseFloat32s(name, s string) ([]float32, error) {
	v, err := parseFloats(name, s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out, err
}

// parseHW reads "224" or "224,224".
func parseHW(s string) (int, int, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return 0, 0, fmt.Errorf("--input %q: want H or H,W", s)
	}
	var hw [2]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 8 || v > 4096 {
			return 0, 0, fmt.Errorf("--input %q: %q is not a size between 8 and 4096", s, p)
		}
		hw[i] = v
	}
	if len(parts) == 1 {
		hw[1] = hw[0]
	}
	return hw[0], hw[1], nil
}

func runImportWeights(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("import-weights")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train import-weights --in resnet50.pth --arch resnet50 --run DIR [flags]\n\n"+
			"Reads pretrained weights stored with torchvision's state_dict names and shapes, from a\n"+
			"torch.save .pth (torchvision's own downloads) or a safetensors file, told apart by their\n"+
			"content, and writes a run directory that 'fit --resume' fine-tunes and 'export' exports.\n"+
			"Expected names (print all with --print-names): conv1.weight [O,I,KH,KW]; bn1.weight,\n"+
			"bn1.bias, bn1.running_mean, bn1.running_var; layerS.B.conv{1,2,3}.weight,\n"+
			"layerS.B.bn{1,2,3}.*, layerS.B.downsample.0.weight, layerS.B.downsample.1.* (first block\n"+
			"of each stage); fc.weight [classes,features], fc.bias. *.num_batches_tracked is ignored;\n"+
			"any other tensor, a missing one, a wrong shape or a NaN/Inf value is an error. dtypes F32,\n"+
			"F16, BF16, F64. The base width and input channels come from conv1.weight. A .pth is read\n"+
			"without running its pickle: only the globals torch.save writes for a state dict pass.\n\n")
		fs.PrintDefaults()
	}
	format := fs.String("format", train.FormatAuto, "weights file format: auto (from the file's content), pth (torch.save zip) or safetensors")
	in := fs.String("in", "", "weights file")
	arch := fs.String("arch", "resnet50", "architecture the weights belong to: resnet50, resnet18, resnet34 (or a CIFAR resnet<d>)")
	run := fs.String("run", "", "new run directory")
	input := fs.String("input", "224", "network input size H or H,W the run will train on")
	classes := fs.String("classes", "", "class count, comma-separated names, or @FILE (one name a line); empty: fc.weight's row count")
	newHead := fs.Bool("new-head", false, "skip fc.weight/fc.bias: start the classifier from random weights (other classes)")
	mean := fs.String("mean", "", "input mean per channel on the 0..1 scale (default for 3 channels: ImageNet 0.485,0.456,0.406)")
	std := fs.String("std", "", "input std per channel (default for 3 channels: ImageNet 0.229,0.224,0.225)")
	seed := fs.Uint64("seed", 1, "seed recorded for the run; fit --resume must use the same")
	printNames := fs.Bool("print-names", false, "print the tensor names and PyTorch shapes expected for --arch (3 channels, 1000 classes) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, w, err := parseHW(*input)
	if err != nil {
		return err
	}
	if *printNames {
		net, err := models.New(models.Config{Arch: *arch, Height: h, Width: w, Channels: 3, NumClasses: 1000})
		if err != nil {
			return err
		}
		names, shapes := train.ExpectedTensorNames(net)
		for _, n := range names {
			fmt.Fprintf(stdout, "%s %v\n", n, shapes[n])
		}
		return nil
	}
	if *in == "" || *run == "" {
		return fmt.Errorf("--in and --run are required")
	}
	cls, err := parseClasses(*classes)
	if err != nil {
		return err
	}
	mv, err1 := parseFloat32s("mean", *mean)
	sv, err2 := parseFloat32s("std", *std)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%v %v", err1, err2)
	}
	for _, s := range sv {
		if s <= 0 {
			return fmt.Errorf("--std %q: values must be positive", *std)
		}
	}
	sum, err := train.ImportWeights(train.ImportOptions{Path: *in, Format: *format, Arch: *arch, Height: h, Width: w,
		Classes: cls, NewHead: *newHead, Mean: mv, Std: sv, Run: *run, Seed: *seed})
	if err != nil {
		return err
	}
	m := sum.Meta
	head := "imported"
	if sum.NewHead {
		head = "new (random)"
	}
	ws := "default"
	if m.BaseWidth > 0 {
		ws = strconv.Itoa(m.BaseWidth)
	}
	fmt.Fprintf(stdout, "imported %d tensors from %s (%s) into %s: %s width %s, input %dx%dx%d, %d classes, classifier %s\n",
		sum.Tensors, *in, sum.Format, *run, m.Arch, ws, m.Height, m.Width, m.Channels, len(m.Classes), head)
	fmt.Fprintf(stdout, "fine-tune: shortcut-train fit --run %s --resume --arch %s", *run, m.Arch)
	if m.BaseWidth > 0 {
		fmt.Fprintf(stdout, " --width %d", m.BaseWidth)
	}
	if *seed != 1 {
		fmt.Fprintf(stdout, " --seed %d", *seed)
	}
	fmt.Fprintf(stdout, " --data ... (images of %dx%d)\n", m.Height, m.Width)
	return nil
}
