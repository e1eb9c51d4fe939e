package armestimate

import (
	"bufio"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// A trace is what one inference executed, per operator: how many times
// each basic block (a qemu translation block, named by its first
// instruction's address) ran.
type trace struct {
	ops    []opTrace           // the last inference's operators, in order
	blocks map[uint64][]uint64 // block start -> its instructions' addresses
	syms   []symbol
}

type opTrace struct {
	eval   string           // the interpreter kernel that ran it, e.g. fastConvKernel
	counts map[uint64]int64 // block start -> executions
}

type symbol struct {
	name       string
	start, end uint64
}

// Packages whose code is traced: the interpreter, the kernels, the
// reference kernels some operators run, and the memory moves they call.
var tracedPrefixes = []string{
	"github.com/shortcut-edge/shortcut/resnet/interp.",
	"github.com/shortcut-edge/shortcut/resnet/internal/fast.",
	"github.com/shortcut-edge/shortcut/resnet/internal/ref.",
	"runtime.memmove",
	"runtime.memclrNoHeapPointers",
}

// traced reports whether a function's executions are logged. Preparation
// (weight packing, table building) runs before the first inference and is
// left out to keep the log small.
func traced(name string) bool {
	for _, p := range tracedPrefixes {
		if strings.HasPrefix(name, p) {
			rest := name[len(p):]
			return !strings.Contains(rest, "New") && !strings.Contains(rest, "prepare") &&
				!strings.Contains(rest, "Prepare") && !strings.Contains(rest, "pack")
		}
	}
	return false
}

func textSymbols(binary string) ([]symbol, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	all, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", binary, err)
	}
	var out []symbol
	for _, s := range all {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			out = append(out, symbol{s.Name, s.Value, s.Value + s.Size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out, nil
}

func symbolAt(syms []symbol, pc uint64) *symbol {
	i := sort.Search(len(syms), func(i int) bool { return syms[i].end > pc })
	if i < len(syms) && syms[i].start <= pc {
		return &syms[i]
	}
	return nil
}

// Trace modes: which code qemu logs block by block.
const (
	traceAll     = iota // everything traced()
	traceOutside        // everything but the micro-kernels' bodies (their first block counts calls)
	traceKernels        // only the micro-kernels (and the eval entries that separate operators)
)

// microKernel reports whether a symbol is one of the generated
// convolution micro-kernels, whose blocks per call depend only on the
// layer's filter taps and channels, not on its image size.
func microKernel(name string) bool {
	const p = "github.com/shortcut-edge/shortcut/resnet/internal/fast.tile"
	return strings.HasPrefix(name, p) && strings.HasSuffix(name, ".abi0")
}

// runTrace runs the probe under qemu-user with the execution log of the
// traced functions (mode) streamed through a FIFO, and keeps the operators
// of the last of the probe's two inferences (the first one pays one-time
// costs such as stack growth).
func runTrace(ctx context.Context, t *tools, probe, model, kernels, cpu string, nops int, dir string, mode int) (*trace, error) {
	syms, err := textSymbols(probe)
	if err != nil {
		return nil, err
	}
	evals := map[uint64]symbol{}
	for _, s := range syms {
		const p = "github.com/shortcut-edge/shortcut/resnet/interp.(*"
		if strings.HasPrefix(s.name, p) && strings.HasSuffix(s.name, ").eval") {
			evals[s.start] = symbol{strings.TrimSuffix(strings.TrimPrefix(s.name, p), ").eval"), s.start, s.end}
		}
	}
	if len(evals) == 0 {
		return nil, fmt.Errorf("%s: no interpreter eval methods among its symbols", probe)
	}
	// whole: the function is logged block by block; entry: only its first
	// block (qemu filters on a block's first address).
	whole := func(s symbol) bool {
		if s.name == "github.com/shortcut-edge/shortcut/resnet/interp.(*Interpreter).Invoke" {
			return true // its loop runs between operators: separates two alike
		}
		switch mode {
		case traceOutside:
			return traced(s.name) && !microKernel(s.name)
		case traceKernels:
			return microKernel(s.name)
		}
		return traced(s.name)
	}
	entry := func(s symbol) bool {
		_, ev := evals[s.start]
		return ev || (mode == traceOutside && microKernel(s.name))
	}
	var ranges []string
	for i := 0; i < len(syms); i++ {
		s := syms[i]
		if !whole(s) {
			if entry(s) {
				ranges = append(ranges, fmt.Sprintf("0x%x..0x%x", s.start, s.start))
			}
			continue
		}
		// Merge neighbours into one range: qemu checks the list per block.
		start, end := s.start, s.end
		for i+1 < len(syms) && whole(syms[i+1]) && syms[i+1].start-end < 64 {
			i++
			end = syms[i].end
		}
		ranges = append(ranges, fmt.Sprintf("0x%x..0x%x", start, end-1))
	}
	fifo := filepath.Join(dir, fmt.Sprintf("qemu-%s-%d.log", kernels, mode))
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo %s: %w", fifo, err)
	}
	defer os.Remove(fifo)
	cmd := exec.CommandContext(ctx, t.qemu, "-cpu", cpu, "-d", "in_asm,exec,nochain",
		"-dfilter", strings.Join(ranges, ","), "-D", fifo,
		probe, "-model", model, "-kernels", kernels, "-runs", "2")
	// No asynchronous preemption: its signals split blocks mid-way.
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", t.qemu, err)
	}
	f, err := os.Open(fifo) // blocks until qemu opens the log
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	tr, perr := parseLog(f, evals)
	f.Close()
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("probe under %s -cpu %s: %w\n%s", t.qemu, cpu, err, stderr.String())
	}
	if perr != nil {
		return nil, perr
	}
	if len(tr.ops) < 2*nops {
		return nil, fmt.Errorf("probe: saw %d operator evaluations, want %d (two inferences of %d operators)", len(tr.ops), 2*nops, nops)
	}
	tr.ops = tr.ops[len(tr.ops)-nops:]
	tr.syms = syms
	return tr, nil
}

