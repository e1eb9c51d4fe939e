// Package pins is the agent's GPIO (periph.io): a button that teaches and
// trains, status LEDs, and outputs switched by detections.
package pins

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/shortcut-edge/shortcut/agent/config"
)

// PinOpener finds a GPIO pin by its board name (GPIO17, P1_11, ...). Tests
// give periph.io's gpiotest pins; the default is the board's own.
type PinOpener func(name string) (gpio.PinIO, error)

// Host is what the pins need from the agent.
type Host struct {
	Ready     func() bool // the agent is ready (/healthz): the ready LED, else the error LED
	Detecting func() bool // some camera has a debounced label: the detecting LED
	// Press is a button press: a short one teaches an example of
	// gpio.button.label, a long one (gpio.button.long_press) trains.
	Press func(long bool)
}

// Metrics are the series the pins count; the agent owns their registry.
type Metrics struct {
	Errors prometheus.Counter     // a pin that failed to switch
	Events *prometheus.CounterVec // by pin and event (on, off, short, long)
}

var (
	hostOnce sync.Once
	hostErr  error
)

// BoardPins is the default PinOpener: periph.io's host drivers (host.Init,
// once per process) and its pin registry.
func BoardPins(name string) (gpio.PinIO, error) {
	hostOnce.Do(func() { _, hostErr = host.Init() })
	if hostErr != nil {
		return nil, fmt.Errorf("pin %q: the GPIO drivers did not start (periph.io host.Init): %w", name, hostErr)
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	var names []string
	for _, p := range gpioreg.All() {
		names = append(names, p.Name())
	}
	sort.Strings(names)
	known := "none: this board exposes no GPIO pins to this process (check /dev/gpiochip* and the gpio group)"
	if len(names) > 0 {
		if len(names) > 40 {
			names = append(names[:40], "...")
		}
		known = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("no GPIO pin named %q on this board (known: %s)", name, known)
}

// Unit is the agent's pins: a button that teaches and trains, status
// LEDs, and outputs switched by detections. Its goroutine (run) watches
// the button and refreshes LEDs and outputs; pipelines report detections
// through observe.
type Unit struct {
	host Host
	log  *slog.Logger
	met  Metrics

	button gpio.PinIO // nil: no button
	bcfg   config.ButtonConfig
	leds   []led
	outs   []*output

	mu sync.Mutex // guards outs' state
}

type led struct {
	role string // ready, detecting, error
	pin  gpio.PinIO
	on   bool
}

type output struct {
	cfg       config.OutputConfig
	pin       gpio.PinIO
	on        bool
	lastMatch time.Time
}

// statusPeriod is how often LEDs and output hold times are refreshed.
const statusPeriod = 50 * time.Millisecond

// New opens every pin g names (with open; nil: BoardPins), listing all
// names that do not exist at once; nil when g names no pin.
func New(g config.GPIOConfig, open PinOpener, host Host, log *slog.Logger, met Metrics) (*Unit, error) {
	if open == nil {
		open = BoardPins
	}
	u := &Unit{host: host, log: log, met: met, bcfg: g.Button}
	var errs []config.FieldError
	pin := func(path, name string) gpio.PinIO {
		p, err := open(name)
		if err != nil {
			errs = append(errs, config.FieldError{Path: path, Msg: err.Error()})
			return nil
		}
		return p
	}
	if g.Button.Pin != "" {
		u.button = pin("gpio.button.pin", g.Button.Pin)
	}
	for _, l := range []struct{ role, path, name string }{
		{"ready", "gpio.leds.ready", g.LEDs.Ready}, {"detecting", "gpio.leds.detecting", g.LEDs.Detecting}, {"error", "gpio.leds.error", g.LEDs.Error},
	} {
		if l.name != "" {
			u.leds = append(u.leds, led{role: l.role, pin: pin(l.path, l.name)})
		}
	}
	for i, o := range g.Outputs {
		u.outs = append(u.outs, &output{cfg: o, pin: pin(fmt.Sprintf("gpio.outputs[%d].pin", i), o.Pin)})
	}
	if len(errs) > 0 {
		return nil, &config.Error{File: "(gpio pins)", Errors: errs}
	}
	if u.button == nil && len(u.leds) == 0 && len(u.outs) == 0 {
		return nil, nil
	}
	if u.button != nil {
		pull := map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float}[g.Button.Pull]
		if err := u.button.In(pull, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("gpio.button.pin %q: cannot watch it as an input with edges: %w", g.Button.Pin, err)
		}
	}
	for _, l := range u.leds {
		if err := l.pin.Out(gpio.Low); err != nil {
			return nil, fmt.Errorf("gpio.leds.%s %q: cannot drive it: %w", l.role, l.pin.Name(), err)
		}
	}
	for i, o := range u.outs {
		if err := o.pin.Out(o.level(false)); err != nil {
			return nil, fmt.Errorf("gpio.outputs[%d].pin %q: cannot drive it: %w", i, o.cfg.Pin, err)
		}
	}
	return u, nil
}

func (o *output) level(active bool) gpio.Level {
	return gpio.Level(active != o.cfg.ActiveLow)
}

// Halt releases the pins (outputs and LEDs off).
func (u *Unit) Halt() {
	if u == nil {
		return
	}
	u.mu.Lock()
	for _, o := range u.outs {
		o.pin.Out(o.level(false))
		o.on = false
	}
	u.mu.Unlock()
	for i := range u.leds {
		u.leds[i].pin.Out(gpio.Low)
	}
	if u.button != nil {
		u.button.Halt()
	}
}

// Run watches the button and refreshes LEDs and outputs until ctx ends,
// then switches everything off.
func (u *Unit) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if u.button != nil {
		wg.Go(func() { u.watchButton(ctx) })
	}
	t := time.NewTicker(statusPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			u.Halt()
			return
		case now := <-t.C:
			u.refresh(now)
		}
	}
}

