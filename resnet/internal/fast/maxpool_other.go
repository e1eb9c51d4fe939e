//go:build !amd64 && !arm64

package fast

func maxInto(dst, src []int8) { maxIntoGo(dst, src) }
