package agent

import (
	"github.com/shortcut-edge/shortcut/agent/pins"
)

// PinOpener finds a GPIO pin by its board name (pins.PinOpener).
type PinOpener = pins.PinOpener

// BoardPins is the default PinOpener: the board's pins through periph.io.
var BoardPins = pins.BoardPins

// newPins opens the pins gpio names (nil when it names none) and ties them
// to the agent: LEDs from its health and states, the button to learning.
func (a *Agent) newPins() (*pins.Unit, error) {
	return pins.New(a.cfg.GPIO, a.opt.OpenPin, pins.Host{
		Ready:     func() bool { return a.Health().Status == "ready" },
		Detecting: a.detecting,
		Press:     a.buttonPressed,
	}, a.log.With("component", "gpio"), pins.Metrics{Errors: a.met.errors.WithLabelValues("gpio"), Events: a.met.gpioEvents})
}

// detecting says whether some camera has a debounced label.
func (a *Agent) detecting() bool {
	for _, c := range a.cams {
		if s, _ := c.state.Load().(string); s != "" && s != NoState {
			return true
		}
	}
	return false
}

// buttonPressed turns a press into a command: a short press teaches one
// example of gpio.button.label, a long one trains.
func (a *Agent) buttonPressed(long bool) {
	b := a.cfg.GPIO.Button
	name, payload := CmdLearn, mustJSON(learnRequest{ID: "button", Label: b.Label, Count: ptr(1), IntervalMS: ptr(0), Camera: b.Camera})
	if long {
		name, payload = CmdTrain, []byte(`{"id":"button"}`)
	}
	if a.learn == nil {
		a.log.Warn("button pressed but learning is off (learning.enabled: false)", "command", name)
		return
	}
	a.learn.submit(command{name: name, payload: payload, from: "button"})
}

func ptr[T any](v T) *T { return &v }
