// Package backend chooses where GoMLX training runs: on the CPU with GoMLX's pure-Go backend
// (completed here with the ops convolutional-net training needs), or on an accelerator through
// an XLA PJRT plugin given by path.
//
// Specs, from the --backend flag or the GOMLX_BACKEND environment variable:
//
//	cpu                      pure Go, no cgo libraries, any machine
//	xla:/path/to/plugin.so   XLA with that PJRT plugin (e.g. xla_cuda_plugin.so shipped with JAX)
//	xla:cuda | xla:cpu       XLA plugin found by name (GoMLX may try to install it unless
//	                         GOMLX_NO_AUTO_INSTALL is set)
package backend

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/backends/xla"
)

// EnvVar names the environment variable read when no spec is given.
const EnvVar = "GOMLX_BACKEND"

// Kind says which family a backend belongs to; models pick their op implementations by it.
type Kind int

const (
	// CPU is GoMLX's pure-Go backend with the composed ops of this package.
	CPU Kind = iota
	// XLA is a PJRT plugin (GPU, TPU or XLA's own CPU).
	XLA
)

func (k Kind) String() string {
	if k == XLA {
		return "xla"
	}
	return "cpu"
}

// KindOf reports the family of a backend made by New.
func KindOf(b backends.Backend) Kind {
	if _, ok := b.(*filledBackend); ok {
		return CPU
	}
	if b != nil && b.Name() == simplego.BackendName {
		return CPU
	}
	return XLA
}

// Resolve returns the spec to use: spec itself, else $GOMLX_BACKEND, else "cpu".
func Resolve(spec string) string {
	if spec = strings.TrimSpace(spec); spec != "" {
		return spec
	}
	if env := strings.TrimSpace(os.Getenv(EnvVar)); env != "" {
		return env
	}
	return "cpu"
}

// New creates the backend named by spec (see the package comment); an empty spec reads
// $GOMLX_BACKEND and falls back to "cpu".
func New(spec string) (backends.Backend, error) {
	spec = Resolve(spec)
	name, config, _ := strings.Cut(spec, ":")
	switch name {
	case "cpu", "go", "simplego":
		return NewCPU()
	case "xla", "stablehlo":
		return newXLA(config)
	default:
		return nil, fmt.Errorf("backend %q: unknown kind %q; use \"cpu\" or \"xla:/path/to/pjrt_plugin.so\" "+
			"(flag --backend or $%s)", spec, name, EnvVar)
	}
}

// simplegoConfig sets unlimited worker goroutines. simplego v0.26.0's default pool (2 x NumCPU
// slots) deadlocks on small machines: ops running in pool workers block waiting for free slots
// for their own sub-tasks (seen on 2 cores: 3 hangs in 15 runs of a ResNet forward+backward).
// Unlimited goroutines never wait, and were also the fastest setting measured (ResNet-8,
// 28x28, batch 64: 185 img/s against 171 for the default and 134 for ops_sequential); the
// Go scheduler still runs only GOMAXPROCS of them at a time.
const simplegoConfig = "parallelism=-1"

var stdoutMu sync.Mutex

// NewCPU returns GoMLX's pure-Go backend completed with the ops training needs.
func NewCPU() (backends.Backend, error) {
	// simplego prints its parallelism setting to stdout; keep stdout for our own output.
	stdoutMu.Lock()
	saved := os.Stdout
	if devNull, err := os.Open(os.DevNull); err == nil {
		os.Stdout = devNull
		defer devNull.Close()
	}
	b, err := simplego.New(simplegoConfig)
	os.Stdout = saved
	stdoutMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("backend cpu: %w", err)
	}
	return &filledBackend{Backend: b}, nil
}

func newXLA(config string) (backends.Backend, error) {
	plugin, _, _ := strings.Cut(config, ",")
	if plugin == "" {
		return nil, errors.New(`backend "xla": no PJRT plugin given; use "xla:/path/to/xla_cuda_plugin.so" ` +
			`(JAX ships it as jax_plugins/xla_cuda*/xla_cuda_plugin.so) or "cpu"`)
	}
	if filepath.IsAbs(plugin) || strings.ContainsRune(plugin, os.PathSeparator) {
		abs, err := filepath.Abs(plugin)
		if err != nil {
			return nil, fmt.Errorf("backend xla: plugin path %q: %w", plugin, err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("backend xla: PJRT plugin %q not found (%v); give the path of an existing "+
				"pjrt plugin .so with --backend xla:/path/plugin.so or $%s, or train on the CPU with --backend cpu",
				abs, err, EnvVar)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("backend xla: PJRT plugin path %q is a directory; give the .so file inside it", abs)
		}
		config = abs + strings.TrimPrefix(config, plugin)
	}
	b, err := safeNew(func() (backends.Backend, error) { return xla.New(config) })
	if err != nil {
		return nil, fmt.Errorf("backend xla:%s: %w; check that the plugin matches this machine's accelerator and "+
			"drivers (CUDA libraries on LD_LIBRARY_PATH), or use --backend cpu", config, err)
	}
	return b, nil
}

// safeNew turns a panic of a backend constructor into an error.
func safeNew(f func() (backends.Backend, error)) (b backends.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return f()
}
