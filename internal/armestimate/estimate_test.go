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
