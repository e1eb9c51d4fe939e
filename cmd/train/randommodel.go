package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

func parseHWC(s string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("--input %q: want H,W,C such as 224,224,3", s)
	}
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v <= 0 || v > 4096 {
			return out, fmt.Errorf("--input %q: %q is not a size between 1 and 4096", s, p)
		}
		out[i] = v
	}
	return out, nil
}

// randomCalibration draws standard-normal inputs, what a normalized image
// looks like to the first convolution.
func randomCalibration(hwc [3]int, n int, seed uint64) []quant.Sample {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]quant.Sample, n)
	for i := range out {
		v := make([]float32, hwc[0]*hwc[1]*hwc[2])
		for j := range v {
			v[j] = float32(r.NormFloat64())
		}
		out[i] = quant.Sample{v}
	}
	return out
}

func runRandomModel(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("random-model")
	depth := fs.Int("depth", 50, "ResNet depth: 18, 34, 50 (ImageNet layout) or 20, 32, 44, 56, 110 (CIFAR)")
	plain := fs.Bool("plain", false, "the plain twin (no shortcuts)")
	input := fs.String("input", "224,224,3", "input H,W,C")
	classes := fs.Int("classes", 1000, "number of classes")
	int8 := fs.Bool("int8", true, "quantize to int8 (calibrated on random normal inputs)")
	int8IO := fs.Bool("int8-io", false, "with --int8: int8 inputs and outputs instead of float ones")
	calib := fs.Int("calibration", 4, "random calibration inputs for --int8")
	seed := fs.Uint64("seed", 1, "weight seed")
	out := fs.String("out", "", "output .tflite path")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	hwc, err := parseHWC(*input)
	if err != nil {
		return err
	}
	m, err := build.ResNet(build.Config{Depth: *depth, Plain: *plain, Input: hwc, Classes: *classes, Weights: build.RandomWeights(*seed)})
	if err != nil {
		return err
	}
	if *int8 {
		o := quant.Options{}
		if *int8IO {
			o.IO = quant.Int8IO
		}
		if m, err = quant.Model(m, randomCalibration(hwc, max(*calib, 1), *seed), o); err != nil {
			return err
		}
	}
	if err := m.WriteFile(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %s, %d operators, %d tensors\n", *out, m.Description, len(m.Operators), len(m.Tensors))
	return nil
}
