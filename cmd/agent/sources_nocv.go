//go:build nocv

package main

import (
	"log/slog"

	"github.com/shortcut-edge/shortcut/agent"
)

// Without OpenCV the agent has the sources of package agent alone:
// "synthetic" and "images:" (PNG and JPEG decoded in Go).
const sourcesBuild = "nocv"

func sourceChecker() agent.SourceChecker { return agent.CheckSource }

func sourceOpener(*slog.Logger) agent.SourceOpener { return agent.OpenSource }
