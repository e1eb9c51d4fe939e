package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/shortcut-edge/shortcut/train"
)

func init() {
	commands["experiment"] = command{"run a named experiment: degradation (plain vs ResNet, the paper's Figure 6)", runExperiment}
}

func runExperiment(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(os.Stderr, "usage: shortcut-train experiment degradation --data ... --epochs N --out DIR [fit flags]")
			return nil
		}
		return fmt.Errorf("which experiment? usage: shortcut-train experiment degradation --out DIR [flags]")
	}
	switch args[0] {
	case "degradation":
		return runDegradation(ctx, args[1:], stdout)
	}
	return fmt.Errorf("unknown experiment %q; known: degradation", args[0])
}

func parseDepths(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		d, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || d < 8 || (d-2)%6 != 0 {
			return nil, fmt.Errorf("--depths %q: %q is not a CIFAR depth 6k+2 >= 8 (8, 14, 20, 32, 44, 56, 110)", s, p)
		}
		out = append(out, d)
	}
	return out, nil
}

func runDegradation(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("experiment degradation")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: shortcut-train experiment degradation --out DIR [--depths 20,56] [fit flags]\n\n"+
			"Trains plain-d and ResNet-d for every depth d with the same recipe (one run directory each\n"+
			"under --out) and draws OUT/degradation.png in the style of He et al. 2016, Figure 6:\n"+
			"training error thin and dashed, validation error bold, plain nets left, ResNets right.\n"+
			"OUT/degradation.csv lists the final errors. --resume continues unfinished runs.\n\n")
		fs.PrintDefaults()
	}
	out := fs.String("out", "", "output directory")
	depths := fs.String("depths", "20,56", "comma-separated CIFAR depths (6k+2); e.g. 8,14 for a quick CPU run")
	f := addFitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("--out is required")
	}
	ds, err := parseDepths(*depths)
	if err != nil {
		return err
	}
	cfg, err := f.config(os.Stderr)
	if err != nil {
		return err
	}
	onRun := func(i, n int, arch string) {
		if !f.quiet {
			fmt.Fprintf(os.Stderr, "degradation: run %d/%d: %s\n", i, n, arch)
		}
	}
	res, err := train.Degradation(ctx, train.DegradationOptions{Base: cfg, Depths: ds, Out: *out, OnRun: onRun})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-10s %9s %9s %9s\n", "network", "train_err", "val_err", "test_err")
	for _, r := range res.Runs {
		tr, va := "-", "-"
		if n := len(r.Epochs); n > 0 {
			tr, va = pct(1-r.Epochs[n-1].TrainAcc), pct(1-r.Epochs[n-1].ValAcc)
		}
		fmt.Fprintf(stdout, "%-10s %9s %9s %9s\n", r.Arch, tr, va, pct(r.TestError))
	}
	fmt.Fprintf(stdout, "png=%s\ncsv=%s\n", res.PNG, res.CSV)
	return nil
}

func pct(v float64) string {
	if v != v {
		return "NaN"
	}
	return strconv.FormatFloat(100*v, 'f', 2, 64) + "%"
}
