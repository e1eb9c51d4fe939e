//go:build !amd64

package fast

const (
	hasFMA     = false
	hasAVX512F = false
)

func ftileAVX2(a *ftileArgs)   { panic("fast: AVX2 float kernel called off amd64") }
func ftileAVX512(a *ftileArgs) { panic("fast: AVX-512 float kernel called off amd64") }
