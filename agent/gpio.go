package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"
)

// PinOpener finds a GPIO pin by its board name (GPIO17, P1_11, ...). Tests
// give periph.io's gpiotest pins; the default is the board's own.
type PinOpener func(name string) (gpio.PinIO, error)

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

// gpioUnit is the agent's pins: a button that teaches and trains, status
// LEDs, and outputs switched by detections. Its goroutine (run) watches
// the button and refreshes LEDs and outputs; pipelines report detections
// through observe.
type gpioUnit struct {
	a   *Agent
	log *slog.Logger

	button gpio.PinIO // nil: no button
	bcfg   ButtonConfig
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
	cfg       OutputConfig
	pin       gpio.PinIO
	on        bool
	lastMatch time.Time
}

// statusPeriod is how often LEDs and output hold times are refreshed.
const statusPeriod = 50 * time.Millisecond

// newGPIO opens every configured pin, listing all names that do not exist
// at once; nil when gpio names no pin.
func newGPIO(a *Agent) (*gpioUnit, error) {
	g := a.cfg.GPIO
	open := a.opt.OpenPin
	if open == nil {
		open = BoardPins
	}
	u := &gpioUnit{a: a, log: a.log.With("component", "gpio"), bcfg: g.Button}
	var errs []FieldError
	pin := func(path, name string) gpio.PinIO {
		p, err := open(name)
		if err != nil {
			errs = append(errs, FieldError{Path: path, Msg: err.Error()})
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
		return nil, &ConfigError{File: "(gpio pins)", Errors: errs}
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

// halt releases the pins (outputs and LEDs off).
func (u *gpioUnit) halt() {
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

// run watches the button and refreshes LEDs and outputs until ctx ends,
// then switches everything off.
func (u *gpioUnit) run(ctx context.Context) {
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
			u.halt()
			return
		case now := <-t.C:
			u.refresh(now)
		}
	}
}

// refresh sets the LEDs from the agent's health and states, and releases
// outputs whose hold time has passed.
func (u *gpioUnit) refresh(now time.Time) {
	if len(u.leds) > 0 {
		ready := u.a.Health().Status == "ready"
		detecting := false
		for _, c := range u.a.cams {
			if s, _ := c.state.Load().(string); s != "" && s != NoState {
				detecting = true
			}
		}
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

// observe is called by a pipeline for every classified frame.
func (u *gpioUnit) observe(camera, label string, score float64, now time.Time) {
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

func (u *gpioUnit) set(o *output, active bool) {
	if err := o.pin.Out(o.level(active)); err != nil {
		u.log.Warn("output pin failed", "pin", o.cfg.Pin, "err", err)
		u.a.met.errors.WithLabelValues("gpio").Inc()
		return
	}
	o.on = active
	ev := map[bool]string{true: "on", false: "off"}[active]
	u.a.met.gpioEvents.WithLabelValues(o.cfg.Pin, ev).Inc()
	u.log.Debug("output switched", "pin", o.cfg.Pin, "label", o.cfg.Label, "active", active)
}

// edgeWait bounds each wait for a button edge, so that the watcher notices
// ctx ending (a pin's WaitForEdge cannot be given a context).
const edgeWait = 100 * time.Millisecond

// watchButton turns button edges into presses: a release after less than
// long_press teaches one example, after long_press or more trains. After an
// edge it waits out the debounce time and acts on the level it then reads,
// so that contact bounce neither adds presses nor loses a release.
func (u *gpioUnit) watchButton(ctx context.Context) {
	b := u.bcfg
	var down bool
	var since time.Time
	for ctx.Err() == nil {
		if !u.button.WaitForEdge(edgeWait) {
			continue
		}
		at := time.Now()
		if b.Debounce > 0 && !sleepCtx(ctx, b.Debounce) {
			return
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

func (u *gpioUnit) press(held time.Duration) {
	name, event := CmdLearn, "short"
	payload := mustJSON(learnRequest{ID: "button", Label: u.bcfg.Label, Count: ptr(1), IntervalMS: ptr(0), Camera: u.bcfg.Camera})
	if held >= u.bcfg.LongPress {
		name, event, payload = CmdTrain, "long", []byte(`{"id":"button"}`)
	}
	u.a.met.gpioEvents.WithLabelValues(u.bcfg.Pin, event).Inc()
	u.log.Info("button pressed", "held", held.Round(time.Millisecond), "command", name)
	if u.a.learn == nil {
		u.log.Warn("button pressed but learning is off (learning.enabled: false)")
		return
	}
	u.a.learn.submit(command{name: name, payload: payload, from: "button"})
}

func ptr[T any](v T) *T { return &v }
