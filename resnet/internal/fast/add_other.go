//go:build !arm64 && !amd64

package fast

import "github.com/shortcut-edge/shortcut/resnet/internal/ref"

func addTable(t *[1 << 16]int8, x, y []uint8, o []int8) { addTableGo(t, x, y, o) }

// addParams is amd64's computed ADD (add_amd64.go); none here.
type addParams struct{}

func newAddParams(*ref.Add) *addParams { return nil }

func addCompute(*addParams, []uint8, []uint8, []int8) int { return 0 }
