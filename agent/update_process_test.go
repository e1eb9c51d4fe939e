package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
)

// A model update driven from outside, as a fleet manager would: the built
// agent, a real HTTP server with the new model, the model command through
// the API (the same implementation as MQTT's). A bad file keeps the running
// model; a good one is installed and survives a restart (the agent runs
// the installed model, not model.path); rollback goes back, and survives a
// restart too.
func TestTheBuiltAgentUpdatesItsModelSurvivesARestartAndRollsBack(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	imgs := filepath.Join(dir, "imgs")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNGs(t, imgs, 3)
	first := demoModelPath(t)
	good, err := os.ReadFile(realModels(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte("TFL3 this is not a model, though it is the size it says")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good.tflite":
			w.Write(good)
		case "/junk.tflite":
			w.Write(junk)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	config := fmt.Sprintf(`device: {id: fleet1}
model: {path: %q, watch: false}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
learning: {enabled: true, state_dir: %q}
http: {address: %q}
embedded_broker: {address: "127.0.0.1:%d"}
`, first, imgs, filepath.Join(dir, "state"), addr, freePort(t))
	start := func() *agentProc {
		p := startAgentProc(t, bin, dir, addr, config)
		waitUntil(t, "a classified frame", func() bool {
			h := p.health(t)
			return len(h.Cameras) == 1 && h.Cameras[0].Frames > 0
		})
		return p
	}
	stop := func(p *agentProc) {
		p.cmd.Process.Signal(os.Interrupt)
		<-p.exited
	}
	command := func(p *agentProc, name, body string) (agent.Reply, agent.ModelResult) {
		t.Helper()
		resp, err := http.Post(p.base+"/api/v1/commands/"+name, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var r agent.Reply
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s reply %q: %v", name, b, err)
		}
		var res agent.ModelResult
		if r.Result != nil {
			raw, _ := json.Marshal(r.Result)
			json.Unmarshal(raw, &res)
		}
		return r, res
	}

	p := start()
	firstSHA := p.health(t).Model.SHA256
	r, _ := command(p, "model", fmt.Sprintf(`{"id": "u1", "url": %q, "sha256": %q, "size": %d}`, srv.URL+"/junk.tflite", sha256Hex(junk), len(junk)))
	if r.OK || !strings.Contains(r.Error, "running model was kept") {
		t.Fatalf("a file that is no model: reply %+v, want a failure that keeps the running model", r)
	}
	if got := p.health(t).Model.SHA256; got != firstSHA {
		t.Fatalf("after a bad update the model is %s, want %s", got, firstSHA)
	}
	r, res := command(p, "model", fmt.Sprintf(`{"id": "u2", "url": %q, "sha256": %q, "size": %d}`, srv.URL+"/good.tflite", sha256Hex(good), len(good)))
	if !r.OK || res.Model.SHA256 != sha256Hex(good) {
		t.Fatalf("a good update: reply %+v (%+v), want the new model running", r, res)
	}
	waitUntil(t, "/healthz naming the new model", func() bool { return p.health(t).Model.SHA256 == sha256Hex(good) })

	stop(p)
	p = start()
	if got := p.health(t).Model.SHA256; got != sha256Hex(good) {
		t.Fatalf("after a restart the agent runs %s, want the installed update %s", got, sha256Hex(good))
	}
	r, res = command(p, "rollback", `{"id": "r1"}`)
	if !r.OK || !res.RolledBack || res.Model.SHA256 != firstSHA {
		t.Fatalf("rollback: reply %+v (%+v), want the first model back", r, res)
	}
	stop(p)
	p = start()
	if got := p.health(t).Model.SHA256; got != firstSHA {
		t.Fatalf("after rollback and a restart the agent runs %s, want the first model %s", got, firstSHA)
	}
}
