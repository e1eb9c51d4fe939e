//go:build matprofile

package camera

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"gocv.io/x/gocv"
)

// openMats counts Mats not yet closed (gocv's Mat profile).
func openMats() (int, bool) { return gocv.MatProfile.Count(), true }

// TestMain fails the run if any test left a Mat open, and shows where it was made.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := gocv.MatProfile.Count(); n != 0 {
		var b bytes.Buffer
		gocv.MatProfile.WriteTo(&b, 1)
		fmt.Fprintf(os.Stderr, "%d Mats left open after the tests:\n%s", n, b.String())
		code = 1
	}
	os.Exit(code)
}
