//go:build !nocv

package main

import (
	"log/slog"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/cvsource"
)

// Camera sources come from package camera (OpenCV): V4L2, video files,
// image folders, RTSP, MJPEG over HTTP, GStreamer. Build with -tags nocv
// for an agent without OpenCV (synthetic and images: only, decoded in Go).
const sourcesBuild = "opencv"

func sourceChecker() agent.SourceChecker { return cvsource.Check }

func sourceOpener(log *slog.Logger) agent.SourceOpener {
	return cvsource.Opener(cvsource.Options{Logger: log.With("component", "camera")})
}
