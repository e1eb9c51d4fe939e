// Command benchtable prints `make bench`'s runtime tables, each measured in
// one run beside its peer:
//
//   - -peer litert (the default): int8 ResNet-50 at 224x224, batch 1, in our
//     runtime and in a real TFLite (LiteRT.js, XNNPACK over WASM SIMD);
//   - -peer ort: int8 and float ResNet-50 224, ResNet-18 224 and CIFAR
//     ResNet-20 32x32 in our runtime and in ONNX Runtime (native, on the
//     model exported by resnet/onnx), 1 and 2 threads, interleaved round by
//     round, with min, median and the ratio ours/ORT (ort.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/witness"
)

func main() {
	bin := flag.String("train", "bin/shortcut-train", "the shortcut-train binary")
	depth := flag.Int("depth", 50, "ResNet depth")
	size := flag.Int("size", 224, "input height and width")
	iters := flag.Int("iters", 5, "timed inferences per engine (-peer ort: per engine and round)")
	peer := flag.String("peer", "litert", "litert (int8 ResNet-50 vs LiteRT.js) or ort (ResNets vs ONNX Runtime)")
	rounds := flag.Int("rounds", 5, "-peer ort: interleaved rounds per model and thread count")
	models := flag.String("models", "resnet50,resnet18,resnet20", "-peer ort: models to time (resnet50, resnet18: 224x224; resnet20: 32x32)")
	settle = flag.Duration("settle", 200*time.Millisecond, "-peer ort: pause after each engine's step, so the next one starts on an idle CPU")
	types := flag.String("types", "int8,float32", "-peer ort: which arithmetic to time: int8, float32 or both")
	flag.Parse()
	var err error
	switch *peer {
	case "litert":
		err = run(*bin, *depth, *size, *iters)
	case "ort":
		err = runORT(*bin, *models, *types, *rounds, *iters)
	default:
		err = fmt.Errorf("-peer %q: want litert or ort", *peer)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

// settle is -settle.
var settle *time.Duration

var msRe = regexp.MustCompile(`ms_per_inference=([0-9.]+)`)

func ours(bin, model string, threads, iters int) (float64, error) {
	out, err := exec.Command(bin, "bench", "--model", model, "--threads", strconv.Itoa(threads), "--iters", strconv.Itoa(iters)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s bench: %v: %s", bin, err, out)
	}
	m := msRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s bench printed no ms_per_inference: %s", bin, out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func run(bin string, depth, size, iters int) error {
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	model := filepath.Join(dir, "model.tflite")
	in := fmt.Sprintf("%d,%d,3", size, size)
	if out, err := exec.Command(bin, "random-model", "--depth", strconv.Itoa(depth), "--input", in, "--int8", "--out", model).CombinedOutput(); err != nil {
		return fmt.Errorf("making the model: %v: %s", err, out)
	}
	type row struct {
		engine  string
		threads int
		ms      float64
	}
	var rows []row
	for _, th := range []int{1, 2} {
		ms, err := ours(bin, model, th, iters)
		if err != nil {
			return err
		}
		rows = append(rows, row{"shortcut (Go, kernels chosen at start)", th, ms})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	input := filepath.Join(dir, "input.npy")
	r := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, size*size*3)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	if err := npy.Write(input, []int{1, size, size, 3}, x); err != nil {
		return err
	}
	jobs := []witness.Job{
		{Model: model, Inputs: []string{input}, Engine: witness.LiteRT, Threads: 1, Iters: iters},
		{Model: model, Inputs: []string{input}, Engine: witness.LiteRT, Threads: 2, Iters: iters},
	}
	res, err := witness.Run(ctx, jobs)
	if err != nil {
		return err
	}
	lite := map[int]float64{}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("LiteRT.js %d thread(s): %v", jobs[i].Threads, r.Err)
		}
		lite[jobs[i].Threads] = r.MsPerInference
		rows = append(rows, row{"LiteRT.js 2.5.3 (XNNPACK, WASM SIMD)", jobs[i].Threads, r.MsPerInference})
	}
	fmt.Printf("\nint8 ResNet-%d %dx%d, batch 1, %d timed runs after a warm-up\n", depth, size, size, iters)
	fmt.Printf("| %-38s | %-7s | %12s | %-22s |\n", "engine", "threads", "ms/inference", "ratio to LiteRT.js")
	fmt.Println("|" + strings.Repeat("-", 40) + "|---------|--------------|------------------------|")
	for _, r := range rows {
		fmt.Printf("| %-38s | %7d | %12.1f | %22.2fx |\n", r.engine, r.threads, r.ms, r.ms/lite[r.threads])
	}
	fmt.Println("(LiteRT.js runs XNNPACK compiled to WASM, which cannot use AVX-512; native TFLite would be faster.)")
	return nil
}
