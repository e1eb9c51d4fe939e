// Package armnnwitness runs .tflite models through Arm NN, a second,
// independent implementation of TFLite's operators (Arm's C++ inference
// engine, Debian's 20.08 build), so that tests can hold Shortcut's runtime to
// a witness that shares no code with TFLite or XNNPACK.
//
// The work is done by tools/armnn-run/armnn_run.cpp, a small C++ program
// compiled on first use (once per process, cached under os.UserCacheDir by a
// hash of its source) with tools/armnn-run/build.sh. Tensors travel as .npy
// files: the caller writes the inputs with each input tensor's dtype and
// shape; the runner writes every output i to outDir/output_<i>.npy with the
// dtype the model declares (float32, int8 or uint8).
//
// On amd64 Debian ships only Arm NN's reference backend (CpuRef): plain
// loops, about 40-50 s for one int8 ResNet-50 inference, so give it small
// models. Its arithmetic is not TFLite's: exact on a single int8 conv, 1-2
// LSB apart on chains, up to 7 LSB after an int8 SOFTMAX. On arm64 Debian also
// ships libarmnn-cpuacc-backend22 (NEON), which the runner prefers when it is
// installed.
package armnnwitness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/shortcut-edge/shortcut/internal/repo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
)

// RootEnv overrides where the repository root (holding tools/armnn-run) is
// looked for.
const RootEnv = repo.RootEnv

// BackendsEnv, when set, is the comma-separated Arm NN backend list the
// runner asks for, in order of preference (for example "CpuRef" or
// "CpuAcc,CpuRef"). Unset means CpuAcc when installed, then CpuRef.
const BackendsEnv = "SHORTCUT_ARMNN_BACKENDS"

// Packages are the Debian packages the witness needs (plus g++).
const Packages = "libarmnn-dev libarmnntfliteparser-dev libarmnn-cpuref-backend22"

const (
	sourceDir  = "tools/armnn-run"
	sourceFile = "armnn_run.cpp"
	buildFile  = "build.sh"
	setupHint  = "run `make setup` or `apt-get install -y g++ " + Packages + "`"
)

// The runner's exit codes (see armnn_run.cpp).
const (
	exitUsage   = 2
	exitRefused = 3
)

// RefusedError reports that Arm NN itself would not take the model: its
// TFLite parser or its optimizer rejected an operator, a data type or a
// quantization scheme (or a file it cannot parse at all). For a valid model
// this is a gap in Arm NN 20.08, not a fault in the model; Msg is Arm NN's
// own text.
type RefusedError struct {
	Model string
	Msg   string
	// Aborted is set when Arm NN refused by failing one of its own
	// assert()s (the process died with SIGABRT) rather than by throwing.
	Aborted bool
}

func (e *RefusedError) Error() string {
	how := "refused"
	if e.Aborted {
		how = "aborted on"
	}
	return fmt.Sprintf("armnnwitness: Arm NN %s %s: %s", how, e.Model, e.Msg)
}

var (
	once    sync.Once
	binary  string
	findErr error
)

// Available reports whether the witness can run: the Arm NN headers and
// libraries are installed and the runner compiles. The first call compiles
// it (about a second) unless a cached build of the same source exists. The
// error says what is missing and what to do.
func Available() error {
	_, err := runner()
	return err
}

func runner() (string, error) {
	once.Do(func() { binary, findErr = compile() })
	return binary, findErr
}

// Run runs model once on the .npy inputs (in the model's input order) and
// writes output_<i>.npy for every model output into outDir, creating it if
// needed. When Arm NN rejects the model the error is a *RefusedError.
func Run(ctx context.Context, model string, inputs []string, outDir string) error {
	bin, err := runner()
	if err != nil {
		return err
	}
	if _, err := os.Stat(model); err != nil {
		return fmt.Errorf("armnnwitness: model: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("armnnwitness: output folder: %w", err)
	}
	// One --input per path, so that no path is ever read as a flag.
	args := []string{flagSafe(model)}
	for _, in := range inputs {
		args = append(args, "--input", in)
	}
	args = append(args, "--outdir", outDir)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("armnnwitness: %s: %w", model, ctx.Err())
	}
	msg := lastLine(stderr.String())
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case exitRefused:
			return &RefusedError{Model: model, Msg: strings.TrimPrefix(msg, "armnn-run: ")}
		case exitUsage:
			return fmt.Errorf("armnnwitness: %s: bad input: %s", model, msg)
		}
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// glibc prints "prog: file:line: function: Assertion `...' failed."
			if ws.Signal() == syscall.SIGABRT && strings.Contains(msg, "Assertion") {
				if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, filepath.Base(bin)) {
					msg = msg[i+2:]
				}
				return &RefusedError{Model: model, Msg: msg, Aborted: true}
			}
			return fmt.Errorf("armnnwitness: %s: armnn-run died (%v): %s", model, ws.Signal(), msg)
		}
	}
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("armnnwitness: %s: %s", model, msg)
}

// flagSafe keeps a relative path that starts with '-' from looking like a
// flag.
func flagSafe(path string) string {
	if strings.HasPrefix(path, "-") {
		return "." + string(filepath.Separator) + path
	}
	return path
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// compile builds the runner into the cache, keyed by everything that changes
// the binary: the source, the build script, the Arm NN headers' version and
// the architecture.
func compile() (string, error) {
	dir, err := sourcePath()
	if err != nil {
		return "", err
	}
	for _, h := range []string{"/usr/include/armnn/ArmNN.hpp", "/usr/include/armnnTfLiteParser/ITfLiteParser.hpp"} {
		if _, err := os.Stat(h); err != nil {
			return "", fmt.Errorf("armnnwitness: Arm NN is not installed (%s is missing): %s", h, setupHint)
		}
	}
	h := sha256.New()
	for _, f := range []string{filepath.Join(dir, sourceFile), filepath.Join(dir, buildFile), "/usr/include/armnn/Version.hpp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("armnnwitness: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s/%s\n", runtime.GOOS, runtime.GOARCH)
	key := hex.EncodeToString(h.Sum(nil))[:16]

	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "armnn-run-"+key)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	// Build beside the final name and rename, so that concurrent test
	// processes never run a half-written binary.
	tmp, err := os.CreateTemp(cache, "armnn-run-build-*")
	if err != nil {
		return "", fmt.Errorf("armnnwitness: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("sh", filepath.Join(dir, buildFile), tmp.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("armnnwitness: compiling %s failed (%v): %s\n(%s)", filepath.Join(dir, sourceFile), err, strings.TrimSpace(string(out)), setupHint)
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("armnnwitness: %w", err)
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("armnnwitness: %w", err)
	}
	return bin, nil
}

func cacheDir() (string, error) {
	var tried []string
	if base, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(base, "shortcut")
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d, nil
		}
		tried = append(tried, d)
	}
	d := filepath.Join(os.TempDir(), fmt.Sprintf("shortcut-cache-%d", os.Getuid()))
	if err := os.MkdirAll(d, 0o700); err == nil {
		return d, nil
	}
	tried = append(tried, d)
	return "", fmt.Errorf("armnnwitness: no writable cache folder for the runner (tried %s): set XDG_CACHE_HOME", strings.Join(tried, ", "))
}

// sourcePath finds tools/armnn-run: under $SHORTCUT_ROOT, else above the
// working directory or above this source file.
func sourcePath() (string, error) {
	dir, err := repo.Find(sourceDir + "/" + sourceFile)
	if err != nil {
		return "", fmt.Errorf("armnnwitness: %w", err)
	}
	return dir, nil
}
