// Package witness runs .tflite models through a real TFLite, so that tests and
// benchmarks can check Shortcut's own runtime against it.
//
// The real TFLite is one of two WebAssembly builds run under Node.js by
// tools/tflite-node/run.mjs: LiteRT.js (@litertjs/core, the newer build,
// float or uint8/int32 model inputs and outputs only) or tfjs-tflite
// (@tensorflow/tfjs-tflite, which also takes int8 inputs and outputs). Both
// hand the model to XNNPACK. Tensors travel as .npy files: the caller writes
// the inputs, the runner writes every output with the dtype and shape the
// model declares.
//
// One node process loads the WASM engine once and runs many jobs; Run starts
// one process per (engine, threads) pair in the job list.
//
// WASM cannot use AVX-512 or other wide native instructions, so native TFLite
// on the same CPU would be faster than the timings measured here: say so
// wherever they are compared with Shortcut's runtime.
package witness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shortcut-edge/shortcut/internal/nodeproto"
	"github.com/shortcut-edge/shortcut/internal/repo"
)

// Engine names a real TFLite build.
type Engine string

const (
	// LiteRT is LiteRT.js 2.5.3. It refuses models whose inputs or outputs
	// are int8 ("Element type INT8 is not supported"): give such models float
	// inputs and outputs with QUANTIZE/DEQUANTIZE inside, or use TFJS.
	LiteRT Engine = "litert"
	// TFJS is tfjs-tflite 0.0.1-alpha.10 (TFLite Web API), which handles int8
	// inputs and outputs.
	TFJS Engine = "tfjs"
)

// Job is one model run.
type Job struct {
	// Model is the .tflite file.
	Model string
	// Inputs are .npy files in the order of the model's inputs, each with the
	// dtype and shape of its input tensor.
	Inputs []string
	// Outputs are where to write the model's outputs as .npy, in the order of
	// the model's outputs. An empty path, or fewer paths than outputs, skips
	// those outputs.
	Outputs []string
	// OutputDir, instead of Outputs, has every output i written to
	// OutputDir/output_<i>.npy.
	OutputDir string
	// Engine picks the TFLite build; empty means LiteRT.
	Engine Engine
	// Threads is the XNNPACK thread count; 0 means 1.
	Threads int
	// Iters > 0 times the model: warm-up runs, then Iters timed runs.
	Iters int
	// Warmup is the number of untimed runs before timing; 0 means at least
	// 2 runs and 200 ms (V8 swaps in optimized WASM code in the background).
	Warmup int
}

// Tensor describes one model input or output as the engine sees it.
type Tensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"` // float32, int32, int8 or uint8
	Shape []int  `json:"shape"`
}

// Result is the outcome of one Job.
type Result struct {
	// Err is set when this job failed (the model did not load, an input
	// did not match, ...); the other jobs still ran.
	Err     error
	Inputs  []Tensor
	Outputs []Tensor
	// LoadMs is the time to load and compile the model (XNNPACK delegation
	// included).
	LoadMs float64
	// MsPerInference and MsMin are the mean and fastest time of one
	// inference over Iters runs; zero when Iters was 0.
	MsPerInference float64
	MsMin          float64
	Iters          int
	// Engine start-up of the node process that ran this job.
	Start Start
}

// Start describes the start-up of one node process.
type Start struct {
	Engine  Engine
	Threads int
	// Build is the WASM file the engine loaded.
	Build string
	// StartMs is the time from node's first line of our script to the
	// engine being ready (WASM compiled and instantiated, workers started);
	// node's own start (~40 ms) comes before it.
	StartMs float64
	Node    string
}

// RootEnv overrides where the repository root is looked for.
const RootEnv = repo.RootEnv

// NodeEnv overrides which node binary is run.
const NodeEnv = "SHORTCUT_NODE"

const runnerDir = "tools/tflite-node"

const setupHint = "run `make setup` or `cd tools/tflite-node && ./setup.sh`"

type install struct {
	node      string
	nodeMajor int
	dir       string // tools/tflite-node
}

