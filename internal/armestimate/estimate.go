// Package armestimate estimates how long an int8 model takes on the
// Raspberry Pi 5 and 4 without either board: it runs our interpreter's real
// arm64 code (the generated NEON / NEON SDOT micro-kernels and the compiled
// Go around them) once under qemu-user with qemu's execution log on, which
// gives every basic block's execution count per operator, and prices each
// block with LLVM's pipeline model of the board's core (llvm-mca): the
// Neoverse-N1 model for the Pi 5's Cortex-A76 (the same design), the
// Cortex-A57 model LLVM falls back to for the Pi 4's Cortex-A72.
//
// The data flow: a model (built in memory or read from a file) -> the
// probe (internal/cmd/armestimate/probe, cross-compiled for arm64) under
// qemu -> per-operator block counts -> llvm-objdump text of those blocks ->
// llvm-mca cycles per block -> per-operator cycles -> a thread and memory
// model -> the table and the "estimate:" lines.
package armestimate

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/shortcut-edge/shortcut/quant"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/build"
)

// Board is one Raspberry Pi as the estimate models it.
type Board struct {
	Name    string  // pi5, pi4
	Core    string  // what the board has
	MCACPU  string  // llvm-mca -mcpu (the proxy model)
	Proxy   string  // which LLVM scheduling model that is
	QEMUCPU string  // qemu -cpu: decides which kernels the probe may run
	Kernels string  // interp.Options.Kernels the board's auto choice gives
	GHz     float64 // core clock
	Cores   int
	DRAMGBs float64 // sustained DRAM bandwidth assumed, GB/s
	NCNN    map[int]float64
}

// Boards are the Raspberry Pi 5 and 4 with ncnn's published int8
// ResNet-50 times (benchncnn, 1 and 4 threads).
var Boards = []Board{
	{Name: "pi5", Core: "Cortex-A76", MCACPU: "neoverse-n1", Proxy: "LLVM 19 Neoverse-N1 model (the A76's server twin)",
		QEMUCPU: "max", Kernels: "neondot", GHz: 2.4, Cores: 4, DRAMGBs: 8,
		NCNN: map[int]float64{1: 80.2, 4: 40.8}},
	{Name: "pi4", Core: "Cortex-A72", MCACPU: "cortex-a72", Proxy: "LLVM 19 Cortex-A57 model (LLVM has none for the A72 and falls back to it)",
		QEMUCPU: "cortex-a72", Kernels: "neon", GHz: 1.5, Cores: 4, DRAMGBs: 4,
		NCNN: map[int]float64{1: 424, 4: 196.7}},
}

// Threads are the thread counts estimated.
var Threads = []int{1, 4}

// syncCycles is what one parallel phase (an operator's split over the
// runner's threads) costs in hand-over: the caller wakes spinning helpers
// through one cache line each and waits for the last. An assumption, not
// a measurement.
const syncCycles = 2000

// Config says what to estimate.
type Config struct {
	Model        string // a .tflite file; empty: build Depth/Size
	Depth, Size  int    // ResNet depth and input size when Model is empty
	Classes      int
	Work         string // scratch folder; empty: a temporary one
	BoardsFilter []string
}

type tools struct{ qemu, mca, objdump, gobin string }

func findTools() (*tools, error) {
	look := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	t := &tools{
		qemu:    look("qemu-aarch64-static", "qemu-aarch64"),
		mca:     look("llvm-mca-19", "/usr/lib/llvm-19/bin/llvm-mca"),
		objdump: look("llvm-objdump-19", "/usr/lib/llvm-19/bin/llvm-objdump"),
		gobin:   filepath.Join(runtime.GOROOT(), "bin", "go"),
	}
	var missing []string
	if t.qemu == "" {
		missing = append(missing, "qemu-aarch64-static (apt-get install qemu-user-static)")
	}
	if t.mca == "" || t.objdump == "" {
		missing = append(missing, "llvm-mca-19 and llvm-objdump-19 (apt-get install llvm-19)")
	}
	if len(missing) > 0 {
		return nil, &MissingToolsError{missing}
	}
	return t, nil
}

// MissingToolsError says which programs the estimate needs and lacks.
type MissingToolsError struct{ Missing []string }

