package publish

import (
	"context"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// stuckClient is a paho client whose connection is open but whose broker
// never acknowledges: each Publish returns a token that never completes,
// or, with block set, does not return at all until the test ends (paho's
// Publish when the connection drops between its status check and its
// hand-over to the writer: client.go, up to 30 s). Methods run does not
// call are left to the nil paho.Client (a call panics).
type stuckClient struct {
	paho.Client
	block   bool
	release chan struct{} // closed when the test ends
	mu      sync.Mutex
	topics  []string // every Publish, in order
	entered chan struct{}
}

func newStuckClient(t *testing.T, block bool) *stuckClient {
	c := &stuckClient{block: block, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	t.Cleanup(func() { close(c.release) })
	return c
}

func (c *stuckClient) Connect() paho.Token     { return pendingToken{} }
func (c *stuckClient) IsConnectionOpen() bool  { return true }
func (c *stuckClient) Disconnect(quiesce uint) {}
func (c *stuckClient) published() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.topics...)
}

func (c *stuckClient) Publish(topic string, qos byte, retained bool, payload any) paho.Token {
	c.mu.Lock()
	c.topics = append(c.topics, topic)
	c.mu.Unlock()
	select {
	case c.entered <- struct{}{}:
	default:
	}
	if c.block {
		<-c.release
	}
	return pendingToken{}
}

// pendingToken never completes: no acknowledgement ever comes.
type pendingToken struct{}

func (pendingToken) Wait() bool                       { select {} }
func (pendingToken) WaitTimeout(d time.Duration) bool { time.Sleep(d); return false }
func (pendingToken) Done() <-chan struct{}            { return nil }
func (pendingToken) Error() error                     { return nil }

// stuckPublisher is a Publisher on c with a full queue of predictions;
// it returns the channel closed when its Run returns and the cancel that
// stops it.
func stuckPublisher(t *testing.T, c *stuckClient) (*Publisher, <-chan struct{}, context.CancelFunc) {
	t.Helper()
	p, _ := orderPublisher(t, "front")
	p.publish = p.send
	p.client = c
	p.connected.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	for range publishQueue + 1 {
		p.Enqueue(predictionMsg(p, "front"))
	}
	select {
	case <-c.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("run did not publish within 20s")
	}
	return p, done, cancel
}

// stopBound is what a test allows Run after its ctx ends: the bound Run
// keeps (stopWait plus Disconnect's quiesce), generously.
const stopBound = 2 * stopWait

// TestAStopReturnsWhileTheBrokerNeverAcknowledges: with the connection
// open and no acknowledgement ever coming (a hung broker), each queued
// message used to wait mqtt.connect_timeout in the stop's drain, one
// after the other (64 of them here: over a minute). Now the drain ends at
// drainWait, the rest is dropped and counted, and "offline" is still
// tried.
func TestAStopReturnsWhileTheBrokerNeverAcknowledges(t *testing.T) {
	c := newStuckClient(t, false)
	p, done, stop := stuckPublisher(t, c)
	stop()
	select {
	case <-done:
	case <-time.After(stopBound):
		t.Fatalf("Run did not return %v after its ctx ended; the bound is stopWait (%v) plus Disconnect's %d ms", stopBound, stopWait, disconnectQuiesce)
	}
	if n := counted(t, p.met.Publishes, "prediction", "dropped"); n == 0 {
		t.Errorf("no prediction counted as dropped after the drain ran out of time")
	}
	got := c.published()
	if len(got) == 0 || got[len(got)-1] != p.topics.Availability() {
		t.Errorf("the last publish of a stop was %q; want offline on %s", got[max(0, len(got)-1):], p.topics.Availability())
	}
}

// TestAStopReturnsWhilePahoPublishIsBlocked: paho's Publish can block for
// 30 s when the connection drops at the wrong moment (see publishWait);
// the agent stopping then (a broker killed just before SIGTERM) waited
// for it. Now run leaves it behind at stopWait, and publishes nothing
// after it, not even "offline", which could otherwise overtake it.
func TestAStopReturnsWhilePahoPublishIsBlocked(t *testing.T) {
	c := newStuckClient(t, true)
	_, done, stop := stuckPublisher(t, c)
	stop()
	select {
	case <-done:
	case <-time.After(stopBound):
		t.Fatalf("Run did not return %v after its ctx ended while paho's Publish was blocked", stopBound)
	}
	if got := c.published(); len(got) != 1 {
		t.Errorf("publishes after the blocked one: %q; want none", got[1:])
	}
}

// counted is the value of vec's series for kind and result.
func counted(t *testing.T, vec *prometheus.CounterVec, kind, result string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(vec)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == kind && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series kind=%q result=%q", kind, result)
	return 0
}
