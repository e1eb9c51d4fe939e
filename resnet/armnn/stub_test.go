//go:build !armnn

package armnn

import (
	"errors"
	"testing"
)

// Without the armnn tag a valid-looking request fails with ErrNotBuilt, the
// error the agent's fallback path logs.
func TestLoadWithoutTheTagSaysHowToGetArmNN(t *testing.T) {
	model := append([]byte{0, 0, 0, 0}, "TFL3...."...)
	n, err := Load(model, Options{Backends: []string{"CpuAcc"}})
	if n != nil || !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Load = %v, %v; want ErrNotBuilt", n, err)
	}
	if Available() == nil || len(Registered()) != 0 {
		t.Fatalf("Available() = nil or Registered() = %v without the armnn tag", Registered())
	}
}
