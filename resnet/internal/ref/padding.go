package ref

import "github.com/shortcut-edge/shortcut/resnet"

// OutSize is TFLite's ComputeOutSize: the output length of a windowed op
// along one axis. SAME gives ceil(in/stride); VALID gives the number of
// positions where the dilated filter fits entirely. It returns 0 for a zero
// stride, as TFLite does; callers treat a size below 1 as an error.
func OutSize(padding resnet.Padding, in, filter, stride, dilation int) int {
	if stride <= 0 {
		return 0
	}
	effective := (filter-1)*dilation + 1
	switch padding {
	case resnet.PaddingSame:
		return (in + stride - 1) / stride
	case resnet.PaddingValid:
		return (in + stride - effective) / stride
	}
	return 0
}

// PaddingBefore is TFLite's ComputePaddingWithOffset: the padding on the
// top/left side. When the total padding is odd the extra row/column goes on
// the bottom/right (offset 1); kernels never need it, because taps that fall
// outside the input are skipped.
func PaddingBefore(stride, dilation, in, filter, out int) (before, offset int) {
	effective := (filter-1)*dilation + 1
	total := (out-1)*stride + effective - in
	if total < 0 {
		total = 0
	}
	return total / 2, total % 2
}
