package fast

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/resnet"
)

// resnet50Convs is every convolution of ResNet-50 v1.5 at 224x224 with its
// count: the stem, each stage's 1x1 / 3x3 / 1x1 bottleneck (stride 2 in
// the 3x3 of a stage's first block), the 1x1 stride-2 shortcuts and the
// fully connected layer as a 1x1 convolution.
var resnet50Convs = []struct {
	c     convCase
	count int
}{
	{cc(224, 3, 64, 7, 2), 1},
	{cc(56, 64, 64, 1, 1), 1}, {cc(56, 256, 64, 1, 1), 2}, {cc(56, 64, 64, 3, 1), 3}, {cc(56, 64, 256, 1, 1), 4},
	{cc(56, 256, 128, 1, 1), 1}, {cc(56, 128, 128, 3, 2), 1}, {cc(28, 512, 128, 1, 1), 3}, {cc(28, 128, 128, 3, 1), 3},
	{cc(28, 128, 512, 1, 1), 4}, {cc(56, 256, 512, 1, 2), 1},
	{cc(28, 512, 256, 1, 1), 1}, {cc(28, 256, 256, 3, 2), 1}, {cc(14, 1024, 256, 1, 1), 5}, {cc(14, 256, 256, 3, 1), 5},
	{cc(14, 256, 1024, 1, 1), 6}, {cc(28, 512, 1024, 1, 2), 1},
	{cc(14, 1024, 512, 1, 1), 1}, {cc(14, 512, 512, 3, 2), 1}, {cc(7, 2048, 512, 1, 1), 2}, {cc(7, 512, 512, 3, 1), 2},
	{cc(7, 512, 2048, 1, 1), 3}, {cc(14, 1024, 2048, 1, 2), 1},
	{cc(1, 2048, 1000, 1, 1), 1},
}

func cc(hw, inC, outC, k, s int) convCase {
	return convCase{1, hw, hw, inC, outC, k, k, s, s, 1, 1, resnet.PaddingSame, resnet.ActRelu}
}

// BenchmarkResNet50Layers times every convolution shape of ResNet-50 224
// on this CPU's fastest family, one thread, in both arithmetics: the
// padding copy and the micro-kernel tiles separately (pad-ms, tiles-ms per
// run of the shape, its count in the network in the name) and the tiles'
// GMAC/s, next to which the CPU's peak tells what is left (one ZMM
// VPDPBUSD per cycle: 64 MAC/cycle).
func BenchmarkResNet50Layers(b *testing.B) {
	isa := Best()
	for _, arith := range []string{"reference", "xnnpack"} {
		for _, l := range resnet50Convs {
			b.Run(fmt.Sprintf("%v/%s/%v/x%d", isa, arith, l.c, l.count), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				p, filter, bias := randomConv(r, l.c)
				if arith == "xnnpack" {
					withXNNPACK(&p)
				}
				c, err := NewConv(&p, filter, bias, isa)
				if err != nil {
					b.Fatal(err)
				}
				run := NewRunner(1, c.ScratchBytes())
				defer run.Close()
				in := randomInt8s(r, p.Batch*p.InH*p.InW*p.InC)
				out := make([]int8, p.Batch*p.OutH*p.OutW*p.OutC)
				var pad, tiles time.Duration
				for b.Loop() {
					t0 := time.Now()
					if !c.direct {
						run.job = job{kind: jobPad, conv: c, in: in, units: c.padRows()}
						run.run()
					}
					t1 := time.Now()
					run.job = job{kind: jobTiles, conv: c, in: in, out: out, units: c.blocks * c.mtiles}
					run.run()
					pad += t1.Sub(t0)
					tiles += time.Since(t1)
				}
				n := float64(b.N)
				b.ReportMetric(pad.Seconds()*1e3/n, "pad-ms")
				b.ReportMetric(tiles.Seconds()*1e3/n, "tiles-ms")
				b.ReportMetric(float64(c.MACs())*n/tiles.Seconds()/1e9, "GMAC/s")
			})
		}
	}
}