// parseLog reads qemu's -d in_asm,exec log: "IN:" blocks list a
// translation block's instructions ("0x0011bb70:  f9400b90  ldr ..."),
// "Trace N: host [flags/pc/...]" lines say one ran.
//
// An operator starts where an eval method's first block runs, unless the
// block before it was that method's own (its stack check called
// morestack, which then restarted the method).
func parseLog(r io.Reader, evals map[uint64]symbol) (*trace, error) {
	tr := &trace{blocks: map[uint64][]uint64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var cur []uint64
	var op *opTrace
	var last uint64
	flush := func() {
		if len(cur) > 0 {
			tr.blocks[cur[0]] = cur
			cur = nil
		}
	}
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) > 6 && string(line[:6]) == "Trace ":
			flush()
			i := 0
			for i < len(line) && line[i] != '[' {
				i++
			}
			for i < len(line) && line[i] != '/' {
				i++
			}
			i++
			var pc uint64
			for ; i < len(line) && line[i] != '/'; i++ {
				pc = pc<<4 | uint64(hexVal(line[i]))
			}
			if e, ok := evals[pc]; ok && !(last >= e.start && last < e.end) {
				tr.ops = append(tr.ops, opTrace{eval: e.name, counts: map[uint64]int64{}})
				op = &tr.ops[len(tr.ops)-1]
			}
			last = pc
			if op != nil {
				op.counts[pc]++
			}
		case len(line) > 2 && line[0] == '0' && line[1] == 'x':
			colon := strings.IndexByte(string(line[:min(len(line), 24)]), ':')
			if colon < 0 {
				continue
			}
			a, err := strconv.ParseUint(string(line[2:colon]), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("qemu log: %q: %w", line, err)
			}
			cur = append(cur, a)
		default:
			flush()
		}
	}
	flush()
	return tr, sc.Err()
}

func hexVal(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// merge returns outside's counts with the micro-kernels' blocks taken from
// kernels (a trace of the same operators on a smaller image) scaled, per
// kernel function, by the calls each operator makes of that function in
// outside: a micro-kernel call runs the same blocks whatever the image
// size. (Per function, not per operator: an operator whose last tile runs
// a narrower kernel calls the two in other proportions at each size.)
func merge(outside, kernels *trace) (*trace, error) {
	if len(outside.ops) != len(kernels.ops) {
		return nil, fmt.Errorf("the two traces have %d and %d operators", len(outside.ops), len(kernels.ops))
	}
	calls := func(tr *trace, o opTrace) map[string]int64 {
		n := map[string]int64{}
		for pc, c := range o.counts {
			if s := symbolAt(tr.syms, pc); s != nil && s.start == pc && microKernel(s.name) {
				n[s.name] += c
			}
		}
		return n
	}
	out := &trace{blocks: map[uint64][]uint64{}, syms: outside.syms}
	for pc, b := range outside.blocks {
		out.blocks[pc] = b
	}
	for pc, b := range kernels.blocks {
		out.blocks[pc] = b
	}
	for i, a := range outside.ops {
		k := kernels.ops[i]
		if a.eval != k.eval {
			return nil, fmt.Errorf("operator %d is %s in one trace and %s in the other", i, a.eval, k.eval)
		}
		o := opTrace{eval: a.eval, counts: map[uint64]int64{}}
		for pc, c := range a.counts {
			if s := symbolAt(outside.syms, pc); s != nil && microKernel(s.name) {
				continue
			}
			o.counts[pc] = c
		}
		ca, ck := calls(outside, a), calls(kernels, k)
		for name, n := range ca {
			if ck[name] == 0 {
				return nil, fmt.Errorf("operator %d (%s): %d calls of %s at full size, none on the small image", i, a.eval, n, name)
			}
		}
		for pc, c := range k.counts {
			s := symbolAt(kernels.syms, pc)
			if s == nil || !microKernel(s.name) {
				continue
			}
			// Every call runs the same blocks; a signal that lands in a
			// block splits it, so the division need not be exact.
			n := ck[s.name]
			o.counts[pc] += (c*ca[s.name] + n/2) / n
		}
		out.ops = append(out.ops, o)
	}
	return out, nil
}
