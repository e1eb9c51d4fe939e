package fast

import (
	"testing"
)

func TestVNNIPeakLoopsComputeWhatTheySay(t *testing.T) {
	if !hasAVX512VNNI {
		t.Skip("this CPU has no AVX-512 VNNI: the peak loops need it")
	}
	for _, n := range []int{1, 3, 1000} {
		want := int32(n * 16 * 4 * 255)
		if got := vnniPeakZMM(n); got != want {
			t.Errorf("vnniPeakZMM(%d) = %d; want %d", n, got, want)
		}
		if got := vnniPeakYMM(n); got != want {
			t.Errorf("vnniPeakYMM(%d) = %d; want %d", n, got, want)
		}
	}
}

// resnet50MACs is int8 ResNet-50 224's multiply-accumulates per inference.
const resnet50MACs = 4.09e9

// BenchmarkVNNIPeak measures one core's VPDPBUSD throughput, and the time
// int8 ResNet-50's convolutions would take at that rate: no kernel of any
// engine can run the network faster on this core.
func BenchmarkVNNIPeak(b *testing.B) {
	if !hasAVX512VNNI {
		b.Skip("this CPU has no AVX-512 VNNI")
	}
	for _, c := range []struct {
		name string
		f    func(int) int32
		macs float64
	}{{"zmm", vnniPeakZMM, 1024}, {"ymm", vnniPeakYMM, 512}} {
		b.Run(c.name, func(b *testing.B) {
			const rounds = 1 << 16
			for b.Loop() {
				c.f(rounds)
			}
			gmacs := c.macs * rounds * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(gmacs, "GMAC/s")
			b.ReportMetric(resnet50MACs/gmacs/1e6, "resnet50-floor-ms")
		})
	}
}

func TestDotPeakIsPlausible(t *testing.T) {
	if !hasAVX512VNNI {
		if DotPeak() != 0 {
			t.Error("DotPeak on a CPU without AVX-512 VNNI is not 0")
		}
		return
	}
	// 64 MACs per cycle at 0.5 to 7 GHz: anything else is a broken loop
	// or timer, not a CPU.
	if g := DotPeak(); g < 32 || g > 448 {
		t.Errorf("DotPeak() = %.1f GMAC/s; want 32..448 (64 MACs a cycle at 0.5-7 GHz)", g)
	}
}
