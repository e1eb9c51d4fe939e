package fast

// sumPixels64NEON adds to dst[k] the sum of src[p*stride+k] over p <
// pixels for k < 64*blocks; 1 <= pixels <= 256, blocks >= 1
// (mean_arm64.s).
//
//go:noescape
func sumPixels64NEON(dst *int32, src *int8, stride, pixels, blocks int)

// sumPixelsBlocks sums the whole blocks of 64 channels of acc with NEON
// and returns how many channels it did; pixels <= maxSumPixels and src
// holds every pixel's len(acc) channels (SumPixelsInt8 checked).
func sumPixelsBlocks(acc []int32, src []int8, pixels, stride int) int {
	blocks := len(acc) / 64
	if blocks == 0 {
		return 0
	}
	sumPixels64NEON(&acc[0], &src[0], stride, pixels, blocks)
	return 64 * blocks
}
