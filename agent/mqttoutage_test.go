package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
)

// TestMQTTOutagesAreCountedInMetricsAndHealth kills and restarts a real
// mosquitto under the built agent, twice, and reads what an operator
// would. Before (issue 21), an outage showed only as
// shortcut_mqtt_connected and dropped publishes: a scrape that missed it
// saw nothing. Now shortcut_mqtt_reconnects_total counts the connections
// that came back, shortcut_mqtt_last_connect_timestamp_seconds says when,
// and /healthz counts the failed attempts of the current outage only.
func TestMQTTOutagesAreCountedInMetricsAndHealth(t *testing.T) {
	dir := t.TempDir()
	bin := buildAgent(t, dir)
	broker := startMosquitto(t, 0)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startAgentProc(t, bin, dir, addr, loopingImagesConfig(t, dir, fmt.Sprintf(
		"http: {address: %q}\nmqtt: {broker: %q, reconnect_min: 100ms, reconnect_max: 200ms, connect_timeout: 2s}\n", addr, broker.URL())))

	connected := func(what string) agent.Health {
		t.Helper()
		var h agent.Health
		waitUntil(t, what, func() bool { h = p.health(t); return h.MQTT.Connected })
		if h.MQTT.Attempts != 0 || h.MQTT.LastConnect == "" {
			t.Errorf("/healthz mqtt while connected = %+v; want attempts 0 and the last connect's time", h.MQTT)
		}
		return h
	}
	// outage waits until /healthz reports at least n failed attempts of
	// the outage under way, and returns the first report that has any.
	outage := func(n uint64) (first, last agent.Health) {
		t.Helper()
		waitUntil(t, fmt.Sprintf("%d failed connection attempts in /healthz", n), func() bool {
			h := p.health(t)
			if h.MQTT.Connected || h.MQTT.Attempts == 0 {
				return false
			}
			if first.MQTT.Attempts == 0 {
				first = h
			}
			last = h
			return h.MQTT.Attempts >= n
		})
		reason := fmt.Sprintf("after %d failed attempt(s)", last.MQTT.Attempts)
		if !strings.Contains(strings.Join(last.Reasons, "; "), reason) {
			t.Errorf("/healthz reasons %q do not say %q", last.Reasons, reason)
		}
		return first, last
	}

	h0 := connected("the first connection")
	if n := p.metric(t, "shortcut_mqtt_reconnects_total"); n != 0 {
		t.Errorf("shortcut_mqtt_reconnects_total = %v after the first connect; want 0", n)
	}
	t0 := p.metric(t, "shortcut_mqtt_last_connect_timestamp_seconds")
	if t0 <= 0 {
		t.Errorf("shortcut_mqtt_last_connect_timestamp_seconds = %v once connected; want the connect's Unix time", t0)
	}

	broker.Stop()
	_, long := outage(10)
	broker = startMosquitto(t, broker.Port)
	h1 := connected("the connection back after the first outage")
	if n := p.metric(t, "shortcut_mqtt_reconnects_total"); n != 1 {
		t.Errorf("shortcut_mqtt_reconnects_total = %v after one outage; want 1", n)
	}
	t1 := p.metric(t, "shortcut_mqtt_last_connect_timestamp_seconds")
	if t1 <= t0 || h1.MQTT.LastConnect == h0.MQTT.LastConnect {
		t.Errorf("the last connect's time did not move on reconnecting: metric %v -> %v, /healthz %s -> %s", t0, t1, h0.MQTT.LastConnect, h1.MQTT.LastConnect)
	}

	// The second outage starts counting from nothing: a count since start
	// would open at the first outage's total plus one.
	broker.Stop()
	first, _ := outage(1)
	if first.MQTT.Attempts >= long.MQTT.Attempts {
		t.Errorf("/healthz's first count in the second outage is %d attempt(s), after %d in the first; it must count this outage's attempts only",
			first.MQTT.Attempts, long.MQTT.Attempts)
	}
	broker = startMosquitto(t, broker.Port)
	connected("the connection back after the second outage")
	if n := p.metric(t, "shortcut_mqtt_reconnects_total"); n != 2 {
		t.Errorf("shortcut_mqtt_reconnects_total = %v after two outages; want 2", n)
	}
}
