package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
	"github.com/shortcut-edge/shortcut/internal/ort"
)

type benchModel struct {
	name           string
	depth, size, k int // k: classes
}

var benchModels = map[string]benchModel{
	"resnet50": {"ResNet-50 224x224", 50, 224, 1000},
	"resnet18": {"ResNet-18 224x224", 18, 224, 1000},
	"resnet20": {"ResNet-20 32x32 (CIFAR)", 20, 32, 10},
}

// timing is what one engine measured over the rounds: every timed
// inference's minimum and one mean per round.
type timing struct {
	min    float64
	rounds []float64
}

func (t *timing) add(min, mean float64) {
	if len(t.rounds) == 0 || min < t.min {
		t.min = min
	}
	t.rounds = append(t.rounds, mean)
}

func (t *timing) median() float64 {
	s := slices.Clone(t.rounds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

var minRe = regexp.MustCompile(`min_ms=([0-9.]+)`)

// oursOnce runs `shortcut-train bench`: one warm-up, then iters timed runs;
// it returns their minimum and mean.
func oursOnce(bin, model string, threads, iters int) (min, mean float64, err error) {
	out, err := exec.Command(bin, "bench", "--model", model, "--threads", strconv.Itoa(threads), "--iters", strconv.Itoa(iters)).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s bench --model %s: %v: %s", bin, model, err, out)
	}
	a, b := minRe.FindSubmatch(out), msRe.FindSubmatch(out)
	if a == nil || b == nil {
		return 0, 0, fmt.Errorf("%s bench printed no min_ms or ms_per_inference: %s", bin, out)
	}
	min, _ = strconv.ParseFloat(string(a[1]), 64)
	mean, _ = strconv.ParseFloat(string(b[1]), 64)
	return min, mean, nil
}

type ortRow struct {
	model, kind string
	threads     int
	ours, ort   timing
}

func runORT(bin, models, types string, rounds, iters int) error {
	if rounds < 1 || iters < 1 {
		return fmt.Errorf("-rounds %d and -iters %d must be at least 1", rounds, iters)
	}
	var kinds []bool // int8 or not, in the order asked
	for _, t := range strings.Split(types, ",") {
		switch strings.TrimSpace(t) {
		case "int8":
			kinds = append(kinds, true)
		case "float32":
			kinds = append(kinds, false)
		default:
			return fmt.Errorf("-types: unknown %q (want int8, float32 or both)", t)
		}
	}
	if err := ort.Available(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-ort-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	runner, err := ort.Start(ctx)
	if err != nil {
		return err
	}
	defer runner.Close()

	var rows []*ortRow
	for _, key := range strings.Split(models, ",") {
		bm, ok := benchModels[strings.TrimSpace(key)]
		if !ok {
			return fmt.Errorf("-models: unknown model %q (want resnet50, resnet18, resnet20)", key)
		}
		input := filepath.Join(dir, fmt.Sprintf("input_%d.npy", bm.size))
		r := rand.New(rand.NewPCG(1, 1))
		x := make([]float32, bm.size*bm.size*3)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		if err := npy.Write(input, []int{1, bm.size, bm.size, 3}, x); err != nil {
			return err
		}
		for _, isInt8 := range kinds {
			kind := "float32"
			if isInt8 {
				kind = "int8"
			}
			base := filepath.Join(dir, fmt.Sprintf("resnet%d_%d_%s", bm.depth, bm.size, kind))
			tfl, onnxFile := base+".tflite", base+".onnx"
			args := []string{"random-model", "--depth", strconv.Itoa(bm.depth), "--input", fmt.Sprintf("%d,%d,3", bm.size, bm.size),
				"--classes", strconv.Itoa(bm.k), "--int8=" + strconv.FormatBool(isInt8), "--out", tfl}
			if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("making %s %s: %v: %s", kind, bm.name, err, out)
			}
			// uint8 activations with int8 per-channel weights: the configuration
			// ONNX Runtime's x86 integer kernels are built for (all Conv become
			// QLinearConv; resnet/onnx's tests check it).
			if out, err := exec.Command(bin, "export-onnx", "--model", tfl, "--out", onnxFile, "--onnx-activations", "uint8").CombinedOutput(); err != nil {
				return fmt.Errorf("exporting %s %s: %v: %s", kind, bm.name, err, out)
			}
			for _, th := range []int{1, 2} {
				row := &ortRow{model: bm.name, kind: kind, threads: th}
				for k := range rounds {
					// Alternate who goes first, so a slow phase of the machine
					// does not always fall on the same engine.
					steps := []func() error{
						func() error {
							min, mean, err := oursOnce(bin, tfl, th, iters)
							row.ours.add(min, mean)
							return err
						},
						func() error {
							warm := 0
							if k == 0 {
								warm = 2 // the first job on a session also loads it
							}
							res, err := runner.Do(ort.Job{Model: onnxFile, Inputs: []string{input}, Threads: th, Warmup: warm, Iters: iters})
							row.ort.add(res.MsMin, res.MsMean)
							return err
						},
					}
					if k%2 == 1 {
						steps[0], steps[1] = steps[1], steps[0]
					}
					for _, step := range steps {
						if err := step(); err != nil {
							return err
						}
						// ONNX Runtime's thread pool keeps spinning for tens of
						// milliseconds after a job returns: without a pause the
						// next engine's small model runs on a busy CPU (measured:
						// our 2-thread ResNet-20 at 1.22 ms right after an ORT
						// job, 0.52-0.55 ms after a 100 ms pause). Both engines get
						// the same pause.
						time.Sleep(*settle)
					}
				}
				fmt.Fprintf(os.Stderr, "benchtable: %s %s %d thread(s): ours median %.1f ms, ONNX Runtime %.1f ms\n",
					kind, bm.name, th, row.ours.median(), row.ort.median())
				rows = append(rows, row)
			}
		}
	}
	fmt.Printf("\nBatch 1, %d rounds of %d timed runs per engine (after a warm-up), engines interleaved round by round.\n", rounds, iters)
	fmt.Printf("ONNX Runtime %s (onnxruntime-node, native CPU library) runs the model exported by resnet/onnx;\n", runner.ORTVersion)
	fmt.Println("int8 there is QDQ with uint8 activations (zero points + 128) and int8 per-channel weights.")
	fmt.Println("min: fastest single run; median: of the per-round means. ratio: ours / ONNX Runtime (above 1: ours slower).")
	fmt.Printf("| %-24s | %-7s | %7s | %9s | %12s | %9s | %12s | %9s | %12s |\n",
		"model", "type", "threads", "ours min", "ours median", "ORT min", "ORT median", "ratio min", "ratio median")
	fmt.Println("|" + strings.Repeat("-", 26) + "|---------|---------|-----------|--------------|-----------|--------------|-----------|--------------|")
	for _, r := range rows {
		fmt.Printf("| %-24s | %-7s | %7d | %9.2f | %12.2f | %9.2f | %12.2f | %8.2fx | %11.2fx |\n",
			r.model, r.kind, r.threads, r.ours.min, r.ours.median(), r.ort.min, r.ort.median(),
			r.ours.min/r.ort.min, r.ours.median()/r.ort.median())
	}
	return nil
}
