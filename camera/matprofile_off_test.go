//go:build !matprofile

package camera

// openMats cannot count without gocv's matprofile build tag.
func openMats() (int, bool) { return 0, false }
