package backend

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func newCPU(t *testing.T) backends.Backend {
	t.Helper()
	b, err := NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randTensor(rng *rand.Rand, dims ...int) (*tensors.Tensor, []float32) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...), v
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("%s: element %d = %g, want %g", what, i, got[i], want[i])
		}
	}
}

// refPad is XLA's Pad on a rank-2 array, written as loops: the specification.
func refPad(x []float32, rows, cols int, fill float32, cfg [2]backends.PadAxis) ([]float32, int, int) {
	dim := func(n int, c backends.PadAxis) int { return c.Start + c.End + n + max(0, n-1)*c.Interior }
	or, oc := dim(rows, cfg[0]), dim(cols, cfg[1])
	out := make([]float32, or*oc)
	for i := range out {
		out[i] = fill
	}
	for r := range rows {
		for c := range cols {
			orow := cfg[0].Start + r*(cfg[0].Interior+1)
			ocol := cfg[1].Start + c*(cfg[1].Interior+1)
			if orow >= 0 && orow < or && ocol >= 0 && ocol < oc {
				out[orow*oc+ocol] = x[r*cols+c]
			}
		}
	}
	return out, or, oc
}

func TestComposedPadMatchesXLASemantics(t *testing.T) {
	b := newCPU(t)
	rng := rand.New(rand.NewPCG(1, 1))
	cases := [][2]backends.PadAxis{
		{{Start: 1, End: 2}, {Start: 0, End: 3}},
		{{Interior: 1}, {Interior: 2, Start: 1, End: 1}},
		{{Start: -1, End: 1}, {Start: 2, End: -2}},
		{{Start: 0, End: 0, Interior: 1}, {Start: -1, End: -1, Interior: 1}},
	}
	for _, cfg := range cases {
		xt, x := randTensor(rng, 4, 5)
		want, or, oc := refPad(x, 4, 5, 7, cfg)
		got := MustExecOnce(b, func(xn *Node) *Node {
			return Pad(xn, Scalar(xn.Graph(), xn.DType(), 7), cfg[0], cfg[1])
		}, xt)
		if d := got.Shape().Dimensions; d[0] != or || d[1] != oc {
			t.Fatalf("pad %+v: shape %v, want [%d %d]", cfg, d, or, oc)
		}
		assertClose(t, "pad", tensors.MustCopyFlatData[float32](got), want, 0)
	}
}

func TestComposedReverseFlipsAxes(t *testing.T) {
	b := newCPU(t)
	xt := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	got := MustExecOnce(b, func(x *Node) *Node { return Reverse(x, 0, 1) }, xt)
	assertClose(t, "reverse", tensors.MustCopyFlatData[float32](got), []float32{6, 5, 4, 3, 2, 1}, 0)
}

