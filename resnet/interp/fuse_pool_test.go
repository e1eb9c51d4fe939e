package interp

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// padPoolCase is one int8 graph: input -> 1x1 max pool (so the PAD's input
// is an intermediate the memory plan may reuse) -> PAD -> MAX_POOL_2D ->
// 1x1 max pool -> output.
type padPoolCase struct {
	b, h, w, c             int
	pads                   [4][2]int
	fh, fw, sh, sw         int
	padding                resnet.Padding
	zp                     int64
	act                    resnet.Activation
	padOutIsOutput, direct bool // the PAD's output is also a graph output; the PAD reads the graph input itself
}

func (tc padPoolCase) model() *resnet.Model {
	var g graph
	q := quant(0.05, tc.zp)
	x := g.act("input", resnet.Int8, []int{tc.b, tc.h, tc.w, tc.c}, q)
	in := x
	if !tc.direct {
		in = g.act("pre", resnet.Int8, []int{tc.b, tc.h, tc.w, tc.c}, q)
		g.op(resnet.OpMaxPool2D, &resnet.Pool2DOptions{Padding: resnet.PaddingValid, StrideW: 1, StrideH: 1, FilterW: 1, FilterH: 1}, []int{x}, in)
	}
	flat := make([]int32, 0, 8)
	ps := make([]int, 4)
	for d, p := range tc.pads {
		flat = append(flat, int32(p[0]), int32(p[1]))
		ps[d] = []int{tc.b, tc.h, tc.w, tc.c}[d] + p[0] + p[1]
	}
	pt := g.constInt32("paddings", []int{4, 2}, flat)
	padded := g.act("padded", resnet.Int8, ps, q)
	g.op(resnet.OpPad, nil, []int{in, pt}, padded)
	oh := (ps[1]-tc.fh)/tc.sh + 1
	ow := (ps[2]-tc.fw)/tc.sw + 1
	if tc.padding == resnet.PaddingSame {
		oh, ow = (ps[1]+tc.sh-1)/tc.sh, (ps[2]+tc.sw-1)/tc.sw
	}
	pooled := g.act("pooled", resnet.Int8, []int{ps[0], oh, ow, ps[3]}, q)
	g.op(resnet.OpMaxPool2D, &resnet.Pool2DOptions{Padding: tc.padding, StrideW: tc.sw, StrideH: tc.sh, FilterW: tc.fw, FilterH: tc.fh, Activation: tc.act}, []int{padded}, pooled)
	out := g.act("output", resnet.Int8, []int{ps[0], oh, ow, ps[3]}, q)
	g.op(resnet.OpMaxPool2D, &resnet.Pool2DOptions{Padding: resnet.PaddingValid, StrideW: 1, StrideH: 1, FilterW: 1, FilterH: 1}, []int{pooled}, out)
	outs := []int{out}
	if tc.padOutIsOutput {
		outs = append(outs, padded)
	}
	return g.io([]int{x}, outs)
}

// fusedPads counts the PADs fused into the max pool after them, checking
// that each fusedKernel names the pool, which reads the PAD's input.
func fusedPads(t *testing.T, m *resnet.Model, it *Interpreter) int {
	t.Helper()
	n := 0
	for i, k := range it.prog.kernels {
		fk, ok := k.(*fusedKernel)
		if !ok || m.Operators[i].Op != resnet.OpPad {
			continue
		}
		n++
		mp, ok := it.prog.kernels[fk.with].(*fastMaxPoolKernel)
		if !ok || fk.with != i+1 || mp.in != m.Operators[i].Inputs[0] || mp.out != m.Operators[fk.with].Outputs[0] {
			t.Fatalf("PAD %d fused with kernel %d (%T), which is not the max pool after it reading the PAD's input", i, fk.with, it.prog.kernels[fk.with])
		}
	}
	return n
}

