package agent_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/shortcut-edge/shortcut/agent"
)

// runInBackground starts a's Run and returns a channel closed when Run
// has returned, and the cancel that stops it; the test's end stops it too.
func runInBackground(t *testing.T, a *agent.Agent) (<-chan struct{}, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitLimit):
			t.Errorf("agent Run did not return %v after cancel", waitLimit)
		}
	})
	return done, cancel
}

// TestTheEmbeddedBrokerStopsOnlyOnceSubscribersHaveTheOffline: a stopping
// agent's embedded broker waits until its subscribers acknowledge the
// agent's "offline". mochi acknowledges a publish to its sender before it
// passes it on, and the agent used to stop the broker right after that
// acknowledgement: now and then the subscriber lost the "offline" and
// `make run` hung (issue 21). Here the subscriber holds its
// acknowledgement; the agent must keep the broker, and not return from
// Run, meanwhile.
func TestTheEmbeddedBrokerStopsOnlyOnceSubscribersHaveTheOffline(t *testing.T) {
	cfg := testConfig("")
	cfg.EmbeddedBroker.Address = "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := loopingAgent(t, cfg, nil)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	done, stop := runInBackground(t, a)

	offline := make(chan paho.Message, 1)
	online := make(chan struct{}, 1)
	o := paho.NewClientOptions().AddBroker("tcp://" + cfg.EmbeddedBroker.Address).SetClientID("holds-its-acks").
		SetAutoAckDisabled(true).SetAutoReconnect(false).SetConnectTimeout(waitLimit)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("subscriber cannot connect to the embedded broker: %v", tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.Subscribe("shortcut/testdev/availability", 1, func(_ paho.Client, m paho.Message) {
		switch string(m.Payload()) {
		case agent.Online:
			m.Ack()
			select {
			case online <- struct{}{}:
			default:
			}
		case agent.Offline:
			offline <- m // acknowledged below, by the test
		}
	})
	if !tok.WaitTimeout(waitLimit) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case <-online:
	case <-time.After(waitLimit):
		t.Fatalf("no online from the agent within %v", waitLimit)
	}

	stop()
	var m paho.Message
	select {
	case m = <-offline:
	case <-time.After(waitLimit):
		t.Fatalf("the stopping agent's offline did not reach the subscriber within %v", waitLimit)
	}
	// The broker waits for the acknowledgement (up to 3 s, so that a stuck
	// subscriber cannot hold the agent): within this much shorter hold,
	// Run must not have returned.
	select {
	case <-done:
		t.Fatal("the agent stopped its embedded broker while a subscriber had not acknowledged the offline yet")
	case <-time.After(200 * time.Millisecond):
	}
	m.Ack()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return %v after the subscriber acknowledged the offline", waitLimit)
	}
}

// TestAnAgentStoppedBeforeItConnectedStillSaysOffline: a clean stop always
// ends with "offline", even when it comes before the MQTT client's first
// connection is up (an agent stopped at once, a video shorter than the
// connect); before, the agent then said nothing and a subscriber waiting
// for the offline, such as `make run`'s, waited in vain.
func TestAnAgentStoppedBeforeItConnectedStillSaysOffline(t *testing.T) {
	cfg := testConfig("")
	cfg.EmbeddedBroker.Address = "127.0.0.1:" + strconv.Itoa(freePort(t))
	a := loopingAgent(t, cfg, nil)
	if err := a.Start(); err != nil { // the embedded broker listens from here
		t.Fatal(err)
	}
	sub := subscribe(t, "tcp://"+cfg.EmbeddedBroker.Address, "shortcut/testdev/availability")
	done, stop := runInBackground(t, a)
	stop() // at once: the agent's client is still connecting
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return %v after cancel", waitLimit)
	}
	if !hasPayload(agent.Offline)(sub.On("shortcut/testdev/availability")) {
		t.Errorf("an agent stopped before its first connection said %v on its availability topic; want offline", sub.On("shortcut/testdev/availability"))
	}
}
