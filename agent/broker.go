package agent

import (
	"fmt"
	"log/slog"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// embeddedBroker is the MQTT broker the agent runs itself when no broker is
// configured, so that a board works alone (and Home Assistant or
// mosquitto_sub can still connect to it).
type embeddedBroker struct {
	srv *mochi.Server
}

func startEmbeddedBroker(addr string, log *slog.Logger) (*embeddedBroker, error) {
	srv := mochi.New(&mochi.Options{InlineClient: false, Logger: slog.New(quietClosedConns{log.Handler()}).With("component", "embedded-broker")})
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
	return &embeddedBroker{srv: srv}, nil
}

func (b *embeddedBroker) Close() error { return b.srv.Close() }
