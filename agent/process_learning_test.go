package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
	"github.com/shortcut-edge/shortcut/train/data"
)

// The tests here drive the built shortcut-agent from outside, as a user
// does: a configuration file, a real mosquitto, commands published with
// the mosquitto clients or paho.

// writeFashionPNGs writes the first n Fashion-MNIST test images (Debian's
// dataset-fashion-mnist) as grey PNGs into dir: a camera for the demo model.
func writeFashionPNGs(t *testing.T, dir string, n int) {
	t.Helper()
	const fashion = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
	count, rows, cols, pixels, err := data.ReadIDXImages(fashion)
	if err != nil {
		t.Fatalf("%v (install the Debian package dataset-fashion-mnist)", err)
	}
	os.MkdirAll(dir, 0o755)
	for i := range min(n, count) {
		img := image.NewGray(image.Rect(0, 0, cols, rows))
		for k := range rows * cols {
			img.Pix[k] = pixels[i*rows*cols+k]
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// agentProcess is the built binary running one configuration.
type agentProcess struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *syncBuffer
	base string // http://host:port of /healthz
	done chan struct{}
}

// startAgentProcess starts bin -config cfg and waits until /healthz (on
// httpAddr) says the command subscription is acknowledged. The process is
// stopped when the test ends; its log is shown when the test failed.
func startAgentProcess(t *testing.T, bin, cfg, httpAddr string) *agentProcess {
	t.Helper()
	p := &agentProcess{t: t, logs: &syncBuffer{}, base: "http://" + httpAddr, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "-config", cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(agenttest.WaitLimit)
	for {
		select {
		case <-p.done:
			t.Fatalf("the agent exited at start: %v\n%s", p.cmd.ProcessState, p.logs.String())
		default:
		}
		if resp, err := http.Get(p.base + "/healthz"); err == nil {
			var h agent.Health
			json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.MQTT.Commands {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not subscribe to its commands within %v:\n%s", agenttest.WaitLimit, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process as systemd does (SIGTERM) and waits for it.
func (p *agentProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(agenttest.WaitLimit):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("the agent did not stop within %v of SIGTERM", agenttest.WaitLimit)
	}
}

// waitLog waits until the agent's log holds s.
func (p *agentProcess) waitLog(s string) {
	p.t.Helper()
	agenttest.WaitUntil(p.t, fmt.Sprintf("%q in the agent's log", s), func() bool { return strings.Contains(p.logs.String(), s) })
}

// writeAgentConfig writes a configuration for the binary: device id, one
// camera "front" looping over the PNGs in imgs, the broker, HTTP on
// httpAddr, learning in stateDir. extra is appended as it is.
func writeAgentConfig(t *testing.T, path, device, model, imgs, brokerURL, httpAddr, stateDir, extra string) {
	t.Helper()
	yaml := fmt.Sprintf(`device: {id: %s}
model: {path: %q, watch: false}
cameras:
  - {id: front, source: "images:%s/*.png?loop=1", fps: 20}
mqtt: {broker: %q, keepalive: 60s, reconnect_min: 100ms, reconnect_max: 500ms, predictions: {max_rate: 0}}
http: {address: %q}
learning: {state_dir: %q}
log: {level: debug}
%s`, device, model, imgs, brokerURL, httpAddr, stateDir, extra)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nextReply waits for the reply to the command published after the topic
// held `before` messages, and returns it.
func nextReply(t *testing.T, sub *agenttest.Subscriber, topic string, before int, what string) agent.Reply {
	t.Helper()
	ms := sub.WaitFor(topic, "the reply to "+what, agenttest.AtLeast(before+1))
	var r agent.Reply
	if err := json.Unmarshal([]byte(ms[before].Payload), &r); err != nil {
		t.Fatalf("reply to %s is not JSON: %v\n%s", what, err, ms[before].Payload)
	}
	return r
}

// docCommands returns the mosquitto_pub command lines of a Markdown file,
// in order, continuation lines joined.
func docCommands(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	return regexp.MustCompile("mosquitto_pub [^`\n]*").FindAllString(text, -1)
}

// TestTheLearningWalkthroughRunsOnTheDemoModel runs every mosquitto_pub of
// agent/LEARNING.md, as written and in its order, against the built agent
// on the demo model of `make run` (labels such as "T-shirt/top") and a real
// mosquitto, and checks each reply. Only the broker's port is added, and
// the import names the file the export replied instead of the page's
// example.
func TestTheLearningWalkthroughRunsOnTheDemoModel(t *testing.T) {
	if _, err := exec.LookPath("mosquitto_pub"); err != nil {
		t.Fatalf("mosquitto_pub is not installed (apt-get install mosquitto-clients): %v", err)
	}
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	model := demoModelPath(t)

	// Step 0: the model says it can learn.
	out, err := exec.Command(bin, "--check-model", "--model", model).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "on-device learning available") {
		t.Fatalf("--check-model on the demo model: %v\n%s", err, out)
	}

	imgs := filepath.Join(dir, "camera")
	writeFashionPNGs(t, imgs, 30)
	broker := startMosquitto(t, 0)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "agent.yaml")
	stateDir := filepath.Join(dir, "state")
	writeAgentConfig(t, cfg, "kitchen", model, imgs, broker.URL(), httpAddr, stateDir, "")
	if out, err := exec.Command(bin, "--check-config", "-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("--check-config: %v\n%s", err, out)
	}
	sub := subscribe(t, broker.URL(), "shortcut/kitchen/reply/#", "shortcut/kitchen/front/prediction")
	proc := startAgentProcess(t, bin, cfg, httpAddr)

	commands := docCommands(t, "LEARNING.md")
	if len(commands) < 8 {
		t.Fatalf("found %d mosquitto_pub commands in LEARNING.md, want the walkthrough's (at least 8): %q", len(commands), commands)
	}
	topicOf := regexp.MustCompile(`-t (shortcut/kitchen/cmd/(\w+))`)
	exportFile := regexp.MustCompile(`export-h-[0-9a-f]{12}\.tflite`)
	var exported agent.ExportResult
	results := map[string]agent.Reply{}
	for i, line := range commands {
		m := topicOf.FindStringSubmatch(line)
		if m == nil || !strings.Contains(line, "-h localhost ") {
			t.Fatalf("LEARNING.md command %d does not publish to shortcut/kitchen/cmd/<command> on localhost: %s", i, line)
		}
		name := m[2]
		line = strings.Replace(line, "-h localhost ", fmt.Sprintf("-h 127.0.0.1 -p %d ", broker.Port), 1)
		if exported.Path != "" {
			line = exportFile.ReplaceAllString(line, filepath.Base(exported.Path))
		}
		topic := "shortcut/kitchen/reply/" + name
		before := len(sub.On(topic))
		if out, err := exec.Command("bash", "-c", line).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		r := nextReply(t, sub, topic, before, line)
		t.Logf("%s\n  -> ok=%v code=%q %s%s", line, r.OK, r.Code, r.Error, r.Warning)
		if !r.OK || r.Warning != "" {
			t.Fatalf("LEARNING.md step %q on the demo model: %s: %s %s", line, r.Code, r.Error, r.Warning)
		}
		results[name] = r
		switch name {
		case agent.CmdLearn:
			var lr agent.LearnResult
			json.Unmarshal(r.Result, &lr)
			if lr.Added != 20 || lr.Camera != "front" {
				t.Errorf("learn result %+v; want the 20 examples the page asks for, from camera front", lr)
			}
			if lr.Label == "empty" {
				// The page suggests teaching the model's own label for a
				// scene: the demo model's labels have a '/'.
				before := len(sub.On(topic))
				sub.Publish("shortcut/kitchen/cmd/learn", []byte(`{"id": "own", "label": "T-shirt/top", "count": 5, "interval_ms": 0}`))
				if r := nextReply(t, sub, topic, before, "learn T-shirt/top"); !r.OK {
					t.Fatalf("learning the model's own label \"T-shirt/top\": %s: %s", r.Code, r.Error)
				}
				before = len(sub.On(topic))
				sub.Publish("shortcut/kitchen/cmd/learn", []byte(`{"id": "typed", "label": "shirt/top", "count": 1}`))
				if r := nextReply(t, sub, topic, before, "learn shirt/top"); r.OK || r.Code != "invalid" || !strings.Contains(r.Error, "not allowed") {
					t.Errorf("a new label with a '/' (not one of the model's): %+v; want invalid", r)
				}
			}
		case agent.CmdLabels:
			var lr agent.LabelsResult
			json.Unmarshal(r.Result, &lr)
			if !slices.Contains(lr.ModelLabels, "T-shirt/top") || len(lr.Labels) != 3 {
				t.Errorf("labels %+v; want the demo model's labels and three taught ones", lr)
			}
		case agent.CmdTrain:
			var h agent.HeadInfo
			json.Unmarshal(r.Result, &h)
			if results[agent.CmdForget].OK { // the page's last train ("nightly"), after forget red mug
				if len(h.Labels) != 11 || slices.Contains(h.Labels, "red mug") {
					t.Errorf("the head trained after forgetting \"red mug\": labels %q; want the model's and \"empty\"", h.Labels)
				}
				break
			}
			if h.Mode != "extend" || len(h.Labels) != 12 || h.Labels[0] != "T-shirt/top" || !slices.Contains(h.Labels, "red mug") {
				t.Fatalf("trained head %+v; want the 10 model labels, \"red mug\" and \"empty\"", h)
			}
			// Step 5: predictions come from the new head; a restart keeps it.
			from := len(sub.On("shortcut/kitchen/front/prediction"))
			sub.WaitFor("shortcut/kitchen/front/prediction", "a prediction of the new head", func(ms []msg) bool {
				return slices.ContainsFunc(ms[from:], func(m msg) bool { return strings.Contains(m.Payload, `"head_version":"`+h.Version+`"`) })
			})
			proc.stop()
			proc = startAgentProcess(t, bin, cfg, httpAddr)
			before := len(sub.On("shortcut/kitchen/reply/labels"))
			sub.Publish("shortcut/kitchen/cmd/labels", []byte(`{"id": "after-restart"}`))
			var lr agent.LabelsResult
			json.Unmarshal(nextReply(t, sub, "shortcut/kitchen/reply/labels", before, "labels after a restart").Result, &lr)
			if lr.Head == nil || lr.Head.Version != h.Version || len(lr.Labels) != 3 {
				t.Fatalf("after a restart: %+v; want head %s and the three taught labels", lr, h.Version)
			}
		case agent.CmdExport:
			json.Unmarshal(r.Result, &exported)
			c, err := agent.LoadModel(exported.Path)
			if err != nil || !slices.Contains(c.Info().Labels, "T-shirt/top") || !slices.Contains(c.Info().Labels, "red mug") {
				t.Fatalf("the exported demo model %s does not load with its labels: %v", exported.Path, err)
			}
		}
	}
	for _, name := range []string{agent.CmdLearn, agent.CmdLabels, agent.CmdTrain, agent.CmdExport, agent.CmdImport, agent.CmdForget, agent.CmdReset} {
		if _, ok := results[name]; !ok {
			t.Errorf("LEARNING.md has no %s step", name)
		}
	}
}

// commandClient publishes commands to one device and waits for replies.
type commandClient struct {
	t   *testing.T
	sub *agenttest.Subscriber
	dev string
}

func (c commandClient) send(name, payload string) agent.Reply {
	c.t.Helper()
	topic := "shortcut/" + c.dev + "/reply/" + name
	before := len(c.sub.On(topic))
	c.sub.Publish("shortcut/"+c.dev+"/cmd/"+name, []byte(payload))
	return nextReply(c.t, c.sub, topic, before, name+" "+payload)
}

func (c commandClient) ok(name, payload string, result any) {
	c.t.Helper()
	r := c.send(name, payload)
	if !r.OK {
		c.t.Fatalf("%s %s: %s: %s", name, payload, r.Code, r.Error)
	}
	if result != nil {
		json.Unmarshal(r.Result, result)
	}
}

func (c commandClient) labels() agent.LabelsResult {
	c.t.Helper()
	var lr agent.LabelsResult
	c.ok(agent.CmdLabels, `{"id": "look"}`, &lr)
	return lr
}

// TestAResetRunsOnceThoughMQTTDeliversItAgain publishes a retained reset
// while the built agent is connected to a real mosquitto. MQTT 3.1.1
// delivers it live without the retain flag, so it runs; the broker keeps
// it and replays it (flagged) at the agent's next subscription, which the
// agent ignores; a bridge between brokers, or QoS 1, can deliver the same
// message again without the flag, which the agent refuses by its id, also
// after a restart. A head trained in between must survive all of them.
func TestAResetRunsOnceThoughMQTTDeliversItAgain(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "camera")
	writeFashionPNGs(t, imgs, 12)
	broker := startMosquitto(t, 0)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "agent.yaml")
	writeAgentConfig(t, cfg, "shop", demoModelPath(t), imgs, broker.URL(), httpAddr, filepath.Join(dir, "state"), "")
	cmd := commandClient{t, subscribe(t, broker.URL(), "shortcut/shop/reply/#"), "shop"}
	proc := startAgentProcess(t, bin, cfg, httpAddr)

	cmd.ok(agent.CmdLearn, `{"id": "l1", "label": "mug", "count": 6, "interval_ms": 0}`, nil)
	cmd.ok(agent.CmdLearn, `{"id": "l2", "label": "T-shirt/top", "count": 6, "interval_ms": 0}`, nil)
	cmd.ok(agent.CmdTrain, `{"id": "t1"}`, nil)
	if cmd.labels().Head == nil {
		t.Fatal("no head after training")
	}

	// A reset published with the retain flag while the agent listens.
	before := len(cmd.sub.On("shortcut/shop/reply/reset"))
	if tok := cmd.sub.Client.Publish("shortcut/shop/cmd/reset", 1, true, []byte(`{"id": "wipe-1"}`)); !tok.WaitTimeout(agenttest.WaitLimit) || tok.Error() != nil {
		t.Fatalf("publishing a retained reset: %v", tok.Error())
	}
	t.Cleanup(func() { cmd.sub.Client.Publish("shortcut/shop/cmd/reset", 1, true, nil) })
	if r := nextReply(t, cmd.sub, "shortcut/shop/reply/reset", before, "the retained reset"); !r.OK {
		t.Fatalf("a retained reset delivered live: %+v; the broker gives it without the retain flag, so it runs once", r)
	}
	if lr := cmd.labels(); lr.Head != nil {
		t.Fatalf("the live reset did not reset: head %s", lr.Head.Version)
	}
	var trained agent.HeadInfo
	cmd.ok(agent.CmdTrain, `{"id": "t2"}`, &trained)

	// A restart: the broker replays the retained reset, flagged, to the
	// new subscription.
	proc.stop()
	proc = startAgentProcess(t, bin, cfg, httpAddr)
	proc.waitLog("ignoring a retained command")
	if lr := cmd.labels(); lr.Head == nil || lr.Head.Version != trained.Version {
		t.Fatalf("after the broker replayed the retained reset at a restart: head %+v; want %s, trained after the reset", lr.Head, trained.Version)
	}

	// The same message again without the flag, as a bridge forwards a
	// replay or QoS 1 repeats a delivery: refused by its id, after the
	// restart too.
	r := cmd.send(agent.CmdReset, `{"id": "wipe-1"}`)
	if r.OK || r.Code != "duplicate" || !strings.Contains(r.Error, `"wipe-1"`) || !strings.Contains(r.Error, "new id") {
		t.Errorf("a repeated reset id: %+v; want code duplicate, naming the id and asking for a new one", r)
	}
	if lr := cmd.labels(); lr.Head == nil || lr.Head.Version != trained.Version {
		t.Fatalf("a repeated reset wiped the head trained after the first: %+v", lr.Head)
	}
	if n := len(cmd.sub.On("shortcut/shop/reply/reset")); n != 2 {
		t.Errorf("%d reset replies; want 2 (the live one, the duplicate): the replay at the restart is not answered", n)
	}

	// Without an id a reset cannot be told from its repeats: refused.
	if r := cmd.send(agent.CmdReset, `{}`); r.OK || r.Code != "invalid" || !strings.Contains(r.Error, `needs an "id"`) {
		t.Errorf("a reset without id: %+v; want invalid, asking for an id", r)
	}
	// forget and import run once per id as well.
	var f agent.ForgetResult
	cmd.ok(agent.CmdForget, `{"id": "f-1", "label": "mug"}`, &f)
	cmd.ok(agent.CmdLearn, `{"id": "l3", "label": "mug", "count": 3, "interval_ms": 0}`, nil)
	if r := cmd.send(agent.CmdForget, `{"id": "f-1", "label": "mug"}`); r.Code != "duplicate" {
		t.Errorf("a repeated forget id: %+v; want duplicate", r)
	}
	if lr := cmd.labels(); !slices.Contains(lr.Labels, agent.LabelCount{Label: "mug", Count: 3}) {
		t.Errorf("labels %v: the mug examples taught after the forget are gone", lr.Labels)
	}
	var exp agent.ExportResult
	cmd.ok(agent.CmdExport, `{"id": "e-1"}`, &exp)
	cmd.ok(agent.CmdImport, fmt.Sprintf(`{"id": "i-1", "path": %q}`, filepath.Base(exp.Path)), nil)
	if r := cmd.send(agent.CmdImport, fmt.Sprintf(`{"id": "i-1", "path": %q}`, filepath.Base(exp.Path))); r.Code != "duplicate" {
		t.Errorf("a repeated import id: %+v; want duplicate", r)
	}
}

// confBroker is a mosquitto run with a configuration of the test's own
// (agenttest.StartMosquitto has no bridges or persistence).
type confBroker struct {
	t    *testing.T
	port int
	conf string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// runMosquittoConf starts mosquitto with "listener <port> 127.0.0.1" and
// conf, and waits until it listens.
func runMosquittoConf(t *testing.T, port int, conf string) *confBroker {
	t.Helper()
	b := &confBroker{t: t, port: port, log: &syncBuffer{}, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n%s", port, conf)
	if err := os.WriteFile(b.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("mosquitto on %d:\n%s", port, b.log.String())
		}
	})
	return b
}

func (b *confBroker) start() {
	b.t.Helper()
	b.cmd = exec.Command("mosquitto", "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	b.done = make(chan struct{})
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("mosquitto: %v", err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(b.cmd, b.done)
	agenttest.WaitUntil(b.t, fmt.Sprintf("mosquitto listening on %d", b.port), func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", b.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// stop ends mosquitto with SIGTERM, which saves a persistent database.
func (b *confBroker) stop() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	<-b.done
}

// TestAResetRetainedUpstreamOfABridgeRunsOnce is the case the retain flag
// cannot catch: the agent's broker is bridged to another one (a common
// set-up: a local mosquitto on the board, commands from a central broker),
// and a reset is published there with the retain flag. Every time the
// bridge reconnects, the central broker replays the retained message to
// the bridge, and the local broker forwards it to the agent as a live
// message, without the flag. The agent must run it only the first time.
func TestAResetRetainedUpstreamOfABridgeRunsOnce(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "camera")
	writeFashionPNGs(t, imgs, 12)
	// The central broker keeps its retained messages across its restart.
	db, err := os.MkdirTemp("", "mosquitto-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(db) })
	os.Chmod(db, 0o777) // mosquitto writes it after dropping root
	central := runMosquittoConf(t, freePort(t), fmt.Sprintf("persistence true\npersistence_location %s/\n", db))
	local := runMosquittoConf(t, freePort(t), fmt.Sprintf(
		"persistence false\nconnection central\naddress 127.0.0.1:%d\ntopic shortcut/# both 1\ncleansession true\nrestart_timeout 1 2\n", central.port))
	localURL := fmt.Sprintf("tcp://127.0.0.1:%d", local.port)
	centralURL := fmt.Sprintf("tcp://127.0.0.1:%d", central.port)

	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "agent.yaml")
	writeAgentConfig(t, cfg, "farm", demoModelPath(t), imgs, localURL, httpAddr, filepath.Join(dir, "state"), "")
	startAgentProcess(t, bin, cfg, httpAddr)
	cmd := commandClient{t, subscribe(t, localURL, "shortcut/farm/reply/#"), "farm"}
	cmd.ok(agent.CmdLearn, `{"id": "l1", "label": "calf", "count": 6, "interval_ms": 0}`, nil)
	cmd.ok(agent.CmdLearn, `{"id": "l2", "label": "Sandal", "count": 6, "interval_ms": 0}`, nil)
	cmd.ok(agent.CmdTrain, `{"id": "t1"}`, nil)

	// The reset, retained on the central broker.
	remote := subscribe(t, centralURL, "shortcut/farm/availability")
	remote.WaitFor("shortcut/farm/availability", "the agent's availability through the bridge", agenttest.AtLeast(1))
	if tok := remote.Client.Publish("shortcut/farm/cmd/reset", 1, true, []byte(`{"id": "central-reset-1"}`)); !tok.WaitTimeout(agenttest.WaitLimit) || tok.Error() != nil {
		t.Fatalf("publishing a retained reset upstream: %v", tok.Error())
	}
	replies := cmd.sub.WaitFor("shortcut/farm/reply/reset", "the reply to the reset", agenttest.AtLeast(1))
	if !strings.Contains(replies[0].Payload, `"ok":true`) {
		t.Fatalf("the first delivery of the reset: %s; want it run", replies[0].Payload)
	}
	var trained agent.HeadInfo
	cmd.ok(agent.CmdTrain, `{"id": "t2"}`, &trained)

	// The central broker restarts: the bridge reconnects and the retained
	// reset comes again, as a live message.
	central.stop()
	central.start()
	replies = cmd.sub.WaitFor("shortcut/farm/reply/reset", "the answer to the reset the bridge delivered again", agenttest.AtLeast(2))
	var again agent.Reply
	json.Unmarshal([]byte(replies[1].Payload), &again)
	if again.OK || again.Code != "duplicate" || again.ID != "central-reset-1" {
		t.Errorf("the reset delivered again through the bridge: %+v; want it refused as a duplicate", again)
	}
	if lr := cmd.labels(); lr.Head == nil || lr.Head.Version != trained.Version {
		t.Fatalf("the reset replayed by the bridge wiped the head trained after it: %+v", lr.Head)
	}
	remote.Client.Publish("shortcut/farm/cmd/reset", 1, true, nil) // clear it
}
