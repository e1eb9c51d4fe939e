//go:build !amd64

package fast

// DotPeak is 0 here: only amd64 has a peak-measuring loop (peak_amd64.s).
func DotPeak() float64 { return 0 }
