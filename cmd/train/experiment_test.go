package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDegradationExperimentDrawsBothPanelsAndTabulates(t *testing.T) {
	needFashion(t)
	out := filepath.Join(t.TempDir(), "deg")
	args := []string{"experiment", "degradation", "--depths", "8,14", "--out", out, "--width", "4", "--recipe", "seed", "--lr", "3e-3", "--epochs", "2", "--train-limit", "256",
		"--test-limit", "100", "--downsample", "2", "--workers", "2", "--quiet"}
	code, stdout, stderr := cli(args...)
	if code != 0 {
		t.Fatalf("experiment degradation: exit %d: %s", code, stderr)
	}
	if w, h := isPNG(t, filepath.Join(out, "degradation.png")); w <= h {
		t.Errorf("degradation.png is %dx%d; want two panels side by side (wider than high)", w, h)
	}
	f, err := os.Open(filepath.Join(out, "degradation.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, r := range rows[1:] {
		archs = append(archs, r[0])
		if r[3] != "2" {
			t.Errorf("%s: %s epochs in the table, want 2", r[0], r[3])
		}
	}
	if got := strings.Join(archs, ","); got != "plain8,plain14,resnet8,resnet14" || rows[0][4] != "final_train_error" {
		t.Errorf("degradation.csv header %v, networks %s; want plain8,plain14,resnet8,resnet14", rows[0], got)
	}
	for _, a := range archs {
		if _, err := os.Stat(filepath.Join(out, a, "metrics.csv")); err != nil {
			t.Errorf("no run directory for %s: %v", a, err)
		}
		if !strings.Contains(stdout, a) {
			t.Errorf("summary does not list %s:\n%s", a, stdout)
		}
	}
	if value(t, stdout, "png") != filepath.Join(out, "degradation.png") {
		t.Errorf("output does not name the PNG:\n%s", stdout)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad depth", []string{"experiment", "degradation", "--depths", "8,15", "--out", out}, "15"},
		{"no out", []string{"experiment", "degradation"}, "--out"},
		{"unknown experiment", []string{"experiment", "scaling"}, "scaling"},
		{"no experiment", []string{"experiment"}, "degradation"},
	} {
		code, _, stderr := cli(tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%s: exit %d, stderr %q; want one error line mentioning %q", tc.name, code, stderr, tc.want)
		}
	}
}
