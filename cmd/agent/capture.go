package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
)

// captureFlags are --capture's companions.
type captureFlags struct {
	dir      string
	frames   int
	interval time.Duration
	camera   string
	append   bool
}

// runCapture is --capture: the configured cameras' frames as the model
// sees them, saved as PNG files (agent.Capture), then exit. It needs the
// model only for its input (size, channels, image_size, normalization);
// it runs no inference and connects to no broker.
func runCapture(configPath, modelFlag string, c captureFlags, stdout, stderr io.Writer) int {
	cfg, err := agent.LoadConfig(configPath, agent.ConfigOptions{CheckSource: sourceChecker()})
	if modelFlag != "" {
		cfg.OverrideModelPath(modelFlag, "--model")
	}
	info, err := cfg.CheckWithModel(err, nil)
	if err != nil {
		fmt.Fprintln(stderr, "shortcut-agent: --capture needs a valid -config and its model (the model gives the input size):", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(cfg.Log, stderr)
	files, err := agent.Capture(ctx, cfg, info, sourceOpener(log), agent.CaptureOptions{
		Dir: c.dir, Frames: c.frames, Interval: c.interval, Camera: c.camera, Append: c.append,
		Flags: agent.CaptureFlags{Dir: "--capture", Frames: "--frames", Interval: "--interval", Camera: "--camera", Append: "--append"},
	}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "shortcut-agent: --capture stopped after saving %d frames: %v\n", len(files), err)
		return 1
	}
	fmt.Fprintf(stderr, "shortcut-agent: saved %d frames of %dx%d (the model's input, %s) in %s\n",
		len(files), info.Width, info.Height, info.Path, c.dir)
	return 0
}
