//go:build !arm64

package fast

// sumPixelsBlocks leaves every channel to sumPixelsGo off arm64.
func sumPixelsBlocks(acc []int32, src []int8, pixels, stride int) int { return 0 }
