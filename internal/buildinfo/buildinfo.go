// Package buildinfo holds the version the binaries were built as. The
// build sets it from `git describe`:
//
//	go build -ldflags "-X github.com/shortcut-edge/shortcut/internal/buildinfo.Version=$(git describe --always --dirty)" ./cmd/agent
//
// and the agent reports it in Home Assistant discovery (sw_version), in
// /metrics (shortcut_build_info) and in --version; shortcut-train in
// --version. A plain `go build` leaves "dev".
package buildinfo

import (
	"fmt"
	"runtime"
)

// Version is the version of this build; "dev" unless -ldflags set it.
var Version = "dev"

// Line is what --version prints for program name: its version, the Go
// release that built it and the platform it was built for, e.g.
// "shortcut-agent v0.4.0-3-gabc1234 (go1.26.0, linux/arm64)".
func Line(name string) string {
	return fmt.Sprintf("%s %s (%s, %s/%s)", name, Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
