// Package ort runs ONNX models in ONNX Runtime, the native CPU peer that
// tests hold Shortcut's runtime to (through resnet/onnx's exporter) and that
// `make bench` times beside it.
//
// ONNX Runtime is the npm package onnxruntime-node 1.30.0 (its native
// libonnxruntime ships inside the package) run by tools/ort-node/run.mjs
// under Node.js. Tensors travel as .npy files. A Runner is one node process:
// it keeps a session per (model, threads), so jobs sent one at a time can be
// interleaved with other work (the benchmark alternates it with our own
// runtime) and only the first job on a session pays for loading.
package ort

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/internal/nodeproto"
	"github.com/shortcut-edge/shortcut/internal/repo"
	"github.com/shortcut-edge/shortcut/internal/witness"
)

const runnerDir = "tools/ort-node"

const setupHint = "run `make setup` or `tools/ort-node/setup.sh`"

// Version is the onnxruntime-node release that tools/ort-node pins.
const Version = "1.30.0"

// Job is one model run.
type Job struct {
	// Model is the .onnx file.
	Model string
	// Inputs are .npy files in the order of the model's inputs.
	Inputs []string
	// Outputs are where to write the outputs as .npy; OutputDir instead
	// writes every output i to OutputDir/output_<i>.npy.
	Outputs   []string
	OutputDir string
	// Threads is the session's intra-op thread count; 0 means 1.
	Threads int
	// Iters > 0 times the model: Warmup untimed runs (0 means 2), then Iters
	// timed runs.
	Iters, Warmup int
	// OptimizedModel, when set, is where ONNX Runtime writes the graph as it
	// rewrote it (fused integer operators included).
	OptimizedModel string
}

// Tensor describes one model input or output as ONNX Runtime sees it.
type Tensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

// Result is the outcome of one Job.
type Result struct {
	Inputs, Outputs []Tensor
	// LoadMs is the session creation time; 0 when the session was reused.
	LoadMs float64
	// Samples are the timed runs in ms (Iters of them); MsMin, MsMedian and
	// MsMean summarize them.
	Samples                 []float64
	MsMin, MsMedian, MsMean float64
}

// Available reports whether ONNX Runtime can run: node is found and
// tools/ort-node has its packages installed. The error says what to do.
func Available() error {
	_, err := find()
	return err
}

type install struct {
	node, dir string
}

func find() (install, error) {
	dir, err := repo.Find(runnerDir + "/run.mjs")
	if err != nil {
		return install{}, fmt.Errorf("ort: %w", err)
	}
	node := os.Getenv(witness.NodeEnv)
	if node == "" {
		// tools/tflite-node/setup.sh installs Node.js 20 beside its runner when
		// the system's is older; use it here too.
		if local := filepath.Join(filepath.Dir(dir), "tflite-node", ".node", "bin", "node"); fileExists(local) {
			node = local
		}
	}
	if node == "" {
		if node, err = exec.LookPath("node"); err != nil {
			return install{}, fmt.Errorf("ort: node is not on PATH: install Node.js (Debian: apt-get install nodejs npm) and %s, or set %s", setupHint, witness.NodeEnv)
		}
	}
	pkg := filepath.Join(dir, "node_modules", "onnxruntime-node", "package.json")
	b, err := os.ReadFile(pkg)
	if err != nil {
		return install{}, fmt.Errorf("ort: onnxruntime-node is not installed in %s/node_modules: %s", dir, setupHint)
	}
	var meta struct{ Version string }
	if json.Unmarshal(b, &meta) != nil || meta.Version != Version {
		return install{}, fmt.Errorf("ort: %s/node_modules holds onnxruntime-node %q, want %s: %s", dir, meta.Version, Version, setupHint)
	}
	stamp, err := os.ReadFile(filepath.Join(dir, "node_modules", ".shortcut-lock.sha256"))
	if err != nil {
		return install{}, fmt.Errorf("ort: %s/node_modules was not installed by setup.sh: %s", dir, setupHint)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return install{}, fmt.Errorf("ort: %v", err)
	}
	sum := sha256.Sum256(lock)
	if strings.TrimSpace(string(stamp)) != hex.EncodeToString(sum[:]) {
		return install{}, fmt.Errorf("ort: %s/node_modules is older than package-lock.json: %s", dir, setupHint)
	}
	return install{node: node, dir: dir}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Runner is one running node process with ONNX Runtime loaded.
type Runner struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *nodeproto.Lines
	stderr *nodeproto.Tail
	next   int
	// Start describes the process.
	ORTVersion, Node string
}

const prefix = "@@ort "

type wire struct {
	Fatal    *string   `json:"fatal"`
	Ready    bool      `json:"ready"`
	ORT      string    `json:"ort"`
	Node     string    `json:"node"`
	Job      *int      `json:"job"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error"`
	Inputs   []Tensor  `json:"inputs"`
	Outputs  []Tensor  `json:"outputs"`
	LoadMs   float64   `json:"load_ms"`
	Samples  []float64 `json:"samples"`
	MsMin    float64   `json:"ms_min"`
	MsMedian float64   `json:"ms_median"`
	MsMean   float64   `json:"ms_mean"`
}

