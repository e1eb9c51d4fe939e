// Command shortcut-train is the desktop half of Shortcut: it trains ResNets,
// quantizes them to int8 .tflite files, and runs any .tflite model through
// our own runtime (infer, bench) so it can be checked against another one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/shortcut-edge/shortcut/internal/buildinfo"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = map[string]command{
	"infer":        {"run a .tflite model on .npy inputs and write .npy outputs", runInfer},
	"bench":        {"time a .tflite model on generated input (prints ms_per_inference=...)", runBench},
	"random-model": {"write a ResNet .tflite with random weights (float or int8), for tests and benchmarks", runRandomModel},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: shortcut-train <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-13s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'shortcut-train <command> -h' for its flags, 'shortcut-train --version' for the build's version.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		fmt.Fprintln(stdout, buildinfo.Line("shortcut-train"))
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "shortcut-train: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	if err := c.run(ctx, args[1:], stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		// One line: scripts and people read the first line only.
		fmt.Fprintf(stderr, "shortcut-train %s: %s\n", args[0], strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	return 0
}

// multiFlag collects a repeated flag (--input a --input b).
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("shortcut-train "+name, flag.ContinueOnError)
	return fs
}
