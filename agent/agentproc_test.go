package agent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent"
)

// agentProc is the built shortcut-agent running as its own process, as
// systemd runs it: what a user sees from outside, over HTTP and MQTT.
type agentProc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	logs   *syncBuffer
	exited chan struct{}
}

// startAgentProc writes config (YAML, whose http.address must be addr)
// into dir, runs bin on it and waits until its HTTP server answers. The
// agent is stopped (SIGTERM, then SIGKILL) when the test ends, and its
// log is printed if the test failed.
func startAgentProc(t *testing.T, bin, dir, addr, config string) *agentProc {
	t.Helper()
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{cmd: exec.Command(bin, "-config", path), base: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(waitLimit):
			t.Errorf("the agent did not stop %v after SIGTERM; its goroutines (SIGQUIT) are in the log below", waitLimit)
			p.quit()
			t.Logf("agent log:\n%s", lastLines(p.logs.String(), 600))
			return
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", lastLines(p.logs.String(), 40))
		}
	})
	waitUntil(t, "the agent's HTTP server", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("the agent exited at start:\n%s", p.logs.String())
		default:
		}
		resp, err := http.Get(p.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	})
	return p
}

// stop sends SIGTERM and returns how long the agent took to exit, or
// fails the test when it has not exited within limit (its goroutines are
// then in the log, as at the test's end).
func (p *agentProc) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.exited:
		return time.Since(t0)
	case <-time.After(limit):
		p.quit()
		t.Fatalf("the agent did not stop %v after SIGTERM; its goroutines (SIGQUIT) are in its log:\n%s", limit, lastLines(p.logs.String(), 600))
		return 0
	}
}

// quit ends an agent that did not stop: SIGQUIT makes the Go runtime
// print every goroutine's stack into its log (where the shutdown is
// stuck), then SIGKILL if that did not end it within 5 s.
func (p *agentProc) quit() {
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// health is the agent's /healthz, on a connection of its own.
func (p *agentProc) health(t *testing.T) agent.Health {
	t.Helper()
	var h agent.Health
	if err := json.Unmarshal([]byte(p.get(t, "/healthz")), &h); err != nil {
		t.Fatalf("/healthz is not JSON: %v", err)
	}
	return h
}

// get fetches path on a connection of its own (closed afterwards), so
// that the test's own requests leave no idle connection behind.
func (p *agentProc) get(t *testing.T, path string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: waitLimit}
	resp, err := c.Get(p.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return string(b)
}

// metric is one series' value in the agent's /metrics; it fails the test
// when the series is missing.
func (p *agentProc) metric(t *testing.T, series string) float64 {
	t.Helper()
	v := metricValue(p.get(t, "/metrics"), series)
	if v < 0 {
		t.Fatalf("/metrics has no series %s", series)
	}
	return v
}

// loopingImagesConfig is the YAML of an agent whose camera replays three
// PNGs in dir forever, with extra appended (the other top-level sections:
// http, mqtt, embedded_broker).
func loopingImagesConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	imgs := filepath.Join(dir, "imgs")
	if err := os.MkdirAll(imgs, 0o755); err != nil {
		t.Fatal(err)
	}
	writePNGs(t, imgs, 3)
	return fmt.Sprintf(`device: {id: procdev}
model: {path: %q, watch: false}
cameras:
  - {id: door, source: "images:%s/*.png?loop=1", fps: 20}
learning: {enabled: false}
log: {level: debug}
`, realModels(t)[0], imgs) + extra
}
