package interp

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/internal/fast"
)

// The int8 SOFTMAX on the fast kernels (fast.Softmax, an exp table) gives
// the reference kernel's bytes through the interpreter, for random betas,
// input scales and shapes; the reference kernels keep ref.SoftmaxInt8.
func TestInt8SoftmaxOnTheFastKernelsMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(81, 82))
	for n := range 40 {
		outer, depth := 1+r.IntN(4), 1+r.IntN(1200)
		beta := float32(0.2 + 3*r.Float64())
		scale := float32(0.01 + 0.3*r.Float64())
		var g graph
		x := g.act("input", resnet.Int8, []int{outer, depth}, quant(scale, int64(r.IntN(256)-128)))
		y := g.act("output", resnet.Int8, []int{outer, depth}, quant(1.0/256, -128))
		g.op(resnet.OpSoftmax, &resnet.SoftmaxOptions{Beta: beta}, []int{x}, y)
		m := g.io([]int{x}, []int{y})
		input := randInt8s(r, outer*depth)
		run := func(kernels string) ([]byte, bool) {
			it, err := New(m, Options{Kernels: kernels, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			copy(it.Input(0).Int8(), input)
			if err := it.Invoke(); err != nil {
				t.Fatal(err)
			}
			return slices.Clone(it.Output(0).Bytes()), it.prog.kernels[0].(*softmaxKernel).lut != nil
		}
		want, lut := run("ref")
		if lut {
			t.Fatal("the reference kernels run the softmax from a table")
		}
		for _, isa := range fast.Available() {
			got, lut := run(isa.String())
			if !lut {
				t.Fatalf("kernels %v: the int8 softmax is not on fast.Softmax", isa)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("case %d (beta %g, scale %g, %dx%d) on %v: output differs from the reference kernels'", n, beta, scale, outer, depth, isa)
			}
		}
	}
}
