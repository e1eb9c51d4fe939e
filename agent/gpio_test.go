package agent_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// fakePins are periph.io's test pins by name; a button pin gets an edge
// channel so that a test can press it.
type fakePins map[string]*gpiotest.Pin

func newPins(names ...string) fakePins {
	ps := fakePins{}
	for _, n := range names {
		ps[n] = &gpiotest.Pin{N: n, EdgesChan: make(chan gpio.Level)}
	}
	return ps
}

func (ps fakePins) open(name string) (gpio.PinIO, error) {
	if p, ok := ps[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no GPIO pin named %q on this board (known: the test's pins)", name)
}

// press pushes the button down (low: wired to ground) and, after held,
// lets it go.
func press(p *gpiotest.Pin, held time.Duration) {
	p.EdgesChan <- gpio.Low
	time.Sleep(held)
	p.EdgesChan <- gpio.High
}

func level(p *gpiotest.Pin) gpio.Level { return p.Read() }

// buttonAgent runs an agent with a button on pin BTN that teaches "cat".
func buttonAgent(t *testing.T, longPress time.Duration) (*commander, *gpiotest.Pin, string) {
	t.Helper()
	pins := newPins("BTN")
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras[0].FPS = 100
	cfg.GPIO.Button = agent.ButtonConfig{Pin: "BTN", Label: "cat", LongPress: longPress, ActiveLow: true, Pull: "up"}
	src := agenttest.Tensors(framesFor(0, 1)...)
	src.Loop = true
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1 - in[0], 0.5, 0.25} }
	a, _ := runAgent(t, cfg, agent.Options{OpenPin: pins.open,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	return newCommander(t, broker.URL(), "testdev"), pins["BTN"], "http://" + a.HTTPAddr()
}

// buttonReply waits for the reply/<name> that a button press caused.
func buttonReply(t *testing.T, c *commander, name string) agent.Reply {
	t.Helper()
	var r agent.Reply
	c.sub.WaitFor("shortcut/testdev/reply/"+name, "the button's "+name+" reply", func(ms []msg) bool {
		for _, m := range ms {
			if json.Unmarshal([]byte(m.Payload), &r) == nil && r.ID == "button" {
				return true
			}
		}
		return false
	})
	return r
}

func TestAShortButtonPressTeachesOneExampleOfTheConfiguredLabel(t *testing.T) {
	cmd, btn, base := buttonAgent(t, time.Hour) // every press is short
	if btn.P != gpio.PullUp {
		t.Errorf("button pull %v, want the configured pull-up", btn.P)
	}
	press(btn, 0)
	r := buttonReply(t, cmd, agent.CmdLearn)
	var res agent.LearnResult
	json.Unmarshal(r.Result, &res)
	if !r.OK || res.Label != "cat" || res.Added != 1 || res.Camera != "front" {
		t.Errorf("the press's learn reply %+v (%+v); want one example of cat from front", r, res)
	}
	press(btn, 0)
	var labels agent.LabelsResult
	waitUntil(t, "the second press's example", func() bool {
		cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
		return len(labels.Labels) == 1 && labels.Labels[0].Count == 2
	})
	if v := metricValue(metricsText(t, base), `shortcut_gpio_events_total{event="short",pin="BTN"}`); v != 2 {
		t.Errorf("shortcut_gpio_events_total short = %v, want 2", v)
	}
}

func TestALongButtonPressTrainsTheHead(t *testing.T) {
	cmd, btn, _ := buttonAgent(t, time.Millisecond) // every press is long
	cmd.ok(agent.CmdLearn, map[string]any{"label": "cat", "count": 3, "interval_ms": 0}, nil)
	press(btn, 20*time.Millisecond)
	r := buttonReply(t, cmd, agent.CmdTrain)
	var h agent.HeadInfo
	json.Unmarshal(r.Result, &h)
	if !r.OK || h.Version == "" || len(h.Labels) != 1 || h.Labels[0] != "cat" {
		t.Errorf("the long press's train reply %+v (%+v); want a head of the taught label", r, h)
	}
}

func TestOutputsFollowTheirRuleAndLEDsShowTheAgentsState(t *testing.T) {
	pins := newPins("HOLD0", "HOLDLONG", "RELAY", "READY", "DETECT", "ERROR")
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Cameras[0].FPS = 100
	cfg.GPIO.LEDs = agent.LEDConfig{Ready: "READY", Detecting: "DETECT", Error: "ERROR"}
	cfg.GPIO.Outputs = []agent.OutputConfig{
		{Pin: "HOLD0", Label: "cat", MinScore: 0.8, Hold: 0},
		{Pin: "HOLDLONG", Label: "cat", MinScore: 0.8, Hold: time.Hour, Camera: "front"},
		{Pin: "RELAY", Label: "dog", MinScore: 0.5, Hold: 0, ActiveLow: true},
	}
	var scene atomic.Int32 // a row of contractTable: 0 cat 0.9, 1 dog 0.7, 3 nothing
	scene.Store(3)
	model := fakeModel(contractTable)
	model.Fn = func([]float32) []float32 { return contractTable[scene.Load()] }
	src := agenttest.Tensors(framesFor(0)...)
	src.Loop = true
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(), OpenPin: pins.open,
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// Outputs start inactive: low, or high for an active-low pin.
	for name, want := range map[string]gpio.Level{"HOLD0": gpio.Low, "HOLDLONG": gpio.Low, "RELAY": gpio.High, "READY": gpio.Low} {
		if got := level(pins[name]); got != want {
			t.Errorf("%s is %v before anything ran, want %v", name, got, want)
		}
	}
	stop := running(t, a)
	waitFor := func(what string, want map[string]gpio.Level) {
		t.Helper()
		waitUntil(t, what, func() bool {
			for name, l := range want {
				if level(pins[name]) != l {
					return false
				}
			}
			return true
		})
	}
	waitFor("ready LED on, error LED off, nothing detected", map[string]gpio.Level{"READY": gpio.High, "ERROR": gpio.Low, "DETECT": gpio.Low})

	scene.Store(0)
	waitFor("a cat: both cat outputs on, the detecting LED on", map[string]gpio.Level{"HOLD0": gpio.High, "HOLDLONG": gpio.High, "DETECT": gpio.High, "RELAY": gpio.High})
	scene.Store(1)
	waitFor("a dog: the active-low relay pulled low, the cat output without hold off", map[string]gpio.Level{"RELAY": gpio.Low, "HOLD0": gpio.Low})
	scene.Store(3)
	waitFor("nothing: the relay released and the state none", map[string]gpio.Level{"RELAY": gpio.High, "DETECT": gpio.Low})
	if level(pins["HOLDLONG"]) != gpio.High {
		t.Errorf("the output with an hour's hold went off after a few frames without a cat")
	}

	broker.Stop()
	waitFor("the broker gone: error LED on, ready LED off", map[string]gpio.Level{"ERROR": gpio.High, "READY": gpio.Low})
	m := metricsText(t, "http://"+a.HTTPAddr())
	stop()
	for name, want := range map[string]gpio.Level{"HOLDLONG": gpio.Low, "RELAY": gpio.High, "ERROR": gpio.Low} {
		if got := level(pins[name]); got != want {
			t.Errorf("%s is %v after the agent stopped, want %v (everything released)", name, got, want)
		}
	}
	if v := metricValue(m, `shortcut_gpio_events_total{event="on",pin="RELAY"}`); v != 1 {
		t.Errorf("shortcut_gpio_events_total on RELAY = %v, want 1", v)
	}
}

func TestPinsThatTheBoardDoesNotHaveStopTheAgentAtStartWithTheirKeys(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1")
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.GPIO.Button = agent.ButtonConfig{Pin: "GPIO99", Label: "cat", LongPress: time.Second, ActiveLow: true, Pull: "up"}
	cfg.GPIO.LEDs.Ready = "GPIO98"
	cfg.GPIO.Outputs = []agent.OutputConfig{{Pin: "LED1", Label: "cat", MinScore: 0.5}}
	load := func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }
	for _, tc := range []struct {
		name    string
		open    agent.PinOpener
		missing []string
	}{
		{"pins missing from the opener", newPins("LED1").open, []string{"gpio.button.pin", "GPIO99", "gpio.leds.ready", "GPIO98"}},
		// The real path: periph.io's drivers on this machine, which has no
		// GPIO pins of these names.
		{"pins missing from the board", nil, []string{"gpio.button.pin", "GPIO99", "gpio.leds.ready", "gpio.outputs[0].pin", "LED1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.New(cfg, agent.Options{Logger: quietLog(), OpenPin: tc.open, LoadModel: load})
			var ce *agent.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("New = %v, want a *agent.ConfigError", err)
			}
			for _, s := range tc.missing {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not name %s:\n%v", s, err)
				}
			}
			if tc.open != nil && strings.Contains(err.Error(), "gpio.outputs") {
				t.Errorf("the pin that exists is reported:\n%v", err)
			}
		})
	}
}