func (e *MissingToolsError) Error() string {
	return "armestimate: missing " + strings.Join(e.Missing, ", ")
}

// op is one operator of the model as the thread and memory model sees it.
type op struct {
	name   string
	shape  string
	macs   int64
	units  int // parallel work units of its runner job
	phases int // parallel phases (runner jobs)
	bytes  int64
	// The activation tensors it reads and writes (index -> bytes), to
	// move a fused operator's traffic to its neighbour (fuse).
	ins, outs map[int]int64
}

// Result is one board's estimate.
type Result struct {
	Board   Board
	MS      map[int]float64 // threads -> ms
	perOp   []opCost
	funcs   map[string]*funcCost
	asmIns  int64
	goIns   int64
	ncycles float64
}

type opCost struct {
	cycles      float64
	asmIns, goI int64
	eval        string
	ms          map[int]float64
}

type funcCost struct {
	ins    int64
	cycles float64
}

// Run estimates cfg's model on every board and writes the report to w.
func Run(ctx context.Context, cfg Config, w io.Writer) error {
	t, err := findTools()
	if err != nil {
		return err
	}
	work := cfg.Work
	if work == "" {
		if work, err = os.MkdirTemp("", "armestimate-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	m, modelPath, err := loadOrBuild(cfg, cfg.Size, work)
	if err != nil {
		return err
	}
	ops := describe(m)
	probe := filepath.Join(work, "probe")
	if err := buildProbe(ctx, t, probe); err != nil {
		return err
	}
	// A built model is traced twice per board: at full size without the
	// micro-kernels' inner blocks, and at smallSize with them only (their
	// blocks per call do not depend on the image size); qemu's log of a
	// full-size kernel would be tens of millions of lines. Both with the
	// board's kernels: which kernel functions a layer calls, and how
	// often, depends on the family. A model file is traced whole.
	var smallPath string
	if cfg.Model == "" {
		if _, smallPath, err = loadOrBuild(cfg, smallSize, work); err != nil {
			return err
		}
	}
	var results []*Result
	for _, b := range Boards {
		if len(cfg.BoardsFilter) > 0 && !contains(cfg.BoardsFilter, b.Name) {
			continue
		}
		var tr *trace
		if smallPath == "" {
			tr, err = runTrace(ctx, t, probe, modelPath, b.Kernels, b.QEMUCPU, len(ops), work, traceAll)
		} else {
			var outside, k *trace
			if outside, err = runTrace(ctx, t, probe, modelPath, b.Kernels, b.QEMUCPU, len(ops), work, traceOutside); err == nil {
				if k, err = runTrace(ctx, t, probe, smallPath, b.Kernels, b.QEMUCPU, len(ops), work, traceKernels); err == nil {
					tr, err = merge(outside, k)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
		r, err := price(ctx, t, b, tr, ops, probe, work)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
		results = append(results, r)
	}
	report(w, cfg, m, ops, results)
	return nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// smallSize is the image size of the model whose micro-kernel calls are
// traced block by block. Each operator must call there every kernel
// function it calls at full size (merge prices them one by one): at 96 a
// ResNet's last stage is 3x3, two four-pixel tiles and a one-pixel one,
// as 7x7 is twelve and one at 224 (at 32 it would be the one pixel
// alone).
const smallSize = 96

func loadOrBuild(cfg Config, size int, work string) (*resnet.Model, string, error) {
	if cfg.Model != "" {
		m, err := resnet.LoadFile(cfg.Model)
		return m, cfg.Model, err
	}
	hwc := [3]int{size, size, 3}
	f, err := build.ResNet(build.Config{Depth: cfg.Depth, Input: hwc, Classes: cfg.Classes, Weights: build.RandomWeights(1)})
	if err != nil {
		return nil, "", err
	}
	// One random-normal calibration image: ranges only need to be
	// plausible, the kernels' paths do not depend on values.
	r := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, hwc[0]*hwc[1]*hwc[2])
	for i := range img {
		img[i] = float32(r.NormFloat64())
	}
	m, err := quant.Model(f, []quant.Sample{{img}}, quant.Options{})
	if err != nil {
		return nil, "", err
	}
	p := filepath.Join(work, fmt.Sprintf("resnet%d-%d-int8.tflite", cfg.Depth, size))
	return m, p, m.WriteFile(p)
}

func buildProbe(ctx context.Context, t *tools, out string) error {
	cmd := exec.CommandContext(ctx, t.gobin, "build", "-o", out, "github.com/shortcut-edge/shortcut/internal/cmd/armestimate/probe")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the arm64 probe: %w\n%s", err, b)
	}
	return nil
}

func describe(m *resnet.Model) []op {
	var out []op
	for _, o := range m.Operators {
		x := op{name: o.Op.String(), units: 1}
		var outShape []int
		if len(o.Outputs) > 0 {
			outShape = m.Tensors[o.Outputs[0]].Shape
		}
		x.shape = fmt.Sprint(outShape)
		x.ins, x.outs = map[int]int64{}, map[int]int64{}
		for k, ti := range append(append([]int{}, o.Inputs...), o.Outputs...) {
			if ti < 0 || ti >= len(m.Tensors) {
				continue
			}
			tt := &m.Tensors[ti]
			size := int64(1)
			switch tt.Type {
			case resnet.Float32, resnet.Int32:
				size = 4
			}
			n := int64(tt.NumElements()) * size
			x.bytes += n
			if k < len(o.Inputs) {
				x.ins[ti] = n
			} else {
				x.outs[ti] = n
			}
		}
		elems := 0
		if len(o.Outputs) > 0 {
			elems = m.Tensors[o.Outputs[0]].NumElements()
		}
		switch o.Op {
		case resnet.OpConv2D, resnet.OpFullyConnected:
			if len(o.Inputs) > 1 && len(outShape) > 0 {
				w := m.Tensors[o.Inputs[1]]
				outC := outShape[len(outShape)-1]
				px := elems / max(outC, 1)
				x.macs = int64(elems) * int64(w.NumElements()/max(outC, 1))
				x.units = (outC + 63) / 64 * ((px + 3) / 4)
				x.phases = 2
			}
		case resnet.OpDepthwiseConv2D:
			if len(outShape) == 4 {
				x.units = outShape[0] * outShape[1]
				x.phases = 1
			}
		case resnet.OpMaxPool2D:
			if len(outShape) == 4 {
				x.units = outShape[0] * outShape[1]
				x.phases = 1
			}
		case resnet.OpAdd:
			x.units = (elems + 16<<10 - 1) / (16 << 10)
			x.phases = 1
		}
		out = append(out, x)
	}
	return out
}

// fusedEval is the interpreter's stand-in for an operator whose work a
// neighbouring operator's kernel does (interp's fusedKernel).
const fusedEval = "fusedKernel"

// fuse moves the memory traffic of each fused operator (its eval is
// fusedEval: an ADD done in the output stage of the convolution before it,
// a PAD read through by the pooling after it) to the neighbour that does
// its work, less the tensor between the two, which is then neither written
// nor read: a convolution and its ADD move the convolution's input,
// weights, the residual and the sum; a PAD and its pooling, the unpadded
// input and the pooled output. The fused operator keeps no traffic and no
// parallel phase. Which operators fuse depends on the board's kernels, so
// it is read from each trace.
func fuse(ops []op, tr *trace) ([]op, error) {
	out := make([]op, len(ops))
	copy(out, ops)
	shared := func(from, to *op) (int64, bool) {
		for ti, n := range from.outs {
			if _, ok := to.ins[ti]; ok {
				return n, true
			}
		}
		return 0, false
	}
	for i := range out {
		if i >= len(tr.ops) || tr.ops[i].eval != fusedEval {
			continue
		}
		host := -1
		var between int64
		if i > 0 && tr.ops[i-1].eval != fusedEval {
			if n, ok := shared(&out[i-1], &out[i]); ok {
				host, between = i-1, n
			}
		}
		if host < 0 && i+1 < len(out) && tr.ops[i+1].eval != fusedEval {
			if n, ok := shared(&out[i], &out[i+1]); ok {
				host, between = i+1, n
			}
		}
		if host < 0 {
			return nil, fmt.Errorf("operator %d (%s) is fused, but shares no tensor with either neighbour", i, out[i].name)
		}
		out[host].bytes += out[i].bytes - 2*between
		out[i].bytes, out[i].units, out[i].phases = 0, 1, 0
	}
	return out, nil
}

// price turns a board's trace into cycles and milliseconds.
func price(ctx context.Context, t *tools, b Board, tr *trace, ops []op, probe, work string) (*Result, error) {
	ops, err := fuse(ops, tr)
	if err != nil {
		return nil, err
	}
	want := map[uint64]bool{}
	hot := map[uint64]bool{}
	for _, o := range tr.ops {
		for pc := range o.counts {
			hot[pc] = true
			for _, a := range tr.blocks[pc] {
				want[a] = true
			}
		}
	}
	text, err := disassemble(ctx, t, probe, want)
	if err != nil {
		return nil, err
	}
	blocks := map[uint64][]string{}
	for pc := range hot {
		addrs, ok := tr.blocks[pc]
		if !ok {
			return nil, fmt.Errorf("qemu ran a block at 0x%x it never listed", pc)
		}
		var ins []string
		for _, a := range addrs {
			if s, ok := text[a]; ok {
				ins = append(ins, s)
			}
		}
		blocks[pc] = ins
	}
	cyc, err := blockCycles(ctx, t, work, b.MCACPU, blocks)
	if err != nil {
		return nil, err
	}
	r := &Result{Board: b, MS: map[int]float64{}, funcs: map[string]*funcCost{}}
	hz := b.GHz * 1e9
	for i, o := range tr.ops {
		oc := opCost{eval: o.eval, ms: map[int]float64{}}
		for pc, n := range o.counts {
			c, ok := cyc[pc]
			if !ok {
				return nil, fmt.Errorf("llvm-mca gave no cycles for block 0x%x", pc)
			}
			ins := int64(len(tr.blocks[pc])) * n
			oc.cycles += c * float64(n)
			name := "?"
			if s := symbolAt(tr.syms, pc); s != nil {
				name = shortName(s.name)
				if strings.HasSuffix(s.name, ".abi0") || strings.HasPrefix(s.name, "runtime.mem") {
					oc.asmIns += ins
				} else {
					oc.goI += ins
				}
			} else {
				oc.goI += ins
			}
			f := r.funcs[name]
			if f == nil {
				f = &funcCost{}
				r.funcs[name] = f
			}
			f.ins += ins
			f.cycles += c * float64(n)
		}
		x := ops[i]
		mem := float64(x.bytes) / (b.DRAMGBs * 1e9)
		for _, th := range Threads {
			comp := oc.cycles
			if th > 1 && x.units > 1 {
				share := float64((x.units+th-1)/th) / float64(x.units)
				comp = comp*share + float64(x.phases*syncCycles)
			}
			oc.ms[th] = math.Max(comp/hz, mem) * 1e3
			r.MS[th] += oc.ms[th]
		}
		r.asmIns += oc.asmIns
		r.goIns += oc.goI
		r.ncycles += oc.cycles
		r.perOp = append(r.perOp, oc)
	}
	return r, nil
}

func shortName(s string) string {
	s = strings.TrimPrefix(s, "github.com/shortcut-edge/shortcut/resnet/")
	s = strings.TrimPrefix(s, "internal/")
	return strings.TrimSuffix(s, ".abi0")
}

func report(w io.Writer, cfg Config, m *resnet.Model, ops []op, rs []*Result) {
	if len(rs) == 0 {
		return
	}
	title := cfg.Model
	if title == "" {
		title = fmt.Sprintf("int8 ResNet-%d %dx%d (random weights, calibrated on one random image)", cfg.Depth, cfg.Size, cfg.Size)
	}
	fmt.Fprintf(w, "armestimate: %s, batch 1, %d operators\n\n", title, len(ops))
	fmt.Fprintf(w, "%3s %-17s %-18s %8s", "#", "operator", "output", "MMAC")
	for _, r := range rs {
		fmt.Fprintf(w, " | %-4s %-9s %7s %7s %7s %7s", r.Board.Name, "kernel", "asm Mi", "Go Mi", "1T ms", "4T ms")
	}
	fmt.Fprintln(w)
	for i, x := range ops {
		fmt.Fprintf(w, "%3d %-17s %-18s %8.1f", i, trunc(x.name, 17), trunc(x.shape, 18), float64(x.macs)/1e6)
		for _, r := range rs {
			o := r.perOp[i]
			fmt.Fprintf(w, " | %-4s %-9s %7.2f %7.2f %7.3f %7.3f", "", trunc(strings.TrimSuffix(o.eval, "Kernel"), 9),
				float64(o.asmIns)/1e6, float64(o.goI)/1e6, o.ms[1], o.ms[4])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	for _, r := range rs {
		b := r.Board
		fmt.Fprintf(w, "%s (%s, %.1f GHz, %d cores): %.1f M instructions (%.1f M in assembly: kernels, memmove; %.1f M compiled Go), %.1f M cycles on one core\n",
			b.Name, b.Core, b.GHz, b.Cores, float64(r.asmIns+r.goIns)/1e6, float64(r.asmIns)/1e6, float64(r.goIns)/1e6, r.ncycles/1e6)
		for _, th := range Threads {
			fmt.Fprintf(w, "  %d thread(s): %7.1f ms   ncnn %6.1f ms   ours/ncnn %.2f\n", th, r.MS[th], b.NCNN[th], r.MS[th]/b.NCNN[th])
		}
		{
			type kv struct {
				name string
				f    *funcCost
			}
			var l []kv
			for n, f := range r.funcs {
				l = append(l, kv{n, f})
			}
			sort.Slice(l, func(i, j int) bool { return l[i].f.cycles > l[j].f.cycles })
			fmt.Fprintf(w, "  where the cycles go (one core):\n")
			for i, e := range l {
				if i == 12 {
					break
				}
				fmt.Fprintf(w, "    %-44s %9.2f M instr %9.2f M cycles %6.2f ms %5.1f %%\n", trunc(e.name, 44), float64(e.f.ins)/1e6,
					e.f.cycles/1e6, e.f.cycles/(b.GHz*1e6), 100*e.f.cycles/r.ncycles)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Assumptions:\n")
	for _, r := range rs {
		b := r.Board
		fmt.Fprintf(w, "- %s: %s at %.1f GHz, priced with the %s (llvm-mca -mcpu=%s); kernels %q (what auto picks there), traced under qemu -cpu %s.\n",
			b.Name, b.Core, b.GHz, b.Proxy, b.MCACPU, b.Kernels, b.QEMUCPU)
	}
	fmt.Fprintf(w, "- Instruction counts are exact for this build: qemu logs every basic block of the interpreter, kernel and memmove code the last of two inferences runs (for a built model, the micro-kernels' blocks per call come from the same network at %dx%d, times the full-size calls, kernel function by kernel function, both traced with the board's kernels).\n", smallSize, smallSize)
	fmt.Fprintf(w, "- A block costs its steady-state cycles when llvm-mca repeats it 100 times: every load hits L1, branches are predicted, no overlap between neighbouring blocks is credited.\n")
	fmt.Fprintf(w, "- Memory: an operator takes at least (its inputs + weights + outputs in bytes) / DRAM bandwidth (pi5 %.0f GB/s, pi4 %.0f GB/s assumed), as if nothing stayed in cache between operators; an operator fused into a neighbour's kernel (an ADD into the convolution before it, a PAD into the pooling after it) adds its traffic to the neighbour's, less the tensor between them, which is never written.\n",
		Boards[0].DRAMGBs, Boards[1].DRAMGBs)
	fmt.Fprintf(w, "- Threads: an operator's work splits over its runner units as the runner splits them (ceil(units/threads) on the busiest thread), plus %d cycles per parallel phase for the hand-over; code outside the runner's jobs stays serial. Shared-cache and DRAM contention between cores is not modelled beyond the memory floor.\n", syncCycles)
	fmt.Fprintf(w, "- ncnn figures: benchncnn resnet50_int8 on Raspberry Pi 5 (80.2 / 40.8 ms) and Pi 4 at 1.5 GHz (424 / 196.7 ms), 1 / 4 threads.\n\n")
	for _, r := range rs {
		for _, th := range Threads {
			fmt.Fprintf(w, "estimate: board=%s threads=%d ms=%.1f\n", r.Board.Name, th, r.MS[th])
		}
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
