package fast

// SumPixelsInt8 adds to acc[k], for k < len(acc), the sum of
// src[p*stride+k] over the pixels p < pixels: the int32 channel sums of an
// int8 MEAN over H and W (ref.MeanInt8's sums: int32 addition wraps alike
// in any order, so they are the reference's). On arm64 whole blocks of 64
// channels go to a NEON kernel (mean_arm64.s), the rest to plain Go.
func SumPixelsInt8(acc []int32, src []int8, pixels, stride int) {
	c := len(acc)
	if c == 0 || pixels <= 0 {
		return
	}
	_ = src[(pixels-1)*stride+c-1] // the last pixel's last channel lies in src
	for p0 := 0; p0 < pixels; p0 += maxSumPixels {
		n := min(maxSumPixels, pixels-p0)
		s := src[p0*stride:]
		done := sumPixelsBlocks(acc, s, n, stride)
		sumPixelsGo(acc[done:], s[done:], n, stride)
	}
}

// maxSumPixels is the most pixels one kernel call sums: 256 int8 values
// fit an int16 accumulator (256 * -128 = -32768).
const maxSumPixels = 256

// sumPixelsGo is SumPixelsInt8 in plain Go.
func sumPixelsGo(acc []int32, src []int8, pixels, stride int) {
	for p := range pixels {
		row := src[p*stride:][:len(acc)]
		for k, v := range row {
			acc[k] += int32(v)
		}
	}
}
