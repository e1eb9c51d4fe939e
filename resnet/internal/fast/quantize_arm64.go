package fast

// quantizeNEON is QuantizeInt8 for n elements, n a multiple of 16
// (quantize_arm64.s).
//
//go:noescape
func quantizeNEON(in *float32, out *int8, n int, scale float32, zp int32)

func quantizeBulk(input []float32, output []int8, scale float32, zeroPoint int32) int {
	n := len(input) &^ 15
	if n > 0 {
		quantizeNEON(&input[0], &output[0], n, scale, zeroPoint)
	}
	return n
}
