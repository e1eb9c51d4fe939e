package agent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shortcut-edge/shortcut/agent/agenttest"
)

// stopLimit is how long a test gives the agent to exit after SIGTERM:
// generous against the bound the agent keeps (agent.Run's doc), far
// below systemd's TimeoutStopSec (90 s), after which it would be killed
// and say nothing on its way out.
const stopLimit = 15 * time.Second

// TestTheAgentStopsPromptlyWhateverItsBrokerDoes stops the built agent
// (SIGTERM, as systemd does) while its real mosquitto misbehaves, and
// wants it gone within stopLimit, with status 0.
//
// "hung" freezes mosquitto (SIGSTOP: connections stay open, nothing is
// answered) once the publish queue is full. Before, every queued message
// waited mqtt.connect_timeout in turn in the stop's drain until keepalive
// declared the connection lost (about 40 s): this case failed every time.
//
// "killed just before SIGTERM" is how TestMQTTOutagesAreCountedInMetricsAndHealth
// ends (its cleanups stop the broker, then the agent), where the agent
// once outlived SIGTERM by 20 s: when the connection drops inside paho's
// Publish, that call blocks 30 s (paho v1.5.1 client.go, seen in 2 to 4 of
// 40 broker kills with paho alone). This case failed only when the kill
// landed there; publish's TestAStopReturnsWhilePahoPublishIsBlocked makes
// that moment happen every time.
func TestTheAgentStopsPromptlyWhateverItsBrokerDoes(t *testing.T) {
	bin := buildAgent(t, t.TempDir())
	for _, tc := range []struct {
		name string
		// before runs with the agent started (connected when connect is
		// set) and does to broker what the case says.
		connect bool
		before  func(t *testing.T, broker *agenttest.Broker, p *agentProc)
	}{
		{"hung, with the publish queue full", true, func(t *testing.T, broker *agenttest.Broker, p *agentProc) {
			dropped := `shortcut_mqtt_publishes_total{kind="prediction",result="dropped"}`
			before := p.metric(t, dropped)
			broker.Freeze()
			// A prediction dropped now means that the queue is full: the
			// publisher is waiting for acknowledgements.
			waitUntil(t, "a full publish queue (predictions dropped)", func() bool { return p.metric(t, dropped) > before })
		}},
		{"killed just before SIGTERM, mid-publish", true, func(t *testing.T, broker *agenttest.Broker, p *agentProc) {
			broker.Stop()
		}},
		{"killed, and being reconnected to", true, func(t *testing.T, broker *agenttest.Broker, p *agentProc) {
			broker.Stop()
			waitUntil(t, "2 failed reconnection attempts", func() bool { return p.health(t).MQTT.Attempts >= 2 })
		}},
		{"hung before the first connection (a connect attempt under way)", false, func(t *testing.T, broker *agenttest.Broker, p *agentProc) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			broker := startMosquitto(t, 0)
			if !tc.connect {
				broker.Freeze() // the kernel still accepts connections; CONNACK never comes
			}
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			p := startAgentProc(t, bin, dir, addr, loopingImagesConfig(t, dir, fmt.Sprintf(
				"http: {address: %q}\nmqtt: {broker: %q, connect_timeout: 2s, reconnect_min: 100ms, reconnect_max: 200ms, predictions: {max_rate: 0}}\n", addr, broker.URL())))
			if tc.connect {
				waitUntil(t, "the agent's MQTT connection", func() bool { return p.health(t).MQTT.Connected })
			}
			tc.before(t, broker, p)
			took := p.stop(t, stopLimit)
			t.Logf("the agent exited %v after SIGTERM", took.Round(time.Millisecond))
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("the agent exited with status %d after SIGTERM; want 0", code)
			}
		})
	}
}