// invokeOutputs runs m on input and returns the bytes of every graph output.
func invokeOutputs(t *testing.T, m *resnet.Model, opts Options, input []int8) ([][]byte, int) {
	t.Helper()
	it, err := New(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	copy(it.Input(0).Int8(), input)
	outs := make([][]byte, it.NumOutputs())
	for range 2 { // the second run must not depend on what the first left
		if err := it.Invoke(); err != nil {
			t.Fatal(err)
		}
	}
	for k := range outs {
		outs[k] = slices.Clone(it.Output(k).Bytes())
	}
	return outs, fusedPads(t, m, it)
}

// A PAD with value -128 before a VALID max pool runs inside the pool (the
// pool reads the unpadded tensor with the PAD's top and left as its own
// padding), and the outputs are the reference kernels' bytes on the
// unfused graph for random inputs, over random shapes, asymmetric pads,
// strides and filters. The cases the fusion must leave alone (another pad
// value, a channel or batch pad, a SAME pool, a window wholly in the
// padding, the PAD's output a graph output) are not fused and still exact.
func TestPadFusesIntoTheMaxPoolAfterItExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	fusedCases, kept := 0, 0
	for n := range 400 {
		tc := padPoolCase{
			b: 1 + r.IntN(2), h: 1 + r.IntN(9), w: 1 + r.IntN(9), c: 1 + r.IntN(40),
			fh: 1 + r.IntN(4), fw: 1 + r.IntN(4), sh: 1 + r.IntN(3), sw: 1 + r.IntN(3),
			padding: resnet.PaddingValid, zp: -128, direct: r.IntN(4) == 0,
		}
		tc.pads[1] = [2]int{r.IntN(tc.fh), r.IntN(tc.fh)}
		tc.pads[2] = [2]int{r.IntN(tc.fw), r.IntN(tc.fw)}
		if r.IntN(3) == 0 {
			tc.act = []resnet.Activation{resnet.ActRelu, resnet.ActRelu6, resnet.ActReluN1To1}[r.IntN(3)]
		}
		want := true // fusable
		switch r.IntN(12) {
		case 0:
			tc.zp, want = int64(r.IntN(255)-127), false
		case 1:
			tc.pads[3], want = [2]int{r.IntN(2), 1}, false
		case 2:
			tc.pads[0], want = [2]int{1, r.IntN(2)}, false
		case 3:
			tc.padding, want = resnet.PaddingSame, false
		case 4:
			tc.padOutIsOutput, want = true, false
		case 5: // a pad of a filter size or more: some windows wholly in it
			tc.pads[1+r.IntN(2)][r.IntN(2)] = 4 + r.IntN(2)
		}
		ph, pw := tc.h+tc.pads[1][0]+tc.pads[1][1], tc.w+tc.pads[2][0]+tc.pads[2][1]
		if tc.fh > ph || tc.fw > pw {
			continue
		}
		if tc.pads[1][0] >= tc.fh || tc.pads[2][0] >= tc.fw || ((ph-tc.fh)/tc.sh)*tc.sh-tc.pads[1][0] >= tc.h || ((pw-tc.fw)/tc.sw)*tc.sw-tc.pads[2][0] >= tc.w {
			want = false // some window wholly in the padding
		}
		m := tc.model()
		input := randInt8s(r, tc.b*tc.h*tc.w*tc.c)
		if r.IntN(3) == 0 { // many -128s: ties with the padding
			for i := range input {
				if r.IntN(2) == 0 {
					input[i] = -128
				}
			}
		}
		refOut, refFused := invokeOutputs(t, m, Options{Kernels: "ref", Threads: 1}, input)
		if refFused != 0 {
			t.Fatalf("case %d %+v: the reference kernels fused a PAD", n, tc)
		}
		for _, isa := range fast.Available() {
			for _, threads := range []int{1, 3} {
				got, fused := invokeOutputs(t, m, Options{Kernels: isa.String(), Threads: threads}, input)
				if wantN := map[bool]int{true: 1, false: 0}[want]; fused != wantN {
					t.Fatalf("case %d %+v on %v: %d PADs fused, want %d", n, tc, isa, fused, wantN)
				}
				for k := range refOut {
					if !slices.Equal(got[k], refOut[k]) {
						t.Fatalf("case %d %+v on %v, %d threads (fused %v): output %d differs from the reference kernels' on the unfused graph", n, tc, isa, threads, fused == 1, k)
					}
				}
				_, keepFused := invokeOutputs(t, m, Options{Kernels: isa.String(), Threads: threads, KeepAll: true}, input)
				if keepFused != 0 {
					t.Fatalf("case %d: KeepAll fused a PAD", n)
				}
			}
		}
		if want {
			fusedCases++
		} else {
			kept++
		}
	}
	t.Logf("%d cases fused, %d not", fusedCases, kept)
	if fusedCases < 100 || kept < 50 {
		t.Fatalf("%d fused and %d unfused cases: want at least 100 and 50", fusedCases, kept)
	}
}
