//go:build !amd64

package fast

func maxInto(dst, src []int8) { maxIntoGo(dst, src) }