// Start starts a runner; ctx ending kills it. Close it when done.
func Start(ctx context.Context) (*Runner, error) {
	inst, err := find()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, inst.node, filepath.Join(inst.dir, "run.mjs"))
	cmd.WaitDelay = 2 * time.Second
	r := &Runner{cmd: cmd, stderr: &nodeproto.Tail{}}
	cmd.Stderr = r.stderr
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("ort: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("ort: %v", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ort: start %s: %w", inst.node, err)
	}
	r.lines = nodeproto.NewLines(stdout, prefix)
	w, err := r.read()
	if err != nil {
		r.Close()
		return nil, err
	}
	if w.Fatal != nil || !w.Ready {
		r.Close()
		msg := "no ready line"
		if w.Fatal != nil {
			msg = *w.Fatal
		}
		return nil, fmt.Errorf("ort: ONNX Runtime did not start: %s%s", msg, r.logs())
	}
	r.ORTVersion, r.Node = w.ORT, w.Node
	return r, nil
}

func (r *Runner) read() (wire, error) {
	var w wire
	if ok, err := r.lines.Next(&w); !ok {
		return wire{}, fmt.Errorf("ort: node stopped answering: %v%s", err, r.logs())
	}
	return w, nil
}

// Do runs one job and waits for its result. A job that fails (a model ONNX
// Runtime refuses, an input that does not fit) returns its error and leaves
// the runner usable; a runner whose process died returns errors from then on.
func (r *Runner) Do(j Job) (Result, error) {
	if j.Threads < 0 || j.Threads > 64 || j.Iters < 0 || j.Warmup < 0 {
		return Result{}, fmt.Errorf("ort: job %s: threads %d, iters %d or warmup %d out of range", j.Model, j.Threads, j.Iters, j.Warmup)
	}
	w := map[string]any{"model": nodeproto.Abs(j.Model), "threads": max(j.Threads, 1), "iters": j.Iters}
	in := []string{}
	for _, p := range j.Inputs {
		in = append(in, nodeproto.Abs(p))
	}
	w["inputs"] = in
	if j.OutputDir != "" {
		w["output_dir"] = nodeproto.Abs(j.OutputDir)
	} else {
		out := []string{}
		for _, p := range j.Outputs {
			out = append(out, nodeproto.Abs(p))
		}
		w["outputs"] = out
	}
	if j.Warmup > 0 {
		w["warmup"] = j.Warmup
	}
	if j.OptimizedModel != "" {
		w["optimized_model"] = nodeproto.Abs(j.OptimizedModel)
	}
	b, _ := json.Marshal(w)
	if _, err := r.stdin.Write(append(b, '\n')); err != nil {
		return Result{}, fmt.Errorf("ort: job %s: write to node: %v%s", j.Model, err, r.logs())
	}
	id := r.next
	r.next++
	resp, err := r.read()
	if err != nil {
		return Result{}, fmt.Errorf("ort: job %s: %w", j.Model, err)
	}
	if resp.Job == nil || *resp.Job != id {
		return Result{}, fmt.Errorf("ort: job %s: node answered out of order (%s)", j.Model, mustJSON(resp))
	}
	if !resp.OK {
		return Result{}, fmt.Errorf("ort: %s", resp.Error)
	}
	return Result{Inputs: resp.Inputs, Outputs: resp.Outputs, LoadMs: resp.LoadMs, Samples: resp.Samples,
		MsMin: resp.MsMin, MsMedian: resp.MsMedian, MsMean: resp.MsMean}, nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Close ends the node process.
func (r *Runner) Close() error {
	r.stdin.Close()
	err := r.cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	return err
}

func (r *Runner) logs() string { return nodeproto.Logs(r.stderr, r.lines.Other) }

// Run runs jobs in one runner, in order. A failed job's error is in errs[i];
// err is for what stops the whole run (node or the package missing).
func Run(ctx context.Context, jobs []Job) (results []Result, errs []error, err error) {
	r, err := Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	results = make([]Result, len(jobs))
	errs = make([]error, len(jobs))
	for i, j := range jobs {
		results[i], errs[i] = r.Do(j)
	}
	return results, errs, nil
}

// Bench times model on the given .npy inputs at threads intra-op threads:
// warmup untimed runs, then iters timed ones.
func (r *Runner) Bench(model string, inputs []string, threads, warmup, iters int) (Result, error) {
	if iters < 1 {
		return Result{}, fmt.Errorf("ort: bench %s: iters %d, want at least 1", model, iters)
	}
	return r.Do(Job{Model: model, Inputs: inputs, Threads: threads, Warmup: warmup, Iters: iters})
}
