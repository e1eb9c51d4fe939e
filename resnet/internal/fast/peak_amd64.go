package fast

import "time"

// vnniPeakZMM and vnniPeakYMM run n rounds of 16 independent VPDPBUSD on
// 512-bit (1024 multiply-accumulates a round) and 256-bit registers (512),
// without loads, and return lane 0 of the accumulators' sum (n*16*4*255:
// every unsigned byte 255, every signed byte 1). They measure the core's
// dot-product peak, the ceiling of any int8 convolution on it
// (BenchmarkVNNIPeak, make bench-kernels).
//
//go:noescape
func vnniPeakZMM(n int) int32

//go:noescape
func vnniPeakYMM(n int) int32

// DotPeak measures one core's 512-bit VPDPBUSD rate in GMAC/s (the best
// of three tries of about 5 ms each), 0 on a CPU without
// AVX-512 VNNI. Benchmarks divide by it for a share of the peak that does
// not depend on a nominal clock.
func DotPeak() float64 {
	if !hasAVX512VNNI {
		return 0
	}
	const rounds = 1 << 18
	best := 0.0
	for range 3 {
		start := time.Now()
		for range 4 {
			vnniPeakZMM(rounds)
		}
		best = max(best, 4*1024*rounds/time.Since(start).Seconds()/1e9)
	}
	return best
}