// Available reports whether the witness can run: node 20 or newer is found
// and tools/tflite-node has its packages installed. The error says what is
// missing and what to do.
func Available() error {
	_, err := find()
	return err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func find() (install, error) {
	dir, err := runnerPath()
	if err != nil {
		return install{}, err
	}
	node := os.Getenv(NodeEnv)
	if local := filepath.Join(dir, ".node", "bin", "node"); node == "" && fileExists(local) {
		// setup.sh installed Node.js 20 from the npm registry because the
		// system's node is missing or older (Debian 12 ships 18).
		node = local
	}
	if node == "" {
		node, err = exec.LookPath("node")
		if err != nil {
			return install{}, fmt.Errorf("witness: node (Node.js 20 or newer) is not on PATH: %s (it installs Node.js 20 beside the runner), or set %s to a node's path", setupHint, NodeEnv)
		}
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return install{}, fmt.Errorf("witness: %s --version: %v", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if err != nil || major < 20 {
		return install{}, fmt.Errorf("witness: node %s at %s is too old or unreadable; Node.js 20 or newer is needed: %s (it installs Node.js 20 beside the runner when the system's is older), or set %s to a newer node", version, node, setupHint, NodeEnv)
	}
	for _, pkg := range []string{"@litertjs/core", "@tensorflow/tfjs-tflite", "@tensorflow/tfjs-core"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			return install{}, fmt.Errorf("witness: %s is not installed in %s/node_modules: %s", pkg, dir, setupHint)
		}
	}
	if stamp, err := os.ReadFile(filepath.Join(dir, "node_modules", ".shortcut-lock.sha256")); err == nil {
		lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
		if err != nil {
			return install{}, fmt.Errorf("witness: %v", err)
		}
		sum := sha256.Sum256(lock)
		if strings.TrimSpace(string(stamp)) != hex.EncodeToString(sum[:]) {
			return install{}, fmt.Errorf("witness: %s/node_modules is older than package-lock.json: %s", dir, setupHint)
		}
	}
	return install{node: node, nodeMajor: major, dir: dir}, nil
}

// runnerPath finds tools/tflite-node: under $SHORTCUT_ROOT, else in a parent
// of the working directory, else in a parent of this source file.
func runnerPath() (string, error) {
	dir, err := repo.Find(runnerDir + "/run.mjs")
	if err != nil {
		return "", fmt.Errorf("witness: %w", err)
	}
	return dir, nil
}

type groupKey struct {
	engine  Engine
	threads int
}

// Run runs the jobs and returns one Result per job, in order. Jobs with the
// same engine and thread count share one node process; the processes run one
// after another. A failed job has its Result.Err set and does not stop the
// others. The returned error is for what stops a whole process: node or the
// packages are missing, the engine did not start, node crashed, or ctx ended.
func Run(ctx context.Context, jobs []Job) ([]Result, error) {
	if len(jobs) == 0 {
		return nil, nil
	}
	results := make([]Result, len(jobs))
	var order []groupKey
	groups := map[groupKey][]int{}
	for i, j := range jobs {
		k := groupKey{j.Engine, j.Threads}
		if k.engine == "" {
			k.engine = LiteRT
		}
		if k.threads == 0 {
			k.threads = 1
		}
		if k.engine != LiteRT && k.engine != TFJS {
			return nil, fmt.Errorf("witness: job %d (%s): engine %q is not %q or %q", i, j.Model, j.Engine, LiteRT, TFJS)
		}
		if k.threads < 1 || k.threads > 64 {
			return nil, fmt.Errorf("witness: job %d (%s): threads %d is not in 1..64", i, j.Model, j.Threads)
		}
		if j.Iters < 0 || j.Warmup < 0 {
			return nil, fmt.Errorf("witness: job %d (%s): iters %d or warmup %d is negative", i, j.Model, j.Iters, j.Warmup)
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	inst, err := find()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, k := range order {
		idx := groups[k]
		sub := make([]Job, len(idx))
		for n, i := range idx {
			sub[n] = jobs[i]
		}
		res, err := inst.run(ctx, k, sub)
		for n, i := range idx {
			results[i] = res[n]
		}
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
	}
	for i := range results {
		if results[i].Err == nil && results[i].Start.Engine == "" {
			results[i].Err = errors.New("witness: not run: an earlier node process failed")
		}
	}
	return results, errors.Join(errs...)
}

type wireJob struct {
	Model     string   `json:"model"`
	Inputs    []string `json:"inputs"`
	Outputs   []string `json:"outputs"`
	OutputDir string   `json:"output_dir,omitempty"`
	Iters     int      `json:"iters,omitempty"`
	Warmup    int      `json:"warmup,omitempty"`
}

type wireLine struct {
	Fatal   *string  `json:"fatal"`
	Ready   bool     `json:"ready"`
	Build   string   `json:"build"`
	LoadMs  float64  `json:"load_ms"`
	Node    string   `json:"node"`
	Job     *int     `json:"job"`
	OK      bool     `json:"ok"`
	Error   string   `json:"error"`
	Inputs  []Tensor `json:"inputs"`
	Outputs []Tensor `json:"outputs"`
	MsMean  float64  `json:"ms_mean"`
	MsMin   float64  `json:"ms_min"`
	Iters   int      `json:"iters"`
}

const protocolPrefix = "@@witness "

func (inst install) run(ctx context.Context, k groupKey, jobs []Job) ([]Result, error) {
	results := make([]Result, len(jobs))
	var stdin bytes.Buffer
	enc := json.NewEncoder(&stdin)
	for _, j := range jobs {
		w := wireJob{Model: nodeproto.Abs(j.Model), Inputs: []string{}, Outputs: []string{}, OutputDir: nodeproto.Abs(j.OutputDir), Iters: j.Iters, Warmup: j.Warmup}
		for _, p := range j.Inputs {
			w.Inputs = append(w.Inputs, nodeproto.Abs(p))
		}
		for _, p := range j.Outputs {
			w.Outputs = append(w.Outputs, nodeproto.Abs(p))
		}
		if err := enc.Encode(w); err != nil {
			return results, fmt.Errorf("witness: encode job %s: %w", j.Model, err)
		}
	}

	var args []string
	if k.engine == LiteRT && inst.nodeMajor < 22 {
		// LiteRT.js's SIMD and threaded builds use relaxed SIMD, which
		// Node 20's V8 keeps behind a flag.
		args = append(args, "--experimental-wasm-relaxed-simd")
	}
	args = append(args, filepath.Join(inst.dir, "run.mjs"), "--engine", string(k.engine), "--threads", strconv.Itoa(k.threads))
	cmd := exec.CommandContext(ctx, inst.node, args...)
	cmd.Stdin = &stdin
	stderr := &nodeproto.Tail{}
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return results, fmt.Errorf("witness: %v", err)
	}
	if err := cmd.Start(); err != nil {
		return results, fmt.Errorf("witness: start %s: %w", inst.node, err)
	}

	var start Start
	var fatal string
	seen := make([]bool, len(jobs))
	lines := nodeproto.NewLines(stdout, protocolPrefix)
	for {
		var w wireLine
		if ok, _ := lines.Next(&w); !ok {
			break
		}
		switch {
		case w.Fatal != nil:
			fatal = *w.Fatal
		case w.Ready:
			start = Start{Engine: k.engine, Threads: k.threads, Build: w.Build, StartMs: w.LoadMs, Node: w.Node}
		case w.Job != nil && *w.Job >= 0 && *w.Job < len(jobs):
			n := *w.Job
			seen[n] = true
			r := Result{Inputs: w.Inputs, Outputs: w.Outputs, LoadMs: w.LoadMs, MsPerInference: w.MsMean, MsMin: w.MsMin, Iters: w.Iters, Start: start}
			if !w.OK {
				r.Err = fmt.Errorf("witness %s/%d threads: %s", k.engine, k.threads, w.Error)
			}
			results[n] = r
		}
	}
	waitErr := cmd.Wait()

	var runErr error
	switch {
	case fatal != "":
		runErr = fmt.Errorf("witness: %s engine did not start: %s%s", k.engine, fatal, nodeproto.Logs(stderr, lines.Other))
	case ctx.Err() != nil:
		runErr = fmt.Errorf("witness: %s/%d threads: stopped: %w", k.engine, k.threads, ctx.Err())
	case waitErr != nil:
		runErr = fmt.Errorf("witness: %s/%d threads: node failed: %v%s", k.engine, k.threads, waitErr, nodeproto.Logs(stderr, lines.Other))
	}
	for n := range jobs {
		if !seen[n] {
			results[n].Start = start
			if runErr != nil {
				results[n].Err = fmt.Errorf("job %s not run: %w", jobs[n].Model, runErr)
			} else {
				results[n].Err = fmt.Errorf("witness %s/%d threads: job %s: node gave no result%s", k.engine, k.threads, jobs[n].Model, nodeproto.Logs(stderr, lines.Other))
			}
		}
	}
	return results, runErr
}
