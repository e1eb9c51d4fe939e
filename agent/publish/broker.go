package publish

import (
	"fmt"
	"log/slog"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is the MQTT broker the agent runs itself when no broker is
// configured, so that a board works alone (and Home Assistant or
// mosquitto_sub can still connect to it).
type Broker struct {
	srv *mochi.Server
	log *slog.Logger
}

// brokerDrain bounds how long a stopping embedded broker waits for its
// subscribers to acknowledge what is still on its way to them (above all
// the agent's "offline"): a subscriber that stopped reading must not hold
// up the agent's exit.
const brokerDrain = 3 * time.Second

func StartBroker(addr string, log *slog.Logger) (*Broker, error) {
	log = log.With("component", "embedded-broker")
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: slog.New(quietClosedConns{log.Handler()})})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "shortcut", Address: addr})); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w (set embedded_broker.address, or mqtt.broker to use another broker)", addr, err)
	}
	if err := srv.Serve(); err != nil {
		srv.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{srv: srv, log: log}, nil
}

// Close stops the broker once what the agent (client ID Publisher) last
// published has reached its subscribers, waiting at most brokerDrain.
//
// mochi acknowledges a publish to its sender before it hands the Message
// to the subscribers, and stopping it drops whatever is still queued for
// them: closing right after the agent's "offline" was acknowledged lost
// that Message now and then (issue 21, `make run`). So Close first waits
// until mochi has handled the Publisher's disconnect (it reads a client's
// packets in order, so every publish before it has been passed on), then
// until no subscriber has a QoS 1 or 2 Message unacknowledged. QoS 0
// subscriptions get what was written to them by then: MQTT promises them
// nothing more.
func (b *Broker) Close(Publisher string) error {
	deadline := time.Now().Add(brokerDrain)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !b.drained(Publisher) {
		if time.Now().After(deadline) {
			b.log.Warn("stopping with messages not yet acknowledged by subscribers", "waited", brokerDrain, "pending", b.pending(Publisher))
			break
		}
		<-tick.C
	}
	return b.srv.Close()
}

func (b *Broker) drained(Publisher string) bool { return len(b.pending(Publisher)) == 0 }

// pending names the clients the broker is still busy with: the Publisher
// while it is connected, and subscribers with messages in flight.
func (b *Broker) pending(Publisher string) []string {
	var out []string
	for id, cl := range b.srv.Clients.GetAll() {
		switch {
		case cl.Closed():
		case id == Publisher:
			out = append(out, id+" (still connected)")
		case cl.State.Inflight.Len() > 0:
			out = append(out, fmt.Sprintf("%s (%d in flight)", id, cl.State.Inflight.Len()))
		}
	}
	return out
}
