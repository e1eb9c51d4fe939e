package fast

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/ref"
)

// convAddCases: ResNet's fused shapes (1x1, stride 1 or 2, no padding)
// and others: 3x3 with padding, channels not multiples of the tile width,
// pixel counts not multiples of 4 (one, two and three pixels left over),
// batches.
var convAddCases = []convCase{
	{1, 8, 8, 64, 256, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},
	{1, 7, 7, 128, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},   // 49 pixels
	{1, 14, 14, 32, 128, 1, 1, 2, 2, 1, 1, resnet.PaddingValid, resnet.ActNone}, // 7x7, stride 2
	{2, 5, 6, 48, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},    // 60 pixels over 2 images
	{1, 6, 6, 32, 96, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone},    // a partial block
	{1, 9, 9, 16, 70, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 9, 10, 24, 64, 3, 3, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 5, 7, 5, 13, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	{3, 3, 3, 9, 33, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
	{1, 1, 2, 64, 128, 1, 1, 1, 1, 1, 1, resnet.PaddingValid, resnet.ActNone}, // two pixels only
	{1, 10, 10, 16, 16, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
}

// convAddConv is randomConv with, unless wild, what a trained ResNet's
// last 1x1 of a block has and the arm64 kernels' inline epilogues need:
// multipliers below 1 (no left shift), weights in [-127, 127], the whole
// int8 range (no activation). small: small weights and biases, outputs
// near zero and frequent rounding ties.
// relu: output zero point -128 with the whole range (the SDOT kernel's
// ReLU copy).
func convAddConv(r *rand.Rand, c convCase, wild, small, relu bool) (ref.Conv, []int8, []int32) {
	p, filter, bias := randomConv(r, c)
	if wild {
		return p, filter, bias
	}
	if relu {
		p.OutputOffset = -128
	}
	k := c.fh * c.fw * c.inC
	scales := make([]float32, c.outC)
	for i := range scales {
		scales[i] = float32((0.2 + r.Float64()) / float64(k*40))
		if small {
			scales[i] = float32(0.05 / float64(int(8)<<r.IntN(4)) * (1 - 0.4*r.Float64()))
		}
	}
	p.Multiplier, p.Shift = ref.PerChannelMultipliers(1, scales, 0.05, c.outC)
	if c.act == resnet.ActNone {
		p.ActMin, p.ActMax = -128, 127
	}
	for i := range filter {
		filter[i] = max(filter[i], -127)
		if small {
			filter[i] = int8(r.IntN(5) - 2)
		}
	}
	if small && bias != nil {
		for i := range bias {
			bias[i] = int32(r.IntN(401) - 200)
		}
	}
	return p, filter, bias
}

// convAddParams are ADDs of several quantizations: the output range
// int8's whole, a fused ReLU's (from the output zero point up) and a
// narrow one.
func convAddParams(t *testing.T, r *rand.Rand) []ref.Add {
	var out []ref.Add
	for i := range 3 {
		s1, s2, so := float32(0.01+r.Float64()*0.1), float32(0.01+r.Float64()*0.1), float32(0.02+r.Float64()*0.1)
		z1, z2, zo := int32(r.IntN(256)-128), int32(r.IntN(256)-128), int32(r.IntN(256)-128)
		lo, hi := int32(-128), int32(127)
		switch i {
		case 1:
			lo = zo // ReLU
		case 2:
			lo, hi = -50, 60
		}
		p, err := ref.NewAddInt8(s1, z1, s2, z2, so, zo, lo, hi)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestConvAddMatchesConvThenAdd runs ConvAdd against ref.ConvInt8 then
// ref.AddInt8, for every family this CPU runs, the convolution as the
// ADD's first input and as its second, in place (residual = output) and
// not, on one and three threads. Where FuseAdd declines, the Conv must be
// unchanged (Runner.Conv still matches the reference).
func TestConvAddMatchesConvThenAdd(t *testing.T) {
	copies := map[string]bool{} // the SDOT kernel's fused copies the cases reach
	for ci, c := range convAddCases {
		for _, mode := range []string{"fixed", "small", "relu", "wild", "xnnpack"} {
			for _, isa := range Available() {
				t.Run(fmt.Sprintf("%v/%v/%s", isa, c, mode), func(t *testing.T) {
					r := rand.New(rand.NewPCG(uint64(ci), 55))
					p, filter, bias := convAddConv(r, c, mode == "wild", mode == "small", mode == "relu")
					if mode == "xnnpack" {
						withXNNPACK(&p) // the Go family fuses it; the SDOT kernel declines
					}
					if isa == NEONDot {
						conv, err := NewConv(&p, filter, bias, isa)
						if err != nil {
							t.Fatal(err)
						}
						copies[dotAddCopy(conv)] = true
					}
					checkConvAdd(t, r, &p, filter, bias, isa, convAddParams(t, r), 1+2*(ci%2))
				})
			}
		}
	}
	if hasNEONDot {
		for _, want := range []string{"fixed", "relu", "sat", "none"} {
			if !copies[want] {
				t.Errorf("no case takes tileNEONDotAdd's %s copy (%v)", want, copies)
			}
		}
	}
}

// dotAddCopy is the copy of tileNEONDotAdd that c runs (see genARMKernel),
// or "none" where it has no fused kernel.
func dotAddCopy(c *Conv) string {
	p := &c.p
	switch {
	case !c.fusedKernel():
		return "none"
	case c.anyLsh || c.sat || p.ActMin != -128 || p.ActMax != 127:
		return "sat"
	case p.OutputOffset == -128:
		return "relu"
	}
	return "fixed"
}

func checkConvAdd(t *testing.T, r *rand.Rand, p *ref.Conv, filter []int8, bias []int32, isa ISA, adds []ref.Add, threads int) {
	t.Helper()
	input := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
	conv := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
	ref.ConvInt8(p, input, filter, bias, conv)
	residual := randomInt8s(r, len(conv))
	want := make([]int8, len(conv))
	got := make([]int8, len(conv))
	for ai, ap := range adds {
		for _, convFirst := range []bool{true, false} {
			c, err := NewConv(p, filter, bias, isa)
			if err != nil {
				t.Fatal(err)
			}
			run := NewRunner(threads, c.ScratchBytes())
			a := NewAdd(&ap, nil)
			before := *c
			// The families that fuse: Go (where NewConv may also have put a
			// layer of another family), and the SDOT kernel's fast copies.
			fuses := c.ISA() == Go || c.fusedKernel()
			if c.FuseAdd(a, convFirst) != fuses {
				t.Fatalf("FuseAdd = %v, want %v", !fuses, fuses)
			}
			if c.addT == nil {
				if c.addT != before.addT || c.addKernel != before.addKernel {
					t.Fatalf("FuseAdd declined but changed the Conv")
				}
				if c.ISA() == Go {
					t.Fatalf("the Go family declined FuseAdd")
				}
				run.Conv(c, input, got)
				if !slices.Equal(got, conv) {
					t.Fatalf("after a declined FuseAdd, Conv differs from the reference")
				}
				run.Close()
				continue
			}
			if convFirst {
				ref.AddInt8(&ap, conv, residual, want)
			} else {
				ref.AddInt8(&ap, residual, conv, want)
			}
			for _, inPlace := range []bool{false, true} {
				out := got
				for i := range out {
					out[i] = int8(r.IntN(256) - 128) // garbage that must all be overwritten
				}
				if inPlace {
					copy(out, residual)
					run.ConvAdd(c, input, out, out)
				} else {
					run.ConvAdd(c, input, residual, out)
				}
				for i := range want {
					if out[i] != want[i] {
						px, oc := i/p.OutC, i%p.OutC
						t.Fatalf("add %d convFirst=%v inPlace=%v: pixel %d channel %d = %d, want %d (conv %d, residual %d); addKernel %v",
							ai, convFirst, inPlace, px, oc, out[i], want[i], conv[i], residual[i], c.addKernel)
					}
				}
			}
			// The fused Conv still runs alone.
			run.Conv(c, input, got)
			if !slices.Equal(got, conv) {
				t.Fatalf("Conv of a fused convolution differs from the reference")
			}
			if threads == 1 {
				if n := testing.AllocsPerRun(5, func() { run.ConvAdd(c, input, residual, got) }); n != 0 {
					t.Errorf("ConvAdd allocates %v times a call", n)
				}
			}
			run.Close()
		}
	}
}

// TestAddTransposedSwapsInputs: the transposed table is the ADD with its
// inputs swapped.
func TestAddTransposedSwapsInputs(t *testing.T) {
	p, err := ref.NewAddInt8(0.031, -3, 0.022, 17, 0.041, -9, -128, 127)
	if err != nil {
		t.Fatal(err)
	}
	a := NewAdd(&p, nil)
	tt := a.transposed()
	for x := range 256 {
		for y := range 256 {
			if tt[x<<8|y] != a.table[y<<8|x] {
				t.Fatalf("transposed[%d<<8|%d] = %d, want table[%d<<8|%d] = %d", x, y, tt[x<<8|y], y, x, a.table[y<<8|x])
			}
		}
	}
	if a.transposed() != tt {
		t.Errorf("the transposed table is made again")
	}
}
