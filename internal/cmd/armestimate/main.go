// Command armestimate prints Raspberry Pi 5 and Pi 4 latency estimates of an
// int8 ResNet run by our interpreter, per operator, at 1 and 4 threads,
// next to ncnn's published figures, from a qemu trace of the real arm64
// code priced by llvm-mca (see package internal/armestimate). It needs
// qemu-user-static and llvm-19; a ResNet-50 224 takes a few minutes.
//
//	go run ./internal/cmd/armestimate [-depth 50 -size 224 | -model M.tflite] [-boards pi5,pi4]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/shortcut-edge/shortcut/internal/armestimate"
)

func main() {
	var cfg armestimate.Config
	flag.StringVar(&cfg.Model, "model", "", "int8 .tflite model (default: build a random-weight ResNet)")
	flag.IntVar(&cfg.Depth, "depth", 50, "ResNet depth to build")
	flag.IntVar(&cfg.Size, "size", 224, "input height and width to build")
	flag.IntVar(&cfg.Classes, "classes", 1000, "classes of the built model")
	flag.StringVar(&cfg.Work, "work", "", "keep the probe, model, qemu log and llvm-mca input here")
	boards := flag.String("boards", "pi5,pi4", "boards to estimate")
	flag.Parse()
	cfg.BoardsFilter = strings.Split(*boards, ",")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := armestimate.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
