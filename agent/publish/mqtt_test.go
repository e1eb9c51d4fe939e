package publish

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shortcut-edge/shortcut/agent/config"
)

// orderPublisher is a Publisher whose broker never answers and whose
// publishes are recorded instead of sent, so that a test sees exactly
// what run hands to the broker, in order.
func orderPublisher(t *testing.T, cameras ...string) (*Publisher, func() []Message) {
	t.Helper()
	cfg := config.Defaults().MQTT
	cfg.ClientID = "order-test"
	cfg.ConnectTimeout, cfg.ReconnectMin, cfg.ReconnectMax = time.Second, time.Minute, time.Minute
	p, err := New(cfg, "tcp://127.0.0.1:1", Topics{Prefix: "shortcut", Device: "dev", DiscoveryPrefix: "homeassistant"},
		cameras, slog.New(slog.DiscardHandler), testMetrics(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var sent []Message
	p.publish = func(m Message) {
		mu.Lock()
		sent = append(sent, m)
		mu.Unlock()
	}
	return p, func() []Message {
		mu.Lock()
		defer mu.Unlock()
		return append([]Message(nil), sent...)
	}
}

// testMetrics are series on no registry.
func testMetrics() Metrics {
	return Metrics{
		Connected:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "connected"}),
		Reconnects:  prometheus.NewCounter(prometheus.CounterOpts{Name: "reconnects"}),
		LastConnect: prometheus.NewGauge(prometheus.GaugeOpts{Name: "last_connect"}),
		Publishes:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "publishes"}, []string{"kind", "result"}),
		Errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "errors"}),
	}
}

func stateMsg(p *Publisher, camera string, seq int) Message {
	return Message{Kind: "state", Topic: p.topics.State(camera), Payload: []byte(strconv.Itoa(seq)), Retained: true}
}

func predictionMsg(p *Publisher, camera string) Message {
	return Message{Kind: "prediction", Topic: p.topics.Prediction(camera), Payload: []byte("{}")}
}

// stateSeqs lists the seqs published on each state topic, in order.
func stateSeqs(t *testing.T, ms []Message) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for _, m := range ms {
		if m.Kind != "state" {
			continue
		}
		n, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			t.Fatalf("state payload %q is not a seq", m.Payload)
		}
		out[m.Topic] = append(out[m.Topic], n)
	}
	return out
}

func TestAStateThatFindsTheQueueFullWaitsAndKeepsItsPlace(t *testing.T) {
	p, _ := orderPublisher(t, "front")
	for range publishQueue {
		p.Enqueue(predictionMsg(p, "front"))
	}
	p.Enqueue(stateMsg(p, "front", 1)) // queue full: pending
	p.Enqueue(stateMsg(p, "front", 2)) // still full: replaces 1
	<-p.queue                          // room for one
	p.Enqueue(stateMsg(p, "front", 3)) // 2 goes first; 3 waits
	var got []string
	for len(p.queue) > 0 {
		if m := <-p.queue; m.Kind == "state" {
			got = append(got, string(m.Payload))
		}
	}
	for _, m := range p.pending {
		got = append(got, "pending "+string(m.Payload))
	}
	if want := []string{"2", "pending 3"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("states queued then pending = %v, want %v", got, want)
	}
}

// TestStatesGoOutInOrderThroughOverflowsAndReconnects drives run with
// bursts that overflow the queue and with reconnects, and checks what a
// subscriber relies on: per camera, states in the order they changed
// (a reconnect may repeat the last one), ending with the latest.
func TestStatesGoOutInOrderThroughOverflowsAndReconnects(t *testing.T) {
	cameras := []string{"front", "back"}
	p, sent := orderPublisher(t, cameras...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	const changes = 300
	var wg sync.WaitGroup
	for _, cam := range cameras {
		wg.Go(func() {
			for seq := 1; seq <= changes; seq++ {
				for range publishQueue / 4 {
					p.Enqueue(predictionMsg(p, cam))
				}
				p.Enqueue(stateMsg(p, cam, seq))
				if seq%50 == 0 {
					signal(p.connects) // as paho's connect callback does
				}
			}
		})
	}
	wg.Wait()
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Publisher run did not return 20s after cancel")
	}
	seqs := stateSeqs(t, sent())
	for _, cam := range cameras {
		got := seqs[p.topics.State(cam)]
		if len(got) == 0 || got[len(got)-1] != changes {
			t.Errorf("camera %s: last state published = %v, want %d", cam, got[max(0, len(got)-1):], changes)
		}
		for i := 1; i < len(got); i++ {
			if got[i] < got[i-1] {
				t.Errorf("camera %s: state %d published after %d; states must go out in order: %v", cam, got[i], got[i-1], got[max(0, i-5):min(len(got), i+5)])
				break
			}
		}
	}
}
