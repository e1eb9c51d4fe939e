package agent_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// contractTable holds the fake model's scores (cat, dog, empty) per frame
// kind; contractFrames walks through them so that the state goes
// none -> cat -> dog -> none, exercising debouncing and hysteresis.
var contractTable = [][]float32{
	{0.9, 0.05, 0.05}, // 0: clearly cat
	{0.2, 0.7, 0.1},   // 1: clearly dog
	{0.5, 0.3, 0.2},   // 2: cat, but below threshold and above release
	{0.35, 0.35, 0.3}, // 3: nothing
}

// frame:      1    2    3    4    5    6    7    8
// top:       cat  cat  dog  cat? dog  dog  -    -
// state:      -   cat   .    .    .   dog  .   none
var contractFrames = []int{0, 0, 1, 2, 1, 1, 3, 3}

// TestMQTTContractFreezesTopicsAndPayloads runs the agent against a real
// mosquitto and compares every topic and payload (volatile fields
// normalised) with testdata/contract.golden.json. A change here is a
// change for every subscriber: update PAYLOADS.md with it.
func TestMQTTContractFreezesTopicsAndPayloads(t *testing.T) {
	broker := startMosquitto(t, 0)
	sub := subscribe(t, broker.URL(), "shortcut/#", "homeassistant/#")
	start := make(chan struct{})
	src := agenttest.Tensors(framesFor(contractFrames...)...)
	src.Start = start
	cfg := testConfig(broker.URL())
	cfg.Model.HeadVersion = "head-3"
	// One snapshot (the first event's): the second event's picture is held
	// back by min_interval, and that event ends before it may go.
	cfg.MQTT.Snapshots.MinInterval = time.Hour
	a, err := agent.New(cfg, agent.Options{Logger: quietLog(),
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return fakeModel(contractTable), nil }})
	if err != nil {
		t.Fatal(err)
	}
	stop := running(t, a)
	sub.WaitFor("shortcut/testdev/availability", "online", hasPayload(agent.Online))
	sub.WaitFor("homeassistant/sensor/testdev/front/config", "discovery", atLeast(1))
	sub.WaitFor("homeassistant/sensor/testdev/front_score/config", "score discovery", atLeast(1))
	sub.WaitFor("shortcut/testdev/front/availability", "camera online", hasPayload(agent.Online))
	close(start)
	sub.WaitFor("shortcut/testdev/front/prediction", "a prediction per frame", atLeast(len(contractFrames)))
	sub.WaitFor("shortcut/testdev/front/state", "three state changes", atLeast(3))
	sub.WaitFor("shortcut/testdev/front/events", "two events, started and ended", atLeast(4))
	stop()
	sub.WaitFor("shortcut/testdev/availability", "offline after a clean stop", hasPayload(agent.Offline))

	// What a subscriber arriving later finds retained.
	late := subscribe(t, broker.URL(), "shortcut/#", "homeassistant/#")
	late.WaitFor("homeassistant/sensor/testdev/front/config", "retained discovery", atLeast(1))
	late.WaitFor("shortcut/testdev/front/state", "retained state", atLeast(1))
	late.WaitFor("shortcut/testdev/availability", "retained availability", atLeast(1))
	late.WaitFor("homeassistant/sensor/testdev/front_score/config", "retained score discovery", atLeast(1))
	late.WaitFor("shortcut/testdev/front/availability", "retained camera availability", atLeast(1))
	late.WaitFor("shortcut/testdev/front/snapshot", "retained snapshot", atLeast(1))
	late.WaitFor("homeassistant/image/testdev/front_snapshot/config", "retained image discovery", atLeast(1))

	got := map[string]any{"live": group(t, sub.All()), "retained": group(t, late.All())}
	for _, m := range late.All() {
		if !m.Retained {
			t.Errorf("late subscriber got a live message on %s; only retained messages were expected: %s", m.Topic, m.Payload)
		}
	}
	compareGolden(t, "contract.golden.json", got)
}

// group lists normalised payloads per topic, in arrival order.
func group(t *testing.T, ms []msg) map[string][]any {
	out := map[string][]any{}
	for _, m := range ms {
		out[m.Topic] = append(out[m.Topic], normalise(t, m))
	}
	return out
}

// normalise replaces what changes from run to run (times, latencies) by
// placeholders, after checking that it has the documented type.
func normalise(t *testing.T, m msg) any {
	if strings.HasSuffix(m.Topic, "/snapshot") {
		return normaliseSnapshot(t, m)
	}
	var v any
	if err := json.Unmarshal([]byte(m.Payload), &v); err != nil {
		return m.Payload // availability: plain text
	}
	var walk func(key string, v any) any
	walk = func(key string, v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = walk(k, e)
			}
			if key == "latency_ms" {
				for k, e := range x {
					if f, ok := e.(float64); !ok || f < 0 {
						t.Errorf("%s: latency_ms.%s = %v, want a number >= 0", m.Topic, k, e)
					}
					x[k] = "<ms>"
				}
			}
			return x
		case []any:
			for i, e := range x {
				x[i] = walk("", e)
			}
			return x
		case string:
			if key == "time" || strings.HasSuffix(key, "_time") && strings.HasSuffix(m.Topic, "/events") {
				if _, err := time.Parse(time.RFC3339Nano, x); err != nil {
					t.Errorf("%s: %s %q is not an RFC 3339 time: %v", m.Topic, key, x, err)
				}
				return "<time>"
			}
			if key == "id" && strings.HasSuffix(m.Topic, "/events") {
				return normaliseEventID(t, m.Topic, x)
			}
		case float64:
			if key == "duration_s" {
				if x < 0 {
					t.Errorf("%s: duration_s %v < 0", m.Topic, x)
				}
				return "<seconds>"
			}
		}
		return v
	}
	return walk("", v)
}