// refresh sets the LEDs from the agent's health and states, and releases
// outputs whose hold time has passed.
func (u *Unit) refresh(now time.Time) {
	if len(u.leds) > 0 {
		ready, detecting := u.host.Ready(), u.host.Detecting()
		for i := range u.leds {
			l := &u.leds[i]
			want := map[string]bool{"ready": ready, "error": !ready, "detecting": detecting}[l.role]
			if want != l.on {
				if err := l.pin.Out(gpio.Level(want)); err != nil {
					u.log.Warn("LED pin failed", "led", l.role, "pin", l.pin.Name(), "err", err)
					continue
				}
				l.on = want
			}
		}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, o := range u.outs {
		// Frames release outputs (observe); this is for a camera that
		// stopped giving frames while an output was on.
		if o.on && now.Sub(o.lastMatch) >= max(o.cfg.Hold, staleOutput) {
			u.set(o, false)
		}
	}
}

// staleOutput releases an output whose camera gives no frames at all.
const staleOutput = time.Second

// Observe is called by a pipeline for every classified frame.
func (u *Unit) Observe(camera, label string, score float64, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, o := range u.outs {
		if o.cfg.Camera != "" && o.cfg.Camera != camera {
			continue
		}
		switch {
		case label == o.cfg.Label && score >= o.cfg.MinScore:
			o.lastMatch = now
			if !o.on {
				u.set(o, true)
			}
		case o.on && now.Sub(o.lastMatch) >= o.cfg.Hold:
			u.set(o, false)
		}
	}
}

func (u *Unit) set(o *output, active bool) {
	if err := o.pin.Out(o.level(active)); err != nil {
		u.log.Warn("output pin failed", "pin", o.cfg.Pin, "err", err)
		u.met.Errors.Inc()
		return
	}
	o.on = active
	ev := map[bool]string{true: "on", false: "off"}[active]
	u.met.Events.WithLabelValues(o.cfg.Pin, ev).Inc()
	u.log.Debug("output switched", "pin", o.cfg.Pin, "label", o.cfg.Label, "active", active)
}

// edgeWait bounds each wait for a button edge, so that the watcher notices
// ctx ending (a pin's WaitForEdge cannot be given a context).
const edgeWait = 100 * time.Millisecond

// watchButton turns button edges into presses: a release after less than
// long_press teaches one example, after long_press or more trains. After an
// edge it waits out the debounce time and acts on the level it then reads,
// so that contact bounce neither adds presses nor loses a release.
func (u *Unit) watchButton(ctx context.Context) {
	b := u.bcfg
	var down bool
	var since time.Time
	for ctx.Err() == nil {
		if !u.button.WaitForEdge(edgeWait) {
			continue
		}
		at := time.Now()
		if b.Debounce > 0 {
			select { // wait out the bounce, unless the agent stops
			case <-time.After(b.Debounce):
			case <-ctx.Done():
				return
			}
		}
		pressed := (u.button.Read() == gpio.Low) == b.ActiveLow
		switch {
		case pressed && !down:
			down, since = true, at
		case !pressed && down:
			down = false
			u.press(at.Sub(since))
		}
	}
}

func (u *Unit) press(held time.Duration) {
	long := held >= u.bcfg.LongPress
	u.met.Events.WithLabelValues(u.bcfg.Pin, map[bool]string{false: "short", true: "long"}[long]).Inc()
	u.log.Info("button pressed", "held", held.Round(time.Millisecond), "long", long)
	u.host.Press(long)
}
