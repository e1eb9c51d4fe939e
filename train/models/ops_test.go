package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/shortcut-edge/shortcut/train/backend"
)

func randVals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// refConv is the specification: a plain loop over NHWC x and [k,k,in,out] w.
func refConv(x []float32, b, h, w, c int, wt []float32, k, out, stride, pad int) (y []float32, oh, ow int) {
	oh, ow = (h+2*pad-k)/stride+1, (w+2*pad-k)/stride+1
	y = make([]float32, b*oh*ow*out)
	for n := range b {
		for oy := range oh {
			for ox := range ow {
				for o := range out {
					var s float64
					for i := range k {
						for j := range k {
							iy, ix := oy*stride+i-pad, ox*stride+j-pad
							if iy < 0 || iy >= h || ix < 0 || ix >= w {
								continue
							}
							for ci := range c {
								s += float64(x[((n*h+iy)*w+ix)*c+ci]) * float64(wt[((i*k+j)*c+ci)*out+o])
							}
						}
					}
					y[((n*oh+oy)*ow+ox)*out+o] = float32(s)
				}
			}
		}
	}
	return y, oh, ow
}

var convCases = []struct{ b, h, w, c, out, k, stride, pad int }{
	{2, 5, 5, 3, 4, 3, 1, 1},
	{2, 6, 6, 3, 4, 3, 2, 1},
	{1, 7, 5, 2, 3, 3, 2, 1}, // odd sizes
	{2, 4, 4, 3, 5, 1, 1, 0},
	{2, 5, 5, 4, 6, 1, 2, 0}, // projection shortcut
	{1, 9, 9, 1, 2, 7, 2, 3}, // ImageNet stem
}

func TestPortableConvForwardEqualsLoopConv(t *testing.T) {
	be, err := backend.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range convCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			x := randVals(rng, tc.b*tc.h*tc.w*tc.c)
			wt := randVals(rng, tc.k*tc.k*tc.c*tc.out)
			want, oh, ow := refConv(x, tc.b, tc.h, tc.w, tc.c, wt, tc.k, tc.out, tc.stride, tc.pad)
			for _, ops := range []Ops{Portable, Native} {
				got := MustExecOnce(be, func(xn, wn *Node) *Node {
					if ops == Native {
						return Convolve(xn, wn).StridePerAxis(tc.stride, tc.stride).
							PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}}).Done()
					}
					return portableConv(xn, wn, tc.k, tc.stride, tc.pad)
				}, tensors.FromFlatDataAndDimensions(x, tc.b, tc.h, tc.w, tc.c),
					tensors.FromFlatDataAndDimensions(wt, tc.k, tc.k, tc.c, tc.out))
				if d := got.Shape().Dimensions; d[1] != oh || d[2] != ow {
					t.Fatalf("%s: output %v, want spatial %dx%d", ops, d, oh, ow)
				}
				g := tensors.MustCopyFlatData[float32](got)
				for i := range want {
					if math.Abs(float64(g[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s: element %d = %g, loop conv gives %g", ops, i, g[i], want[i])
					}
				}
			}
		})
	}
}

// lossOf is a scalar with non-uniform weights so that every gradient element matters.
func lossOf(y *Node) *Node {
	wts := Sin(IotaFull(y.Graph(), y.Shape()))
	return ReduceAllSum(Mul(y, wts))
}

