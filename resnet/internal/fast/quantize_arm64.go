package fast

import "math"

// quantizeNEON is QuantizeInt8 for n elements, n a multiple of 16
// (quantize_arm64.s): the float32 division of the reference.
//
//go:noescape
func quantizeNEON(in *float32, out *int8, n int, scale float32, zp int32)

// quantizeMulNEON is quantizeNEON with x/scale taken as
// float32(float64(x) * inv), inv = float64(1) / float64(scale)
// (quantize_arm64.s).
//
//go:noescape
func quantizeMulNEON(in *float32, out *int8, n int, inv float64, zp int32)

// quantizeBulk quantizes the first multiple of 16 elements.
//
// For a normal scale it multiplies instead of dividing (quantizeMulNEON),
// and the result is still the float32 quotient fl32(x/s) the reference
// rounds, for every float32 x:
//   - inv = RN64(1/s) and p = RN64(x*inv) are within a relative 2^-52 of
//     x/s (two roundings of 2^-53).
//   - fl32 changes value only at the midpoints M between consecutive
//     float32 values (and the overflow threshold, one more such point).
//     x/s is never one: with x = X*2^a, s = S*2^b (X, S integers of 24
//     bits at most) and M = N*2^c (N odd, 25 bits: N >= 2^24 for every
//     midpoint above the subnormal range), x = M*s would make X's odd part
//     a multiple of N, so at least 2^24. And x/s is never closer to one
//     than 2^-50 relative: x - M*s is a nonzero multiple of 2^t, t =
//     min(a, b+c), and |x| < 2^(t+51) (|X| < 2^24 if t = a; |x| near |M*s|
//     < 2^(b+c+50) otherwise), so |x/s - M| = |x - M*s|/s >= 2^t/s >
//     |x/s|*2^-51.
//   - So p lies strictly on the same side of every midpoint as x/s, and
//     RN32(p) = RN32(x/s). Below the normal range (|x/s| < 2^-126) the
//     two may differ by a subnormal step, but both round to the integer
//     0 there. NaN and infinite inputs give NaN and infinities alike.
//
// Other scales (zero, subnormal, infinite, NaN) keep the division.
func quantizeBulk(input []float32, output []int8, scale float32, zeroPoint int32) int {
	n := len(input) &^ 15
	if n == 0 {
		return 0
	}
	if a := math.Abs(float64(scale)); a >= math.SmallestNonzeroFloat32*(1<<23) && a <= math.MaxFloat32 {
		quantizeMulNEON(&input[0], &output[0], n, 1/float64(scale), zeroPoint)
	} else {
		quantizeNEON(&input[0], &output[0], n, scale, zeroPoint)
	}
	return n
}