// TestSliceGradientWorks covers strided subsampling (option-A shortcuts): its gradient is a Pad.
func TestSliceGradientScattersBackIntoPlace(t *testing.T) {
	b := newCPU(t)
	xt := tensors.FromFlatDataAndDimensions([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10)
	got := MustExecOnce(b, func(x *Node) *Node {
		return Gradient(ReduceAllSum(Mul(Slice(x, AxisRange(1, 8).Stride(3)), Const(x.Graph(), []float32{1, 2, 3}))), x)[0]
	}, xt)
	assertClose(t, "slice gradient", tensors.MustCopyFlatData[float32](got), []float32{0, 1, 0, 0, 2, 0, 0, 3, 0, 0}, 0)
}

// TestFusedBatchNormGradientEqualsDirectFormula checks the composed BatchNormForTraining and
// BatchNormGradient against batch norm written with differentiable graph ops, whose gradient
// GoMLX derives (including the paths through the batch mean and variance).
func TestFusedBatchNormGradientEqualsDirectFormula(t *testing.T) {
	b := newCPU(t)
	rng := rand.New(rand.NewPCG(2, 2))
	xt, _ := randTensor(rng, 3, 4, 4, 5)
	st, _ := randTensor(rng, 5)
	ot, _ := randTensor(rng, 5)
	const eps = 1e-3
	weights := func(y *Node) *Node { return Sin(IotaFull(y.Graph(), y.Shape())) }
	outs := MustExecOnceN(b, func(x, scale, offset *Node) []*Node {
		fused, mean, variance := InternalBatchNormForTraining(x, scale, offset, eps, -1)
		fg := Gradient(ReduceAllSum(Mul(fused, weights(fused))), x, scale, offset)

		m := ReduceAndKeep(x, ReduceMean, 0, 1, 2)
		v := ReduceAndKeep(Square(Sub(x, m)), ReduceMean, 0, 1, 2)
		direct := Add(Mul(Div(Sub(x, m), Sqrt(AddScalar(v, eps))), Reshape(scale, 1, 1, 1, 5)), Reshape(offset, 1, 1, 1, 5))
		dg := Gradient(ReduceAllSum(Mul(direct, weights(direct))), x, scale, offset)
		return []*Node{fused, direct, fg[0], dg[0], fg[1], dg[1], fg[2], dg[2], mean, Reshape(m, 5), variance, Reshape(v, 5)}
	}, xt, st, ot)
	names := []string{"normalized", "d/dx", "d/dscale", "d/doffset", "batch mean", "batch variance"}
	for i, name := range names {
		assertClose(t, name, tensors.MustCopyFlatData[float32](outs[2*i]), tensors.MustCopyFlatData[float32](outs[2*i+1]), 1e-4)
	}
	inf := MustExecOnce(b, func(x, scale, offset *Node) *Node {
		m := Zeros(x.Graph(), shapes.Make(x.DType(), 5))
		return InternalBatchNormForInference(x, scale, offset, m, OnesLike(m), eps, -1)
	}, xt, st, ot)
	direct := MustExecOnce(b, func(x, scale, offset *Node) *Node {
		return Add(Mul(DivScalar(x, math.Sqrt(1+eps)), Reshape(scale, 1, 1, 1, 5)), Reshape(offset, 1, 1, 1, 5))
	}, xt, st, ot)
	assertClose(t, "inference", tensors.MustCopyFlatData[float32](inf), tensors.MustCopyFlatData[float32](direct), 1e-5)
}

func TestMaxPoolGradientRoutesToTheFirstMaximum(t *testing.T) {
	b := newCPU(t)
	// One 4x4 channel; 3x3 windows, stride 2, padding 1: output 2x2.
	xt := tensors.FromFlatDataAndDimensions([]float32{
		1, 9, 2, 3,
		4, 5, 9, 6,
		7, 8, 1, 0,
		2, 2, 3, 3}, 1, 4, 4, 1)
	got := MustExecOnce(b, func(x *Node) *Node {
		y := MaxPool(x).Window(3).Strides(2).PaddingPerDim([][2]int{{1, 1}, {1, 1}}).Done()
		return Gradient(ReduceAllSum(Mul(y, Const(x.Graph(), [][][][]float32{{{{1}, {10}}, {{100}, {1000}}}}))), x)[0]
	}, xt)
	// Windows: (0,0) covers rows/cols -1..1 -> max 9 at (0,1); (0,1) rows -1..1, cols 1..3 -> 9 at (0,1) first;
	// (1,0) rows 1..3, cols -1..1 -> 8 at (2,1); (1,1) rows 1..3, cols 1..3 -> 9 at (1,2).
	want := []float32{
		0, 11, 0, 0,
		0, 0, 1000, 0,
		0, 100, 0, 0,
		0, 0, 0, 0}
	assertClose(t, "max-pool gradient", tensors.MustCopyFlatData[float32](got), want, 0)
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		spec string
		want string
	}{
		{"xla:" + filepath.Join(dir, "nope", "xla_cuda_plugin.so"), "not found"},
		{"xla:" + dir, "is a directory"},
		{"xla:", "no PJRT plugin given"},
		{"tpu", "unknown kind"},
	}
	for _, tc := range cases {
		_, err := New(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) error %v, want one containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestResolveReadsTheEnvironmentThenDefaultsToCPU(t *testing.T) {
	t.Setenv(EnvVar, "")
	os.Unsetenv(EnvVar)
	if got := Resolve(""); got != "cpu" {
		t.Errorf("Resolve with nothing set = %q, want cpu", got)
	}
	t.Setenv(EnvVar, "xla:/opt/p.so")
	if got := Resolve(""); got != "xla:/opt/p.so" {
		t.Errorf("Resolve with $%s = %q", EnvVar, got)
	}
	if got := Resolve("cpu"); got != "cpu" {
		t.Errorf("explicit spec must win over $%s, got %q", EnvVar, got)
	}
	b, err := New("cpu")
	if err != nil || KindOf(b) != CPU {
		t.Fatalf("New(cpu) = %v, %v; want a CPU backend", b, err)
	}
}