func TestPortableConvGradientMatchesNativeAndFiniteDifferences(t *testing.T) {
	be, err := backend.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range convCases {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			x := randVals(rng, tc.b*tc.h*tc.w*tc.c)
			wt := randVals(rng, tc.k*tc.k*tc.c*tc.out)
			xt := tensors.FromFlatDataAndDimensions(x, tc.b, tc.h, tc.w, tc.c)
			wtt := tensors.FromFlatDataAndDimensions(wt, tc.k, tc.k, tc.c, tc.out)
			grads := func(ops Ops) (gx, gw []float32) {
				outs := MustExecOnceN(be, func(xn, wn *Node) []*Node {
					var y *Node
					if ops == Native {
						y = Convolve(xn, wn).StridePerAxis(tc.stride, tc.stride).
							PaddingPerDim([][2]int{{tc.pad, tc.pad}, {tc.pad, tc.pad}}).Done()
					} else {
						y = portableConv(xn, wn, tc.k, tc.stride, tc.pad)
					}
					return Gradient(lossOf(y), xn, wn)
				}, xt, wtt)
				return tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
			}
			pgx, pgw := grads(Portable)
			ngx, ngw := grads(Native)
			close := func(what string, a, b []float32) {
				for i := range a {
					if math.Abs(float64(a[i]-b[i])) > 1e-3*(1+math.Abs(float64(b[i]))) {
						t.Fatalf("%s element %d: portable %g, other %g", what, i, a[i], b[i])
					}
				}
			}
			close("input gradient vs native", pgx, ngx)
			close("weight gradient vs native", pgw, ngw)

			// Central finite differences of the loop conv (float64 accumulation) on a few elements.
			loss := func(x, wt []float32) float64 {
				y, _, _ := refConv(x, tc.b, tc.h, tc.w, tc.c, wt, tc.k, tc.out, tc.stride, tc.pad)
				var s float64
				for i, v := range y {
					s += float64(v) * math.Sin(float64(i))
				}
				return s
			}
			const eps = 1e-2
			for trial := range 6 {
				i := rng.IntN(len(x))
				xp, xm := append([]float32(nil), x...), append([]float32(nil), x...)
				xp[i] += eps
				xm[i] -= eps
				fd := (loss(xp, wt) - loss(xm, wt)) / (2 * eps)
				if math.Abs(fd-float64(pgx[i])) > 2e-2*(1+math.Abs(fd)) {
					t.Errorf("trial %d: d loss/d x[%d] = %g, finite difference %g", trial, i, pgx[i], fd)
				}
				j := rng.IntN(len(wt))
				wp, wm := append([]float32(nil), wt...), append([]float32(nil), wt...)
				wp[j] += eps
				wm[j] -= eps
				fd = (loss(x, wp) - loss(x, wm)) / (2 * eps)
				if math.Abs(fd-float64(pgw[j])) > 2e-2*(1+math.Abs(fd)) {
					t.Errorf("trial %d: d loss/d w[%d] = %g, finite difference %g", trial, j, pgw[j], fd)
				}
			}
		})
	}
}

func TestFastMatMulGradientEqualsDotGeneralGradient(t *testing.T) {
	be, err := backend.NewCPU()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	a := tensors.FromFlatDataAndDimensions(randVals(rng, 7*5), 7, 5)
	b := tensors.FromFlatDataAndDimensions(randVals(rng, 5*3), 5, 3)
	outs := MustExecOnceN(be, func(an, bn *Node) []*Node {
		fast := Gradient(lossOf(FastMatMul(an, bn)), an, bn)
		ref := Gradient(lossOf(Dot(an, bn)), an, bn)
		return append(fast, append(ref, FastMatMul(an, bn), Dot(an, bn))...)
	}, a, b)
	for i, what := range []string{"d/da", "d/db", "forward"} {
		got := tensors.MustCopyFlatData[float32](outs[i*1+min(i, 2)*0])
		_ = got
		_ = what
	}
	pairs := [][2]int{{0, 2}, {1, 3}, {4, 5}}
	names := []string{"d/da", "d/db", "forward"}
	for k, p := range pairs {
		x, y := tensors.MustCopyFlatData[float32](outs[p[0]]), tensors.MustCopyFlatData[float32](outs[p[1]])
		for i := range x {
			if math.Abs(float64(x[i]-y[i])) > 1e-4*(1+math.Abs(float64(y[i]))) {
				t.Fatalf("%s element %d: FastMatMul %g, Dot %g", names[k], i, x[i], y[i])
			}
		}
	}
}
