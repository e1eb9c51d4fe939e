package agent

import (
	"context"
	"io"

	"github.com/shortcut-edge/shortcut/agent/capture"
)

// The capture stage (package agent/capture: frame sources, preprocessing,
// --capture) under the names the agent and its callers use.
type (
	Frame           = capture.Frame
	FrameSource     = capture.FrameSource
	SourceOpener    = capture.SourceOpener
	Snapshotter     = capture.Snapshotter
	SourceStats     = capture.SourceStats
	StatsSource     = capture.StatsSource
	ModelAware      = capture.ModelAware
	ImageFiles      = capture.ImageFiles
	SyntheticSource = capture.SyntheticSource
	CaptureOptions  = capture.CaptureOptions
	CaptureFlags    = capture.CaptureFlags
)

// ErrSourceDone is what a source's Next returns after its last frame.
var ErrSourceDone = capture.ErrSourceDone

// OpenSource is the default SourceOpener (capture.OpenSource).
func OpenSource(cam CameraConfig) (FrameSource, error) { return capture.OpenSource(cam) }

// Capture saves frames as they reach the model (capture.Capture).
func Capture(ctx context.Context, cfg Config, info ModelInfo, open SourceOpener, o CaptureOptions, progress io.Writer) ([]string, error) {
	return capture.Capture(ctx, cfg, info, open, o, progress)
}

// Source states that make /healthz degraded.
const (
	SourceReconnecting = capture.SourceReconnecting
	SourceDegraded     = capture.SourceDegraded
)
