package buildinfo

import (
	"runtime"
	"testing"
)

func TestLineNamesProgramVersionGoAndPlatform(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3-4-gdeadbee"
	want := "shortcut-agent v1.2.3-4-gdeadbee (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if got := Line("shortcut-agent"); got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}
