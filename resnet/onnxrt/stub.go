//go:build !onnxruntime

package onnxrt

import "github.com/shortcut-edge/shortcut/resnet"

// Net is a model loaded in ONNX Runtime; this build has none.
type Net struct{}

// Session runs a Net from one goroutine; this build has none.
type Session struct{}

// Built reports whether this binary can run ONNX Runtime.
func Built() bool { return false }

// Load returns ErrNotBuilt: this binary was built without the onnxruntime tag.
func Load(*resnet.Model, Options) (*Net, error) { return nil, ErrNotBuilt }

func (*Net) NewSession() (*Session, error) { return nil, ErrNotBuilt }
func (*Net) Close()                        {}
func (*Net) Provider() Provider            { return "" }
func (*Session) Input() []float32          { return nil }
func (*Session) Run() ([]float32, error)   { return nil, ErrNotBuilt }
func (*Session) Embedding() []float32      { return nil }
func (*Session) Close()                    {}
