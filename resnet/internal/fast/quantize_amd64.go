package fast

// quantizeAVX2 is QuantizeInt8 for n elements, n a multiple of 16
// (quantize_amd64.s); lo and hi are -128-zp and 127-zp.
//
//go:noescape
func quantizeAVX2(in *float32, out *int8, n int, scale, lo, hi float32, zp int32)

func quantizeBulk(input []float32, output []int8, scale float32, zeroPoint int32) int {
	n := len(input) &^ 15
	if !hasAVX2 || n == 0 {
		return 0
	}
	quantizeAVX2(&input[0], &output[:n][0], n, scale, float32(-128-zeroPoint), float32(127-zeroPoint), zeroPoint)
	return n
}
