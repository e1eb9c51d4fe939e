package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// webAgentConfig is a configuration for the built binary: the demo model,
// one camera "front" looping over imgs, the broker, learning in stateDir
// and http as given (a YAML flow mapping).
func webAgentConfig(t *testing.T, path, model, imgs, brokerURL, stateDir, http string) {
	t.Helper()
	yaml := fmt.Sprintf(`device: {id: kitchen}
model: {path: %q, watch: false}
cameras:
  - {id: front, source: "images:%s/*.png?loop=1", fps: 20}
mqtt: {broker: %q, keepalive: 60s, reconnect_min: 100ms, reconnect_max: 500ms, predictions: {max_rate: 0}}
http: %s
learning: {state_dir: %q}
`, model, imgs, brokerURL, http, stateDir)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTheBinaryRefusesANonLoopbackAddressWithoutAuth starts the built
// agent on 0.0.0.0 without users or tokens (it must refuse, naming
// http.address and what to do) and then with http.insecure (it must start,
// and warn).
func TestTheBinaryRefusesANonLoopbackAddressWithoutAuth(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "camera")
	writeFashionPNGs(t, imgs, 4)
	broker := startMosquitto(t, 0)
	port := freePort(t)
	cfg := filepath.Join(dir, "agent.yaml")
	webAgentConfig(t, cfg, demoModelPath(t), imgs, broker.URL(), filepath.Join(dir, "state"), fmt.Sprintf("{address: \"0.0.0.0:%d\"}", port))
	cmd := exec.Command(bin, "-config", cfg)
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("the agent started (or failed otherwise) on 0.0.0.0 without auth: %v\n%s", err, out)
	}
	for _, want := range []string{"http.address", "hash-password", "http.insecure: true", "127.0.0.1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	webAgentConfig(t, cfg, demoModelPath(t), imgs, broker.URL(), filepath.Join(dir, "state"), fmt.Sprintf("{address: \"0.0.0.0:%d\", insecure: true}", port))
	p := startAgentProcess(t, bin, cfg, fmt.Sprintf("127.0.0.1:%d", port))
	p.waitLog("http.insecure")
}

// TestTheAPIAndMQTTGiveTheSameLearnReply runs the built agent with a bearer
// token and a real mosquitto: learn over MQTT, forget, learn over HTTP with
// the same body; both replies, normalised, must equal
// testdata/learn.golden.json. Meanwhile /api/v1/events streams
// predictions, the progress of the HTTP learn and its reply.
func TestTheAPIAndMQTTGiveTheSameLearnReply(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "camera")
	writeFashionPNGs(t, imgs, 20)
	broker := startMosquitto(t, 0)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "agent.yaml")
	webAgentConfig(t, cfg, demoModelPath(t), imgs, broker.URL(), filepath.Join(dir, "state"),
		fmt.Sprintf("{address: %q, auth: {tokens: [{name: ci, sha256: %s}]}}", httpAddr, tokenSHA()))
	sub := subscribe(t, broker.URL(), "shortcut/kitchen/reply/#")
	startAgentProcess(t, bin, cfg, httpAddr)
	base := "http://" + httpAddr
	auth := http.Header{"Authorization": {"Bearer " + scriptToken}}

	// Follow the events from before the HTTP learn.
	ctx, cancel := context.WithTimeout(context.Background(), agenttest.WaitLimit)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/events", nil)
	req.Header = auth.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("/api/v1/events: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := make(chan string, 1024)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if ev, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- ev
			}
		}
	}()

	body := `{"id": "learn-1", "label": "boot", "count": 3, "interval_ms": 0}`
	sub.Publish("shortcut/kitchen/cmd/learn", []byte(body))
	viaMQTT := nextReply(t, sub, "shortcut/kitchen/reply/learn", 0, "learn over MQTT")
	if r := postCommand(t, base, agent.CmdForget, map[string]any{"label": "boot"}, 1, auth); !r.OK {
		t.Fatalf("forget: %+v", r)
	}
	status, viaHTTP := postCommandStatus(t, http.DefaultClient, base, agent.CmdLearn, body, 0, auth)
	if status != 200 {
		t.Fatalf("learn over HTTP: HTTP %d %+v", status, viaHTTP)
	}
	// The HTTP learn's reply went out on MQTT too.
	nextReply(t, sub, "shortcut/kitchen/reply/learn", 1, "learn over HTTP, on MQTT")

	norm := func(r agent.Reply) any {
		var v map[string]any
		json.Unmarshal(mustMarshal(t, r), &v)
		v["time"] = "<time>"
		res := v["result"].(map[string]any)
		if seqs, _ := res["seqs"].([]any); len(seqs) != 3 {
			t.Errorf("reply %+v: want 3 frame numbers in seqs", r)
		}
		res["seqs"] = "<seqs>"
		return v
	}
	compareGolden(t, "learn.golden.json", norm(viaMQTT))
	compareGolden(t, "learn.golden.json", norm(viaHTTP))

	seen := map[string]int{}
	for seen["prediction"] == 0 || seen["progress"] < 3 || seen["reply"] < 3 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the event stream ended; saw %v", seen)
			}
			seen[ev]++
		case <-ctx.Done():
			t.Fatalf("within %v the events were %v; want predictions, 3 progress events and the 3 replies", agenttest.WaitLimit, seen)
		}
	}
}
