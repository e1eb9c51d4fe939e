package witness

import (
	"context"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/internal/npy"
)

// requireWitness fails (never skips) when node or the npm packages are
// missing: `make test` runs the setup first, so a missing witness is a broken
// setup, not an optional feature.
func requireWitness(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("the TFLite witness cannot run: %v", err)
	}
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeNpy(t *testing.T, path string, shape []int, data any) string {
	t.Helper()
	if err := npy.Write(path, shape, data); err != nil {
		t.Fatal(err)
	}
	return path
}

func readNpy(t *testing.T, path string) ([]int, any) {
	t.Helper()
	shape, data, err := npy.Read(path)
	if err != nil {
		t.Fatalf("reading the witness output: %v", err)
	}
	return shape, data
}

func timeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type engineSetup struct {
	engine  Engine
	threads int
}

var allSetups = []engineSetup{{LiteRT, 1}, {LiteRT, 2}, {TFJS, 1}, {TFJS, 2}}

func TestFloatModelOutputsMatchGoArithmeticOnEveryEngineAndThreadCount(t *testing.T) {
	requireWitness(t)
	dir := t.TempDir()
	model := writeFile(t, filepath.Join(dir, "fc_add.tflite"), fcAddModel().bytes())
	cases := []struct{ x, y []float32 }{
		{[]float32{1, 2, 3, 4}, []float32{10, 20, 30}},
		{[]float32{-0.5, 0.25, -8, 3}, []float32{0, -1, 0.5}},
	}
	var jobs []Job
	for _, setup := range allSetups {
		for c, tc := range cases {
			name := filepath.Join(dir, string(setup.engine)+string(rune('0'+setup.threads))+string(rune('a'+c)))
			jobs = append(jobs, Job{
				Model:   model,
				Inputs:  []string{writeNpy(t, name+"_x.npy", []int{1, 4}, tc.x), writeNpy(t, name+"_y.npy", []int{1, 3}, tc.y)},
				Outputs: []string{name + "_out.npy"},
				Engine:  setup.engine,
				Threads: setup.threads,
			})
		}
	}
	results, err := Run(timeout(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		j := jobs[i]
		tc := cases[i%len(cases)]
		if r.Err != nil {
			t.Errorf("%s/%d threads: %v", j.Engine, j.Threads, r.Err)
			continue
		}
		if r.Start.Engine != j.Engine || r.Start.Threads != j.Threads || r.Start.Build == "" {
			t.Errorf("job %d ran on %+v, want engine %s with %d threads", i, r.Start, j.Engine, j.Threads)
		}
		wantIO := []Tensor{{"x", "float32", []int{1, 4}}, {"y", "float32", []int{1, 3}}}
		if len(r.Inputs) != 2 || r.Inputs[0].Name != "x" || !slices.Equal(r.Inputs[1].Shape, wantIO[1].Shape) {
			t.Errorf("%s/%d threads: inputs %+v, want %+v", j.Engine, j.Threads, r.Inputs, wantIO)
		}
		shape, data := readNpy(t, j.Outputs[0])
		got, ok := data.([]float32)
		if !ok || !slices.Equal(shape, []int{1, 3}) {
			t.Fatalf("%s/%d threads: output is %T of shape %v, want []float32 of [1 3]", j.Engine, j.Threads, data, shape)
		}
		want := fcAddExpected(tc.x, tc.y)
		for k := range want {
			if math.Abs(float64(got[k]-want[k])) > 1e-5*math.Max(1, math.Abs(float64(want[k]))) {
				t.Errorf("%s/%d threads, x=%v y=%v: out = %v, want %v", j.Engine, j.Threads, tc.x, tc.y, got, want)
				break
			}
		}
	}
}

func TestTfjsTakesAndGivesInt8WhileLiteRTRefusesInt8IO(t *testing.T) {
	requireWitness(t)
	dir := t.TempDir()
	model := writeFile(t, filepath.Join(dir, "quant_io.tflite"), quantIOModel().bytes())
	// No value of sum/0.25 sits on a .5 tie, so every rounding rule agrees.
	a := []int8{-128, -2, 0, 5, 100, 127, -50, 7}
	b := []float32{0.1, -0.3, 1.05, 2.2, -3.3, 0.7, 10.1, -0.6}
	ain := writeNpy(t, filepath.Join(dir, "a.npy"), []int{1, 8}, a)
	bin := writeNpy(t, filepath.Join(dir, "b.npy"), []int{1, 8}, b)
	var jobs []Job
	for _, s := range allSetups {
		p := filepath.Join(dir, string(s.engine)+string(rune('0'+s.threads)))
		jobs = append(jobs, Job{Model: model, Inputs: []string{ain, bin}, Outputs: []string{p + "_q.npy", p + "_sum.npy"}, Engine: s.engine, Threads: s.threads})
	}
	results, err := Run(timeout(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	wantQ, wantSum := quantIOExpected(a, b)
	for i, r := range results {
		j := jobs[i]
		if j.Engine == LiteRT {
			if r.Err == nil || !strings.Contains(r.Err.Error(), "INT8") {
				t.Errorf("litert/%d threads: err = %v, want LiteRT.js's refusal of INT8 inputs", j.Threads, r.Err)
			}
			continue
		}
		if r.Err != nil {
			t.Errorf("tfjs/%d threads: %v", j.Threads, r.Err)
			continue
		}
		if r.Inputs[0].DType != "int8" || r.Outputs[0].DType != "int8" {
			t.Errorf("tfjs/%d threads: input 0 is %s, output 0 is %s, want int8 for both", j.Threads, r.Inputs[0].DType, r.Outputs[0].DType)
		}
		shape, q := readNpy(t, j.Outputs[0])
		if !slices.Equal(shape, []int{1, 8}) || !slices.Equal(q.([]int8), wantQ) {
			t.Errorf("tfjs/%d threads: q = %v %v, want [1 8] %v", j.Threads, shape, q, wantQ)
		}
		_, sum := readNpy(t, j.Outputs[1])
		for k, v := range sum.([]float32) {
			if math.Abs(float64(v-wantSum[k])) > 1e-5*math.Max(1, math.Abs(float64(wantSum[k]))) {
				t.Errorf("tfjs/%d threads: sum = %v, want %v", j.Threads, sum, wantSum)
				break
			}
		}
	}
}

func TestBadJobsFailAloneAndTheOthersStillRun(t *testing.T) {
	requireWitness(t)
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "fc_add.tflite"), fcAddModel().bytes())
	broken := writeFile(t, filepath.Join(dir, "broken.tflite"), []byte("this is not a flatbuffer"))
	truncated := writeFile(t, filepath.Join(dir, "truncated.tflite"), fcAddModel().bytes()[:200])
	x := writeNpy(t, filepath.Join(dir, "x.npy"), []int{1, 4}, []float32{1, 2, 3, 4})
	y := writeNpy(t, filepath.Join(dir, "y.npy"), []int{1, 3}, []float32{1, 2, 3})
	xWrongShape := writeNpy(t, filepath.Join(dir, "x_shape.npy"), []int{4, 1}, []float32{1, 2, 3, 4})
	xWrongType := writeNpy(t, filepath.Join(dir, "x_type.npy"), []int{1, 4}, []int32{1, 2, 3, 4})
	notNpy := writeFile(t, filepath.Join(dir, "x_bad.npy"), []byte("garbage"))
	cases := []struct {
		name    string
		job     Job
		wantErr string // "" means the job must succeed
	}{
		{"good model", Job{Model: good, Inputs: []string{x, y}}, ""},
		{"not a flatbuffer", Job{Model: broken, Inputs: []string{x, y}}, "load failed"},
		{"truncated model", Job{Model: truncated, Inputs: []string{x, y}}, "load failed"},
		{"missing model file", Job{Model: filepath.Join(dir, "absent.tflite")}, "absent.tflite"},
		{"too few inputs", Job{Model: good, Inputs: []string{x}}, "has 2 inputs"},
		{"input of the wrong shape", Job{Model: good, Inputs: []string{xWrongShape, y}}, "shape [4,1]"},
		{"input of the wrong dtype", Job{Model: good, Inputs: []string{xWrongType, y}}, "int32"},
		{"input that is not .npy", Job{Model: good, Inputs: []string{notNpy, y}}, "not a .npy file"},
		{"more output paths than outputs", Job{Model: good, Inputs: []string{x, y}, Outputs: []string{"a.npy", "b.npy"}}, "has 1 outputs"},
		{"good model again", Job{Model: good, Inputs: []string{x, y}, Outputs: []string{filepath.Join(dir, "out.npy")}}, ""},
	}
	for _, engine := range []Engine{LiteRT, TFJS} {
		var jobs []Job
		for _, c := range cases {
			j := c.job
			j.Engine = engine
			jobs = append(jobs, j)
		}
		results, err := Run(timeout(t), jobs)
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		for i, c := range cases {
			r := results[i]
			switch {
			case c.wantErr == "" && r.Err != nil:
				t.Errorf("%s, %s: %v", engine, c.name, r.Err)
			case c.wantErr != "" && r.Err == nil:
				t.Errorf("%s, %s: succeeded, want an error containing %q", engine, c.name, c.wantErr)
			case c.wantErr != "" && !strings.Contains(r.Err.Error(), c.wantErr):
				t.Errorf("%s, %s: error %q does not contain %q", engine, c.name, r.Err, c.wantErr)
			}
		}
	}
}

func TestTimedJobsReportMeanAndFastestInference(t *testing.T) {
	requireWitness(t)
	dir := t.TempDir()
	model := writeFile(t, filepath.Join(dir, "fc_add.tflite"), fcAddModel().bytes())
	x := writeNpy(t, filepath.Join(dir, "x.npy"), []int{1, 4}, []float32{1, 2, 3, 4})
	y := writeNpy(t, filepath.Join(dir, "y.npy"), []int{1, 3}, []float32{1, 2, 3})
	results, err := Run(timeout(t), []Job{
		{Model: model, Inputs: []string{x, y}, Engine: LiteRT, Iters: 20},
		{Model: model, Inputs: []string{x, y}, Engine: TFJS, Iters: 20, Warmup: 3},
		{Model: model, Inputs: []string{x, y}, Engine: TFJS},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results[:2] {
		if r.Err != nil || r.Iters != 20 || !(r.MsMin > 0 && r.MsMin <= r.MsPerInference) {
			t.Errorf("%s: err %v, %d iters, mean %g ms, min %g ms; want 20 iters and 0 < min <= mean", r.Start.Engine, r.Err, r.Iters, r.MsPerInference, r.MsMin)
		}
		if r.Start.StartMs <= 0 {
			t.Errorf("%s: start-up time %g ms was not reported", r.Start.Engine, r.Start.StartMs)
		}
	}
	if r := results[2]; r.Err != nil || r.Iters != 0 || r.MsPerInference != 0 {
		t.Errorf("untimed job: err %v, iters %d, mean %g; want no timing", r.Err, r.Iters, r.MsPerInference)
	}
}

// Threads split the work but must not change the result: XNNPACK computes
// each output element with the same micro-kernel whichever thread runs it.
func TestTwoThreadsGiveTheSameBytesAsOne(t *testing.T) {
	requireWitness(t)
	dir := t.TempDir()
	r := rand.New(rand.NewSource(1))
	w := make([]float32, 256*256)
	for i := range w {
		w[i] = r.Float32() - 0.5
	}
	m := tinyModel{
		tensors: []tinyTensor{
			{name: "x", typ: tfFloat32, shape: []int32{32, 256}},
			{name: "w", typ: tfFloat32, shape: []int32{256, 256}, data: f32bytes(w...)},
			{name: "h", typ: tfFloat32, shape: []int32{32, 256}},
			{name: "out", typ: tfFloat32, shape: []int32{32, 256}},
		},
		ops: []tinyOp{
			{code: opFullyConnected, inputs: []int32{0, 1, -1}, outputs: []int32{2}},
			{code: opFullyConnected, inputs: []int32{2, 1, -1}, outputs: []int32{3}},
		},
		inputs:  []int32{0},
		outputs: []int32{3},
	}
	model := writeFile(t, filepath.Join(dir, "fc2.tflite"), m.bytes())
	xs := make([]float32, 32*256)
	for i := range xs {
		xs[i] = r.Float32() - 0.5
	}
	x := writeNpy(t, filepath.Join(dir, "x.npy"), []int{32, 256}, xs)
	var jobs []Job
	for _, s := range allSetups {
		jobs = append(jobs, Job{Model: model, Inputs: []string{x}, Outputs: []string{filepath.Join(dir, string(s.engine)+string(rune('0'+s.threads))+".npy")}, Engine: s.engine, Threads: s.threads})
	}
	results, err := Run(timeout(t), jobs)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(jobs); i += 2 {
		if results[i].Err != nil || results[i+1].Err != nil {
			t.Fatalf("%s: %v / %v", jobs[i].Engine, results[i].Err, results[i+1].Err)
		}
		one, err1 := os.ReadFile(jobs[i].Outputs[0])
		two, err2 := os.ReadFile(jobs[i+1].Outputs[0])
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if string(one) != string(two) {
			t.Errorf("%s: the output with 2 threads differs from the output with 1 thread", jobs[i].Engine)
		}
	}
}

func TestInferReturnsEveryOutputInMemory(t *testing.T) {
	requireWitness(t)
	model := writeFile(t, filepath.Join(t.TempDir(), "quant_io.tflite"), quantIOModel().bytes())
	a := []int8{1, 2, 3, 4, -5, -6, -7, -8}
	b := []float32{0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9}
	outs, err := Infer(timeout(t), model, TFJS, 1, Array{[]int{1, 8}, a}, Array{[]int{1, 8}, b})
	if err != nil {
		t.Fatal(err)
	}
	wantQ, _ := quantIOExpected(a, b)
	if len(outs) != 2 || !slices.Equal(outs[0].Shape, []int{1, 8}) || !slices.Equal(outs[0].Data.([]int8), wantQ) {
		t.Fatalf("outputs %+v, want q = %v first of 2", outs, wantQ)
	}
	if _, ok := outs[1].Data.([]float32); !ok {
		t.Errorf("output 1 is %T, want []float32", outs[1].Data)
	}
}

func TestRunRejectsJobsItCannotStart(t *testing.T) {
	cases := []struct {
		name string
		job  Job
		want string
	}{
		{"unknown engine", Job{Model: "m.tflite", Engine: "tensorrt"}, `engine "tensorrt"`},
		{"negative threads", Job{Model: "m.tflite", Threads: -1}, "threads -1"},
		{"negative iters", Job{Model: "m.tflite", Iters: -3}, "iters -3"},
		{"negative warmup", Job{Model: "m.tflite", Warmup: -2}, "warmup -2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Run(context.Background(), []Job{c.job})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	requireWitness(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results, err := Run(ctx, []Job{{Model: "any.tflite"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if len(results) != 1 || results[0].Err == nil {
		t.Errorf("results = %+v, want one result with an error", results)
	}
}

func TestAvailableSaysHowToInstallWhenPackagesAreMissing(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tools", "tflite-node"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "tools", "tflite-node", "run.mjs"), nil)
	t.Setenv(RootEnv, root)
	err := Available()
	if err == nil || !strings.Contains(err.Error(), "setup.sh") {
		t.Errorf("Available() = %v, want an error that says to run setup.sh", err)
	}
	if _, err := Run(context.Background(), []Job{{Model: "m.tflite"}}); err == nil || !strings.Contains(err.Error(), "make setup") {
		t.Errorf("Run() = %v, want an error that says to run make setup", err)
	}
}

func TestAvailableSaysWhereTheRootIsWanted(t *testing.T) {
	t.Setenv(RootEnv, t.TempDir())
	if err := Available(); err == nil || !strings.Contains(err.Error(), RootEnv) {
		t.Errorf("Available() = %v, want an error naming %s", err, RootEnv)
	}
}

// Debian 12's own node is 18: a fresh machine has it on PATH before setup has
// installed Node.js 20 beside the runner. The error must say how to get 20.
func TestAvailableSaysToRunSetupWhenNodeIsTooOld(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"tools/tflite-node", "bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "tools", "tflite-node", "run.mjs"), nil)
	old := writeFile(t, filepath.Join(root, "bin", "node"), []byte("#!/bin/sh\necho v18.20.4\n"))
	if err := os.Chmod(old, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(RootEnv, root)
	t.Setenv(NodeEnv, old)
	err := Available()
	if err == nil || !strings.Contains(err.Error(), "v18.20.4") || !strings.Contains(err.Error(), "setup.sh") {
		t.Errorf("Available() = %v, want an error that names v18.20.4 and says to run setup.sh", err)
	}
}
