package fast

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shortcut-edge/shortcut/resnet"
)

// BenchmarkConv times ResNet-50's most common convolution shapes on every
// micro-kernel family and thread count, in the reference arithmetic;
// GMAC/s is reported per shape.
func BenchmarkConv(b *testing.B) { benchConv(b, false) }

// BenchmarkConvXNNPACK is BenchmarkConv in the "xnnpack" arithmetic (the
// float32 requantization).
func BenchmarkConvXNNPACK(b *testing.B) { benchConv(b, true) }

func benchConv(b *testing.B, xnnpack bool) {
	shapes := []convCase{
		{1, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 56, 56, 256, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 14, 14, 256, 1024, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 224, 224, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	}
	for _, isa := range Available() {
		for _, threads := range []int{1, 2} {
			for _, s := range shapes {
				b.Run(fmt.Sprintf("%v/threads=%d/%v", isa, threads, s), func(b *testing.B) {
					r := rand.New(rand.NewPCG(1, 2))
					p, filter, bias := randomConv(r, s)
					if xnnpack {
						withXNNPACK(&p)
					}
					c, err := NewConv(&p, filter, bias, isa)
					if err != nil {
						b.Fatal(err)
					}
					run := NewRunner(threads, c.ScratchBytes())
					defer run.Close()
					in := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
					out := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
					for b.Loop() {
						run.Conv(c, in, out)
					}
					b.ReportMetric(float64(c.MACs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
				})
			}
		}
	}
}

// BenchmarkFConv times the same shapes in float32 on every float
// micro-kernel family and thread count.
func BenchmarkFConv(b *testing.B) {
	shapes := []convCase{
		{1, 56, 56, 64, 64, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 56, 56, 256, 64, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 14, 14, 256, 1024, 1, 1, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActNone},
		{1, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, resnet.PaddingSame, resnet.ActRelu},
		{1, 224, 224, 3, 64, 7, 7, 2, 2, 1, 1, resnet.PaddingSame, resnet.ActRelu},
	}
	for _, k := range FloatKernels() {
		benchFConvShapes(b, k, shapes, fmt.Sprintf("%v/", k))
	}
}

// benchFConvShapes times shapes on float kernel k at 1 and 2 threads,
// sub-benchmarks named prefix+"threads=N/shape".
func benchFConvShapes(b *testing.B, k FloatKernel, shapes []convCase, prefix string) {
	for _, threads := range []int{1, 2} {
		for _, s := range shapes {
			b.Run(fmt.Sprintf("%sthreads=%d/%v", prefix, threads, s), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				p, filter, bias := randomFConv(r, s)
				c, err := NewFConv(&p, filter, bias, k)
				if err != nil {
					b.Fatal(err)
				}
				run := NewRunner(threads, c.ScratchBytes())
				defer run.Close()
				in := randomFloats(r, p.Batch*p.InH*p.InW*p.InC)
				out := make([]float32, p.Batch*p.OutH*p.OutW*p.OutC)
				for b.Loop() {
					run.FConv(c, in, out)
				}
				b.ReportMetric(float64(c.MACs())*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
