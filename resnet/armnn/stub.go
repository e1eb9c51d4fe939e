//go:build !armnn

package armnn

// Available reports whether Arm NN can be used; without the armnn build tag
// it never can.
func Available() error { return ErrNotBuilt }

// Registered lists the Arm NN backends installed; none without the tag.
func Registered() []string { return nil }

// Version is Arm NN's version; empty without the tag.
func Version() string { return "" }

// Net is a model loaded into Arm NN. Without the armnn tag none can be made.
type Net struct{}

// Load always fails with ErrNotBuilt (after checking its arguments).
func Load(model []byte, o Options) (*Net, error) {
	if err := checkOptions(model, o); err != nil {
		return nil, err
	}
	return nil, ErrNotBuilt
}

func (n *Net) Inputs() []TensorInfo  { return nil }
func (n *Net) Outputs() []TensorInfo { return nil }
func (n *Net) Backends() string      { return "" }
func (n *Net) Close()                {}

// NewSession is never reached: no Net exists without the tag.
func (n *Net) NewSession() *Session { return &Session{} }

// Session runs a Net from one goroutine.
type Session struct{}

func (s *Session) Input() []float32        { return nil }
func (s *Session) Run() ([]float32, error) { return nil, ErrNotBuilt }
func (s *Session) Embedding() []float32    { return nil }