func compareGolden(t *testing.T, name string, got any) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(got); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./agent -run Contract -update to create it)", err)
	}
	if !bytes.Equal(want, b) {
		t.Errorf("MQTT contract changed: %s differs from what the agent published.\n%s\nIf the change is intended, update agent/PAYLOADS.md and rerun with -update.", path, diffLines(string(want), string(b)))
	}
}

// diffLines names the first differing lines.
func diffLines(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var out []string
	for i := 0; i < max(len(w), len(g)) && len(out) < 10; i++ {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			out = append(out, fmt.Sprintf("line %d:\n  want %s\n  got  %s", i+1, a, b))
		}
	}
	return fmt.Sprint(out)
}

// TestCommandRepliesFreezeTheirPayloads sends one of each command (and a
// few refused ones) to an agent on a fake model and compares the replies,
// volatile fields normalised, with testdata/commands.golden.json: once over
// MQTT (cmd/<name>, reply/<name>) and once over HTTP (POST
// /api/v1/commands/<name>), which must answer with the very same replies.
// A change here changes what scripts and dashboards parse: update
// PAYLOADS.md with it.
func TestCommandRepliesFreezeTheirPayloads(t *testing.T) {
	for _, transport := range []string{"mqtt", "http"} {
		t.Run(transport, func(t *testing.T) { commandRepliesGolden(t, transport) })
	}
}

func commandRepliesGolden(t *testing.T, transport string) {
	broker := startMosquitto(t, 0)
	cfg := testConfig(broker.URL())
	cfg.Learning.Enabled = true
	cfg.Learning.StateDir = t.TempDir()
	cfg.Cameras[0].FPS = 100
	src := agenttest.Tensors(framesFor(0)...)
	src.Loop = true
	model := fakeModel(contractTable)
	model.Model.EmbeddingDim = 4
	model.Embed = func(in []float32) []float32 { return []float32{in[0], 1, 0.5, 0.25} }
	a, _ := runAgent(t, cfg, agent.Options{
		OpenSource: func(agent.CameraConfig) (agent.FrameSource, error) { return src, nil },
		LoadModel:  func(string) (agent.Classifier, error) { return model, nil }})
	cmd := newCommander(t, broker.URL(), "testdev")
	modelFile := []byte("a new model (the fake loader takes any file)")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/m.tflite" {
			http.NotFound(w, r)
			return
		}
		w.Write(modelFile)
	}))
	defer srv.Close()
	modelReq := func(path string) map[string]any {
		return map[string]any{"url": srv.URL + path, "sha256": sha256Hex(modelFile), "size": len(modelFile)}
	}
	send := cmd.send
	if transport == "http" {
		send = func(name string, payload any) agent.Reply {
			return postCommand(t, "http://"+a.HTTPAddr(), name, payload, cmd.n.Add(1), nil)
		}
	}
	var replies []any
	for _, c := range []struct {
		name    string
		payload any
	}{
		{agent.CmdLabels, map[string]any{}},
		{agent.CmdLearn, map[string]any{"label": "cat", "count": 2, "interval_ms": 0}},
		{agent.CmdLearn, map[string]any{"label": "bird", "count": 2, "interval_ms": 0}},
		{agent.CmdLabels, map[string]any{}},
		{agent.CmdTrain, map[string]any{}},
		{agent.CmdLabels, map[string]any{}},
		{agent.CmdForget, map[string]any{"label": "bird"}},
		{agent.CmdReset, map[string]any{}},
		{agent.CmdExport, map[string]any{}},
		{agent.CmdLearn, map[string]any{"label": "bird/cat"}},
		{"dance", map[string]any{}},
		{agent.CmdLearn, `{"label": `},
		{agent.CmdReset, `{"id": "reset-8"}`}, // a repeated delivery
		{agent.CmdReset, `{}`},
		{agent.CmdModel, modelReq("/m.tflite")},
		{agent.CmdRollback, map[string]any{}},
		{agent.CmdModel, modelReq("/missing.tflite")},
		{agent.CmdModel, map[string]any{"url": "file:///etc/passwd", "sha256": sha256Hex(modelFile), "size": 10}},
		{agent.CmdRollback, `{}`},
	} {
		r := send(c.name, c.payload)
		replies = append(replies, normalise(t, msg{Topic: "reply/" + c.name, Payload: string(mustMarshal(t, r))}))
	}
	var heads []string
	var walk func(v any) any
	walk = func(v any) any { // head versions, timings, the server's port and the state directory change from run to run
		switch x := v.(type) {
		case string:
			return strings.NewReplacer(srv.URL, "<server>", cfg.Learning.StateDir, "<state>").Replace(x)
		case map[string]any:
			for k, e := range x {
				switch s, _ := e.(string); {
				case k == "seqs" || k == "milliseconds":
					x[k] = "<" + k + ">"
				case strings.HasPrefix(s, "h-") && (k == "version" || k == "head_version"):
					if !slices.Contains(heads, s) {
						heads = append(heads, s)
					}
					x[k] = fmt.Sprintf("<head %d>", slices.Index(heads, s)+1)
				default:
					x[k] = walk(e)
				}
			}
		case []any:
			for i, e := range x {
				x[i] = walk(e)
			}
		}
		return v
	}
	compareGolden(t, "commands.golden.json", walk(replies))
}

func mustMarshal(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
