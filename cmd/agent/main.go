// Command shortcut-agent is the on-board daemon (package agent): it reads
// one YAML configuration, classifies camera frames and publishes the
// results over MQTT. It also checks a configuration (--check-config) or a
// model (--check-model) and exits; --capture DIR saves frames as the model
// sees them (for calibration and teaching photos) and exits; --version prints the build's version;
// `shortcut-agent hash-password` prints a bcrypt hash for http.auth.users.
//
// Signals: SIGINT and SIGTERM stop it cleanly (publishing "offline");
// SIGHUP reloads the model file beside the running one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/internal/buildinfo"
	"github.com/shortcut-edge/shortcut/resnet"
	"github.com/shortcut-edge/shortcut/resnet/interp"
)

const defaultConfig = "/etc/shortcut/agent.yaml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "hash-password" {
		return hashPassword(args[1:], os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("shortcut-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", defaultConfig, "the YAML configuration (keys and defaults: configs/agent.yaml)")
	checkConfig := fs.Bool("check-config", false, "validate the configuration and load its model as the agent would, list every problem, and exit")
	model := fs.String("model", "", "the .tflite model (overrides model.path)")
	checkModel := fs.Bool("check-model", false, "load and prepare the model, print a summary and exit")
	exitWhenDone := fs.Bool("exit-when-done", false, "stop cleanly once every camera source has ended (video files, image folders that do not loop)")
	var capture captureFlags
	fs.StringVar(&capture.dir, "capture", "", "save frames of the configured cameras as the model sees them (roi, fit, input size) as DIR/<camera>-<seq>.png, and exit; see --frames")
	fs.IntVar(&capture.frames, "frames", 0, "with --capture: frames to save per camera")
	fs.DurationVar(&capture.interval, "interval", 0, "with --capture: pause between two frames of a camera (e.g. 2s); 0: every frame the source gives at its fps")
	fs.StringVar(&capture.camera, "camera", "", "with --capture: only this camera id (default: every camera)")
	fs.BoolVar(&capture.append, "append", false, "with --capture: add to a folder that holds files already (numbering goes on)")
	version := fs.Bool("version", false, "print the version, the Go release and the platform of this build, and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.Line("shortcut-agent"))
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "shortcut-agent: unexpected argument %q (flags only; see -h)\n", fs.Arg(0))
		return 2
	}
	if capture.dir != "" {
		return runCapture(*configPath, *model, capture, stdout, stderr)
	}
	if capture.frames != 0 || capture.interval != 0 || capture.camera != "" || capture.append {
		fmt.Fprintln(stderr, "shortcut-agent: --frames, --interval, --camera and --append go with --capture DIR")
		return 2
	}
	if *checkModel {
		path := *model
		if path == "" {
			cfg, err := agent.LoadConfig(*configPath, agent.ConfigOptions{CheckSource: sourceChecker()})
			if err != nil {
				fmt.Fprintln(stderr, "shortcut-agent: --check-model needs --model M.tflite or a valid -config:", err)
				return 2
			}
			if _, err := cfg.CheckWithModel(nil, nil); err != nil {
				fmt.Fprintln(stderr, "shortcut-agent:", err) // names model.path and its line
				return 1
			}
			path = cfg.Model.Path
		}
		return checkModelFile(path, stdout, stderr)
	}
	cfg, err := agent.LoadConfig(*configPath, agent.ConfigOptions{CheckSource: sourceChecker()})
	if *model != "" {
		cfg.OverrideModelPath(*model, "--model")
	}
	if *checkConfig {
		info, err := cfg.CheckWithModel(err, nil)
		if err != nil {
			fmt.Fprintln(stderr, "shortcut-agent:", err)
			return 2
		}
		learning := fmt.Sprintf("no on-device learning (embedding %s)", info.Embedding)
		if info.EmbeddingDim > 0 {
			learning = fmt.Sprintf("on-device learning available (embedding of %d values%s)", info.EmbeddingDim, embeddingSource(info.Embedding))
		}
		fmt.Fprintf(stdout, "config %s: ok (device %q, %d camera(s); model %s loads: %q, %d labels, %s; %s sources)\n",
			*configPath, cfg.Device.ID, len(cfg.Cameras), cfg.Model.Path, info.Name, len(info.Labels), learning, sourcesBuild)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "shortcut-agent:", err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	a, err := agent.New(cfg, agent.Options{Logger: log, OpenSource: sourceOpener(log), CheckSource: sourceChecker()})
	var ce *agent.ConfigError
	if errors.As(err, &ce) {
		// The model (model.path) does not load or does not fit the
		// configuration: the same answer --check-config gives.
		fmt.Fprintln(stderr, "shortcut-agent:", err)
		return 2
	}
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := a.Start(); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if *exitWhenDone {
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					if a.SourcesDone() {
						// Let the last predictions reach the broker first.
						time.Sleep(500 * time.Millisecond)
						log.Info("every camera source has ended; stopping")
						stop()
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the model")
				a.Reload() // logs and publishes its own result
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(c agent.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level)) // validated with the config
	o := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func checkModelFile(path string, stdout, stderr io.Writer) int {
	m, err := resnet.LoadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "shortcut-agent:", err)
		return 1
	}
	it, err := interp.New(m, interp.Options{})
	if err != nil {
		fmt.Fprintf(stderr, "shortcut-agent: model %q: %v\n", path, err)
		return 1
	}
	c, err := agent.LoadModel(path)
	if err != nil {
		fmt.Fprintln(stderr, "shortcut-agent:", err)
		return 1
	}
	learning := fmt.Sprintf("embedding %s: on-device learning unavailable", c.Info().Embedding)
	if d := c.Info().EmbeddingDim; d > 0 {
		learning = fmt.Sprintf("embedding of %d values%s: on-device learning available", d, embeddingSource(c.Info().Embedding))
	}
	if in := c.Info(); in.ContentHeight > 0 {
		learning += fmt.Sprintf(", trained on %dx%d images centred in its %dx%d input (frames are fitted there, black around)",
			in.ContentHeight, in.ContentWidth, in.Height, in.Width)
	}
	fmt.Fprintf(stdout, "model %s: %q, %d operators, %d inputs, %d outputs, %d labels, %s\n",
		path, m.Description, len(m.Operators), it.NumInputs(), it.NumOutputs(), len(m.Meta.Labels), learning)
	return 0
}

// embeddingSource names where the embedding comes from when it is not the
// model's own output 1.
func embeddingSource(how string) string {
	if how == "output 1" || how == "" {
		return ""
	}
	return ", from " + how
}
