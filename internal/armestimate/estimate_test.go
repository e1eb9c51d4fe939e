package armestimate

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestParseLogSplitsOperatorsAtEvalEntries(t *testing.T) {
	log := `----------------
IN: eval
0x00001000:  f9400b90  ldr      x16, [x28, #0x10]
0x00001004:  eb3063ff  cmp      sp, x16

Trace 0: 0x7f [0000000001009b31/0000000000001000/00000001/00080200] eval
----------------
IN: loop
0x00002000:  9b010822  madd     x2, x1, x1, x2
0x00002004:  54ffffac  b.gt     #0x2000

Trace 0: 0x7f [0000000001009b31/0000000000002000/00000001/00080200] loop
Trace 0: 0x7f [0000000001009b31/0000000000002000/00000001/00080200] loop
Trace 0: 0x7f [0000000001009b31/0000000000001000/00000001/00080200] eval
Trace 0: 0x7f [0000000001009b31/0000000000002000/00000001/00080200] loop
`
	tr, err := parseLog(strings.NewReader(log), map[uint64]symbol{0x1000: {"convKernel", 0x1000, 0x1100}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.ops) != 2 || tr.ops[0].counts[0x2000] != 2 || tr.ops[1].counts[0x2000] != 1 || tr.ops[0].counts[0x1000] != 1 {
		t.Fatalf("ops = %+v", tr.ops)
	}
	if got := len(tr.blocks[0x2000]); got != 2 {
		t.Fatalf("block 0x2000 has %d instructions, want 2", got)
	}
}

// TestEstimatePrintsFourPositiveFigures runs the whole estimate (qemu,
// llvm-objdump, llvm-mca) on the demo's ResNet-8 and checks the lines
// outside checks read.
func TestEstimatePrintsFourPositiveFigures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs qemu and llvm-mca (about a minute)")
	}
	var out bytes.Buffer
	err := Run(context.Background(), Config{Model: "../../configs/demo/fashion-resnet8-int8.tflite"}, &out)
	var missing *MissingToolsError
	if errors.As(err, &missing) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^estimate: board=(pi[45]) threads=([14]) ms=([0-9.]+)$`)
	m := re.FindAllStringSubmatch(out.String(), -1)
	want := []string{"pi5 1", "pi5 4", "pi4 1", "pi4 4"}
	if len(m) != len(want) {
		t.Fatalf("%d estimate lines, want %d:\n%s", len(m), len(want), out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, g := range m {
		if g[1]+" "+g[2] != want[i] {
			t.Errorf("line %d is for %s %s, want %s", i, g[1], g[2], want[i])
		}
		if v, err := strconv.ParseFloat(g[3], 64); err != nil || v <= 0 {
			t.Errorf("%s: figure %q is not positive", g[0], g[3])
		}
		if lines[len(lines)-len(want)+i] != g[0] {
			t.Errorf("the estimate lines are not the last lines of the output:\n%s", out.String())
		}
	}
	for _, s := range []string{"ncnn", "GHz", "llvm-mca", "Threads:", "fastConv"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

// TestMergeScalesEachKernelByItsOwnCalls: an operator calls a four-pixel
// kernel (3 calls at full size, 1 on the small image) and a one-pixel one
// (1 call at each size): each kernel's blocks scale by its own ratio, not
// by the operator's total calls (4 / 2), which would price the one-pixel
// kernel twice and the four-pixel one at two thirds.
func TestMergeScalesEachKernelByItsOwnCalls(t *testing.T) {
	const k4, k1, eval = 0x1000, 0x2000, 0x3000
	syms := []symbol{
		{"github.com/shortcut-edge/shortcut/resnet/internal/fast.tileNEONDot.abi0", k4, k4 + 0x100},
		{"github.com/shortcut-edge/shortcut/resnet/internal/fast.tileNEONDot1.abi0", k1, k1 + 0x100},
		{"github.com/shortcut-edge/shortcut/resnet/interp.(*fastConvKernel).eval", eval, eval + 0x100},
	}
	outside := &trace{syms: syms, blocks: map[uint64][]uint64{},
		ops: []opTrace{{eval: "fastConvKernel", counts: map[uint64]int64{eval: 1, k4: 3, k1: 1}}}}
	small := &trace{syms: syms, blocks: map[uint64][]uint64{},
		ops: []opTrace{{eval: "fastConvKernel", counts: map[uint64]int64{eval: 1, k4: 1, k4 + 0x10: 10, k1: 1, k1 + 0x10: 5}}}}
	m, err := merge(outside, small)
	if err != nil {
		t.Fatal(err)
	}
	got := m.ops[0].counts
	want := map[uint64]int64{eval: 1, k4: 3, k4 + 0x10: 30, k1: 1, k1 + 0x10: 5}
	for pc, n := range want {
		if got[pc] != n {
			t.Errorf("block 0x%x ran %d times, want %d (all: %v)", pc, got[pc], n, got)
		}
	}
	// A kernel the full size calls and the small image never does cannot
	// be priced: an error, not a guess.
	small.ops[0].counts = map[uint64]int64{eval: 1, k4: 1, k4 + 0x10: 10}
	if _, err := merge(outside, small); err == nil || !strings.Contains(err.Error(), "tileNEONDot1") {
		t.Errorf("merge without the small image's one-pixel calls: err = %v, want one naming tileNEONDot1", err)
	}
}

// A fused ADD's traffic goes to the convolution before it and a fused PAD's
// to the pooling after it, less the tensor between them; the fused
// operators keep none, nor a parallel phase.
func TestFuseMovesTrafficToTheNeighbourThatDoesTheWork(t *testing.T) {
	mk := func(name string, ins, outs map[int]int64, phases int) op {
		x := op{name: name, ins: ins, outs: outs, units: 4, phases: phases}
		for _, n := range ins {
			x.bytes += n
		}
		for _, n := range outs {
			x.bytes += n
		}
		return x
	}
	ops := []op{
		mk("PAD", map[int]int64{0: 100}, map[int]int64{1: 144}, 1),
		mk("MAX_POOL_2D", map[int]int64{1: 144}, map[int]int64{2: 25}, 1),
		mk("CONV_2D", map[int]int64{2: 25, 10: 300}, map[int]int64{3: 50}, 2), // 10: weights
		mk("ADD", map[int]int64{2: 25, 3: 50}, map[int]int64{4: 50}, 1),
		mk("SOFTMAX", map[int]int64{4: 50}, map[int]int64{5: 50}, 0),
	}
	evals := []string{fusedEval, "fastMaxPoolKernel", "fastConvAddKernel", fusedEval, "softmaxKernel"}
	tr := &trace{}
	for _, e := range evals {
		tr.ops = append(tr.ops, opTrace{eval: e})
	}
	got, err := fuse(ops, tr)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 100 + 25, 25 + 300 + 25 + 50, 0, 100}
	for i := range want {
		if got[i].bytes != want[i] {
			t.Errorf("operator %d (%s): %d bytes, want %d", i, got[i].name, got[i].bytes, want[i])
		}
	}
	if got[0].phases != 0 || got[3].phases != 0 || got[2].phases != 2 {
		t.Errorf("phases %d, %d, %d; want the fused operators' 0 and the convolution's 2", got[0].phases, got[3].phases, got[2].phases)
	}
	if ops[3].bytes != 125 {
		t.Errorf("fuse changed its input: the ADD's bytes are now %d", ops[3].bytes)
	}
	lone := []op{ops[2], mk("SOFTMAX", map[int]int64{7: 50}, map[int]int64{8: 50}, 0)}
	if _, err := fuse(lone, &trace{ops: []opTrace{{eval: "fastConvKernel"}, {eval: fusedEval}}}); err == nil {
		t.Error("a fused operator sharing no tensor with a neighbour accepted")
	}
}
