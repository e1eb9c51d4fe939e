package agent_test

import (
	"fmt"
	"testing"
	"time"
)

// stopLimit is how long a test gives the agent to exit after SIGTERM:
// generous against the bound the agent keeps (agent.Run's doc), far
// below systemd's TimeoutStopSec (90 s), after which it would be killed
// and say nothing on its way out.
const stopLimit = 15 * time.Second

// TestTheAgentStopsPromptlyWhenItsBrokerHangs freezes a real mosquitto
// (SIGSTOP: its connections stay open, nothing is answered) under an agent
// whose publish queue is full, then stops the agent. Before, every queued
// message waited mqtt.connect_timeout for an acknowledgement that never
// came, in the queue's drain, until keepalive declared the connection
// lost (about 40 s): the agent outlived its stop by far.
func TestTheAgentStopsPromptlyWhenItsBrokerHangs(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	broker := startMosquitto(t, 0)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startAgentProc(t, bin, dir, addr, loopingImagesConfig(t, dir, fmt.Sprintf(
		"http: {address: %q}\nmqtt: {broker: %q, connect_timeout: 2s, predictions: {max_rate: 0}}\n", addr, broker.URL())))
	waitUntil(t, "the agent's MQTT connection", func() bool { return p.health(t).MQTT.Connected })

	dropped := `shortcut_mqtt_publishes_total{kind="prediction",result="dropped"}`
	before := p.metric(t, dropped)
	broker.Freeze()
	// A prediction dropped now means the queue is full: the publisher is
	// stuck waiting for acknowledgements.
	waitUntil(t, "a full publish queue (predictions dropped)", func() bool { return p.metric(t, dropped) > before })
	took := p.stop(t, stopLimit)
	t.Logf("the agent exited %v after SIGTERM", took.Round(time.Millisecond))
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("the agent exited with status %d after SIGTERM; want 0", code)
	}
}
