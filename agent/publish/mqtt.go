// Package publish is the agent's last stage: the MQTT connection (one
// ordered queue, retained states, availability, Home Assistant discovery,
// commands in) and the embedded broker used when no broker is configured.
package publish

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shortcut-edge/shortcut/agent/config"
)

// Topics are the agent's MQTT topics; they are part of the contract
// (PAYLOADS.md).
type Topics struct {
	Prefix, Device, DiscoveryPrefix string
}

func (t Topics) Availability() string { return t.Prefix + "/" + t.Device + "/availability" }
func (t Topics) Event() string        { return t.Prefix + "/" + t.Device + "/event" }
func (t Topics) Prediction(camera string) string {
	return t.Prefix + "/" + t.Device + "/" + camera + "/prediction"
}
func (t Topics) State(camera string) string {
	return t.Prefix + "/" + t.Device + "/" + camera + "/state"
}

// CameraEvents carries a camera's events (new, update, end).
func (t Topics) CameraEvents(camera string) string {
	return t.Prefix + "/" + t.Device + "/" + camera + "/events"
}

// Snapshot is the retained JPEG picture of a camera's latest event.
func (t Topics) Snapshot(camera string) string {
	return t.Prefix + "/" + t.Device + "/" + camera + "/snapshot"
}

// CameraAvailability is a camera's own availability (online, offline).
func (t Topics) CameraAvailability(camera string) string {
	return t.Prefix + "/" + t.Device + "/" + camera + "/availability"
}

// Discovery is the config topic of one Home Assistant entity: domain is
// its platform (sensor, binary_sensor), objectID names it in the device.
func (t Topics) Discovery(domain, objectID string) string {
	return t.DiscoveryPrefix + "/" + domain + "/" + t.Device + "/" + objectID + "/config"
}

// DiscoveryFilter matches every discovery config of this device.
func (t Topics) DiscoveryFilter() string { return t.DiscoveryPrefix + "/+/" + t.Device + "/+/config" }
func (t Topics) HAStatus() string        { return t.DiscoveryPrefix + "/status" }

// Command is where command name is sent; CommandFilter subscribes to all.
func (t Topics) Command(name string) string { return t.Prefix + "/" + t.Device + "/cmd/" + name }
func (t Topics) CommandFilter() string      { return t.Prefix + "/" + t.Device + "/cmd/+" }

// GroupCommand is where command name is sent to every agent of a fleet
// group (device.groups); GroupCommandFilter subscribes to all of them.
func (t Topics) GroupCommand(group, name string) string {
	return t.Prefix + "/group/" + group + "/cmd/" + name
}
func (t Topics) GroupCommandFilter(group string) string { return t.GroupCommand(group, "+") }

// Reply is where the answers to command name go.
func (t Topics) Reply(name string) string { return t.Prefix + "/" + t.Device + "/reply/" + name }

// Availability payloads (Home Assistant's defaults).
const (
	Online  = "online"
	Offline = "offline"
)

// Message is one publish waiting in the outgoing queue.
type Message struct {
	Kind     string // the kind label of shortcut_mqtt_publishes_total (messageKinds)
	Topic    string
	Payload  []byte
	Retained bool
}

// Metrics are the Prometheus series the publisher keeps; the agent owns
// the registry they live on.
type Metrics struct {
	Connected   prometheus.Gauge       // 1 while the connection is up
	Reconnects  prometheus.Counter     // connections after the first
	LastConnect prometheus.Gauge       // Unix seconds of the last connect
	Publishes   *prometheus.CounterVec // by kind and result (ok, error, dropped)
	Errors      prometheus.Counter     // failed publishes
}

// Options are the publisher's ties to the rest of the agent; each may be
// nil.
type Options struct {
	// Discovery builds the Home Assistant discovery messages for the
	// current model (mqtt.discovery).
	Discovery func() []Message
	// CameraAvailability says whether a camera is online or offline.
	CameraAvailability func(camera string) string
	// OnCommand receives <prefix>/<device>/cmd/<name> messages, and with
	// group set those of <prefix>/group/<group>/cmd/<name> for each of
	// Groups (on paho's goroutines; it must not block).
	OnCommand func(name string, payload []byte, group string)
	Groups    []string
}

// CommandsReady says whether the command subscription of the current
// connection is acknowledged.
func (p *Publisher) CommandsReady() bool { return p.commandsReady.Load() }

// LastConnect is when the connection was last established (Unix
// nanoseconds; 0: never).
func (p *Publisher) LastConnect() int64 { return p.lastConnect.Load() }

// Publisher owns the MQTT connection. The pipelines hand it messages
// through a bounded queue; while the broker is away, messages are dropped
// (and counted) instead of piling up, and the latest retained state of
// every camera is republished on each (re)connect, together with
// availability and discovery.
//
// Every publish happens on run's goroutine, one at a time, each waiting
// for the broker's acknowledgement: that is what keeps the messages of a
// topic in the order they were handed over (a subscriber must see state
// changes in order). Paho's callbacks (connect, Home Assistant's status)
// only signal run; they never publish themselves.
type Publisher struct {
	cfg     config.MQTTConfig
	topics  Topics
	cameras []string
	log     *slog.Logger
	met     Metrics
	client  paho.Client
	queue   chan Message
	// connects and rediscover carry paho's connect and Home Assistant
	// "online" callbacks to run (capacity 1: a signal, not a count).
	connects   chan struct{}
	rediscover chan struct{}
	// discoveryFn builds the discovery messages for the current model.
	discoveryFn func() []Message
	// cameraAvailability says whether a camera is online or offline;
	// run publishes it at each connect and when it changes (checked every
	// cameraCheck). Only run touches lastCamera.
	cameraAvailability func(camera string) string
	lastCamera         map[string]string
	// retainedConfigs are the discovery topics the broker replayed as
	// retained since run last looked (guarded by mu); sweep tells run.
	retainedConfigs map[string]bool
	sweep           chan struct{}
	// publish sends one Message; it is send, except in tests.
	publish func(Message)
	// onCommand, when set, receives <prefix>/<device>/cmd/<name> messages,
	// and with group set those of <prefix>/group/<group>/cmd/<name> for
	// each of groups (on paho's goroutines; it must not block).
	onCommand func(name string, payload []byte, group string)
	groups    []string

	// mu guards pending and queued, and makes enqueue's "queue it or
	// keep it pending" one step as seen by run.
	mu sync.Mutex
	// pending holds, per state topic, a state that did not fit in the
	// queue. run publishes it once queued[topic] is 0, that is after
	// every older state of its topic.
	pending map[string]Message
	queued  map[string]int // state topic -> states in the queue
	// lastState is, per state topic, the last state run handled (sent or
	// dropped for want of a connection): what the broker should retain.
	// Only run touches it.
	lastState map[string]Message
	// lastSnapshot is, per snapshot topic, the last snapshot run handled:
	// republished at each connect, as the states are. Only run touches it.
	lastSnapshot map[string]Message

	// drained and giveUp bound a clean stop (drainWait, stopWait): they
	// close drainWait and stopWait after Run's ctx ended. Run sets them
	// before it starts; only run's goroutine reads them (nil outside Run:
	// never closed), and drainLogged.
	drained, giveUp <-chan struct{}
	drainLogged     bool

	connected     atomic.Bool
	commandsReady atomic.Bool // the command subscription is acknowledged
	// commandSub is the command subscription of the latest connect, until
	// announce (on run's goroutine) has waited for its acknowledgement.
	commandSub atomic.Pointer[paho.Token]
	lastErr    atomic.Value // string
	// attempts counts the failed connection attempts of the current
	// outage (since the connection was last up, or since start): what
	// /healthz reports. connectedOnce tells a reconnect from the first
	// connect, for shortcut_mqtt_reconnects_total; lastConnect is the
	// last connect's time (Unix nanoseconds, 0: never).
	attempts      atomic.Uint64
	connectedOnce atomic.Bool
	lastConnect   atomic.Int64
}

const publishQueue = 64

// messageKinds are the kind label values of shortcut_mqtt_publishes_total;
// with publishResults, every series exists (at 0) from the start, so that
// a scrape before the first publish already shows them.
var (
	messageKinds   = []string{"availability", "discovery", "state", "prediction", "event", "camera_event", "snapshot", "reply"}
	publishResults = []string{"ok", "error", "dropped"}
)

func New(cfg config.MQTTConfig, broker string, topics Topics, cameras []string, log *slog.Logger, met Metrics, opt Options) (*Publisher, error) {
	p := &Publisher{cfg: cfg, topics: topics, cameras: cameras, log: log, met: met,
		discoveryFn: opt.Discovery, cameraAvailability: opt.CameraAvailability, onCommand: opt.OnCommand, groups: opt.Groups,
		queue: make(chan Message, publishQueue), connects: make(chan struct{}, 1), rediscover: make(chan struct{}, 1),
		sweep: make(chan struct{}, 1), retainedConfigs: map[string]bool{}, lastCamera: map[string]string{},
		pending: map[string]Message{}, queued: map[string]int{}, lastState: map[string]Message{},
		lastSnapshot: map[string]Message{}}
	p.publish = p.send
	p.lastErr.Store("not connected yet")
	for _, k := range messageKinds {
		for _, r := range publishResults {
			met.Publishes.WithLabelValues(k, r)
		}
	}
	o := paho.NewClientOptions().AddBroker(broker).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).SetPassword(cfg.Password).
		SetKeepAlive(cfg.KeepAlive).SetConnectTimeout(cfg.ConnectTimeout).
		SetAutoReconnect(true).SetMaxReconnectInterval(cfg.ReconnectMax).
		SetConnectRetry(true).SetConnectRetryInterval(cfg.ReconnectMin).
		SetCleanSession(true).SetOrderMatters(false).SetStore(newCopyStore()).
		SetWill(topics.Availability(), Offline, byte(cfg.QoS), true).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			p.connected.Store(false)
			p.commandsReady.Store(false)
			p.met.Connected.Set(0)
			p.lastErr.Store("connection lost: " + err.Error())
			p.log.Warn("mqtt connection lost; reconnecting", "broker", broker, "err", err)
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			p.log.Debug("mqtt reconnecting", "broker", broker)
		}).
		SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
			if f, ok := n.(paho.ConnectionNotificationFailed); ok && f.Reason != nil {
				p.connectFailed(broker, f.Reason)
			}
		})
	if cfg.TLS.Enabled {
		tc, err := config.LoadTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	p.client = paho.NewClient(o)
	return p, nil
}

// connectFailed runs (from paho) after every failed connection attempt,
// first connect and reconnects alike: paho retries on its own and would
// otherwise keep the reason (a certificate the agent does not trust, a
// refused client certificate or password) to itself. It becomes
// /healthz's reason and is logged, as a warning when it changes and at
// debug level while it repeats.
func (p *Publisher) connectFailed(broker string, err error) {
	p.attempts.Add(1)
	why := "connect failed: " + err.Error()
	if prev, _ := p.lastErr.Swap(why).(string); prev != why {
		p.log.Warn("mqtt connect failed; retrying", "broker", broker, "err", err)
	} else {
		p.log.Debug("mqtt connect failed again; retrying", "broker", broker, "err", err)
	}
}

// onConnect runs (in its own goroutine, from paho) after every connect and
// reconnect. It subscribes, and asks run to publish availability,
// discovery and the retained states again, because a restarted broker
// without persistence has forgotten them.
func (p *Publisher) onConnect(c paho.Client) {
	now := time.Now()
	p.lastConnect.Store(now.UnixNano())
	p.met.LastConnect.Set(float64(now.UnixNano()) / 1e9)
	failed := p.attempts.Swap(0)
	if p.connectedOnce.Swap(true) {
		p.met.Reconnects.Inc()
	}
	p.connected.Store(true)
	p.met.Connected.Set(1)
	p.lastErr.Store("")
	p.log.Info("mqtt connected", "failed_attempts", failed)
	if p.onCommand != nil {
		filters := map[string]byte{p.topics.CommandFilter(): byte(p.cfg.QoS)}
		for _, g := range p.groups {
			filters[p.topics.GroupCommandFilter(g)] = byte(p.cfg.QoS)
		}
		tok := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) {
			if m.Retained() {
				// A retained command would run again on every reconnect.
				p.log.Warn("ignoring a retained command; publish commands without the retain flag", "topic", m.Topic())
				return
			}
			if name, ok := strings.CutPrefix(m.Topic(), p.topics.Command("")); ok {
				p.onCommand(name, m.Payload(), "")
				return
			}
			for _, g := range p.groups {
				if name, ok := strings.CutPrefix(m.Topic(), p.topics.GroupCommand(g, "")); ok {
					p.onCommand(name, m.Payload(), g)
					return
				}
			}
		})
		// run's goroutine waits for the acknowledgement (announce): no
		// goroutine here outlives this callback without an owner.
		p.commandSub.Store(&tok)
	}
	if p.cfg.Discovery.Enabled {
		c.Subscribe(p.topics.HAStatus(), byte(p.cfg.QoS), func(_ paho.Client, m paho.Message) {
			if string(m.Payload()) == Online {
				p.log.Info("home assistant came online; republishing discovery")
				signal(p.rediscover)
			}
		})
		// The broker replays the retained configs of this device: what
		// the agent announced before, maybe under an older configuration.
		c.Subscribe(p.topics.DiscoveryFilter(), byte(p.cfg.QoS), func(_ paho.Client, m paho.Message) {
			if !m.Retained() || len(m.Payload()) == 0 {
				return // our own live publishes, and deletions
			}
			p.mu.Lock()
			p.retainedConfigs[m.Topic()] = true
			p.mu.Unlock()
			signal(p.sweep)
		})
	}
	signal(p.connects)
}

// signal wakes whoever waits on ch without blocking; a signal already
// waiting stands for this one too.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// announce runs on run's goroutine after each (re)connect: availability,
// discovery, then for every camera the last state run handled. States
// still in the queue (or pending) are newer and follow it, so a
// subscriber sees them in order.
func (p *Publisher) announce() {
	if tok := p.commandSub.Swap(nil); tok != nil {
		if awaitAck(*tok, p.cfg.ConnectTimeout, p.drained) == nil && (*tok).Error() == nil {
			p.commandsReady.Store(true)
		} else {
			p.log.Warn("mqtt: subscribing to commands failed", "topic", p.topics.CommandFilter(), "err", (*tok).Error())
		}
	}
	p.publish(Message{Kind: "availability", Topic: p.topics.Availability(), Payload: []byte(Online), Retained: true})
	p.publishCameras(true)
	p.publishDiscovery()
	for _, cam := range p.cameras {
		if m, ok := p.lastState[p.topics.State(cam)]; ok {
			p.publish(m)
		}
		if m, ok := p.lastSnapshot[p.topics.Snapshot(cam)]; ok {
			p.publish(m)
		}
	}
}

// publishCameras publishes each camera's availability: all of them
// (after a connect), or those that changed since they were last published.
func (p *Publisher) publishCameras(all bool) {
	if p.cameraAvailability == nil {
		return
	}
	for _, cam := range p.cameras {
		v := p.cameraAvailability(cam)
		if !all && p.lastCamera[cam] == v {
			continue
		}
		p.lastCamera[cam] = v
		p.publish(Message{Kind: "availability", Topic: p.topics.CameraAvailability(cam), Payload: []byte(v), Retained: true})
	}
}

// sweepDiscovery deletes, with an empty retained config, every retained
// discovery config of this device that the agent no longer announces: the
// entities of a camera or a binary_sensor label taken out of the
// configuration.
func (p *Publisher) sweepDiscovery() {
	p.mu.Lock()
	seen := p.retainedConfigs
	p.retainedConfigs = map[string]bool{}
	p.mu.Unlock()
	if p.discoveryFn == nil || !p.cfg.Discovery.Enabled {
		return
	}
	current := map[string]bool{}
	for _, m := range p.discoveryFn() {
		current[m.Topic] = true
	}
	stale := make([]string, 0, len(seen))
	for topic := range seen {
		if !current[topic] {
			stale = append(stale, topic)
		}
	}
	sort.Strings(stale)
	for _, topic := range stale {
		p.log.Info("removing a Home Assistant entity the agent no longer has", "topic", topic)
		p.publish(Message{Kind: "discovery", Topic: topic, Payload: []byte{}, Retained: true})
	}
}

func (p *Publisher) publishDiscovery() {
	if p.discoveryFn == nil || !p.cfg.Discovery.Enabled {
		return
	}
	for _, m := range p.discoveryFn() {
		p.publish(m)
	}
}

// handle publishes m from the queue or the pending states, remembering
// the state it carries for the next reconnect.
func (p *Publisher) handle(m Message) {
	switch m.Kind {
	case "state":
		p.lastState[m.Topic] = m
	case "snapshot":
		p.lastSnapshot[m.Topic] = m
	}
	p.publish(m)
}

// dequeued publishes m, just taken from the queue, and then any pending
// state that m was the last older state of.
func (p *Publisher) dequeued(m Message) {
	if m.Kind == "state" {
		p.mu.Lock()
		p.queued[m.Topic]--
		p.mu.Unlock()
	}
	p.handle(m)
	p.flushPending()
}

// flushPending publishes the states that did not fit in the queue and
// have no older state of their topic left in it. enqueue counts queued
// states and sets pending under p.mu, so the check and the take are one
// step as producers see them.
func (p *Publisher) flushPending() {
	p.mu.Lock()
	if len(p.pending) == 0 {
		p.mu.Unlock()
		return
	}
	var ms []Message
	for _, cam := range p.cameras {
		topic := p.topics.State(cam)
		if m, ok := p.pending[topic]; ok && p.queued[topic] == 0 {
			ms = append(ms, m)
			delete(p.pending, topic)
		}
	}
	p.mu.Unlock()
	for _, m := range ms {
		p.handle(m)
	}
}

// Run connects in the background (retrying with back-off) and publishes
// until ctx ends; then it publishes what was handed over before, says
// "offline" and disconnects, and returns within stopWait plus
// disconnectQuiesce of ctx's end, whatever the broker does.
func (p *Publisher) Run(ctx context.Context) {
	drained, stopDrain := afterEnd(ctx, drainWait)
	defer stopDrain()
	giveUp, stopGiveUp := afterEnd(ctx, stopWait)
	defer stopGiveUp()
	p.drained, p.giveUp = drained.Done(), giveUp.Done()
	p.client.Connect() // with ConnectRetry, this keeps trying on its own
	cameras := time.NewTicker(cameraCheck)
	defer cameras.Stop()
	for {
		select {
		case <-cameras.C:
			p.publishCameras(false)
		case <-p.sweep:
			p.sweepDiscovery()
		case m := <-p.queue:
			p.dequeued(m)
		case <-p.connects:
			p.announce()
		case <-p.rediscover:
			p.publishDiscovery()
		case <-ctx.Done():
			// What the pipelines and the learner handed over before they
			// ended (replies, final states) goes out before "offline".
			for drained := false; !drained; {
				select {
				case m := <-p.queue:
					p.dequeued(m)
				default:
					drained = true
				}
			}
			p.flushPending()
			p.sayOffline()
			p.client.Disconnect(disconnectQuiesce)
			p.connected.Store(false)
			p.met.Connected.Set(0)
			return
		}
	}
}

// cameraCheck is how often run looks for a change of a camera's
// availability.
const cameraCheck = time.Second

// The bounds of a clean stop, counted from the end of Run's ctx. A broker
// that hangs (its host frozen, a network that drops packets without a
// reset) leaves the connection open and never acknowledges: without them,
// every message still queued waited mqtt.connect_timeout in turn, until
// keepalive declared the connection lost (about 40 s by default), and
// systemd, or a test, gave up on the agent first.
//
// The messages handed over before the stop get drainWait to reach the
// broker, and are dropped (and counted) after it. "offline" then gets
// offlineWait for each of its steps (sayOffline). Nothing run waits for,
// paho's Publish included, holds it past stopWait: Run returns within
// stopWait plus disconnectQuiesce (the milliseconds paho's Disconnect may
// take) of the stop, whatever the broker does.
const (
	drainWait         = 2 * time.Second
	offlineWait       = 2 * time.Second
	stopWait          = 5 * time.Second
	disconnectQuiesce = 250
)

// afterEnd returns a context that ends d after parent ends, or when its
// cancel is called (which also ends the goroutine that waits for d).
func afterEnd(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, func() { stop(); cancel() }
}

// errNoAck and errGaveUp are why a publish was not acknowledged: no
// acknowledgement in time, or a stop that ran out of time.
var (
	errNoAck  = errors.New("no acknowledgement from the broker in time")
	errGaveUp = errors.New("the agent is stopping and ran out of time for it")
)

// awaitAck waits up to d for t to complete, or until until closes (a stop
// that ran out of time).
func awaitAck(t paho.Token, d time.Duration, until <-chan struct{}) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.Done():
		return nil
	case <-timer.C:
		return errNoAck
	case <-until:
		return errGaveUp
	}
}

// publishWait publishes and waits up to d for the broker's
// acknowledgement, or until until closes. Paho's Publish itself can
// block, up to 30 s: when the connection drops between its status check
// and its hand-over to the connection's writer, it waits for a writer
// that is gone (paho v1.5.1, client.go Publish). So it runs on a
// goroutine of its own, which run waits for unless the stop runs out of
// time (giveUp); then run leaves it behind (it ends when paho returns)
// and publishes nothing more, so that no later message can overtake it.
func (p *Publisher) publishWait(topic string, qos byte, retained bool, payload []byte, d time.Duration, until <-chan struct{}) error {
	if stopping(p.giveUp) {
		return errGaveUp
	}
	published := make(chan paho.Token, 1)
	go func() { published <- p.client.Publish(topic, qos, retained, payload) }()
	var t paho.Token
	select {
	case t = <-published:
	case <-p.giveUp:
		return errGaveUp
	}
	if err := awaitAck(t, d, until); err != nil {
		return err
	}
	return t.Error()
}

// stopping says whether the stop has run out of time for the messages
// handed over before it (drained) or for everything (giveUp).
func stopping(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sayOffline publishes the retained "offline" of a clean stop and waits
// for the broker to acknowledge it. It goes at QoS 1 at least, whatever
// mqtt.qos says, so that there is an acknowledgement to wait for: after it
// the agent disconnects cleanly, and a clean disconnect discards the last
// will, so this Message is the only way subscribers learn that the agent
// is gone. A first connection attempt still under way gets offlineWait to
// succeed: an agent stopped just after it started says "offline" too. A
// broker that already refused this outage's attempts is not waited for,
// and nothing here outlasts giveUp (stopWait).
func (p *Publisher) sayOffline() {
	if n := p.attempts.Load(); n > 0 && !p.client.IsConnectionOpen() {
		s, _ := p.lastErr.Load().(string)
		p.log.Warn("stopping without saying offline: the broker is unreachable", "failed_attempts", n, "reason", s)
		p.met.Publishes.WithLabelValues("availability", "dropped").Inc()
		return
	}
	timer := time.NewTimer(offlineWait)
	defer timer.Stop()
	t0 := time.Now()
	for !p.client.IsConnectionOpen() {
		select {
		case <-p.connects:
			continue
		case <-timer.C:
		case <-p.giveUp:
		}
		s, _ := p.lastErr.Load().(string)
		p.log.Warn("stopping without saying offline: not connected to the broker", "waited", time.Since(t0).Round(time.Millisecond), "reason", s)
		p.met.Publishes.WithLabelValues("availability", "dropped").Inc()
		return
	}
	qos := byte(max(p.cfg.QoS, 1))
	switch err := p.publishWait(p.topics.Availability(), qos, true, []byte(Offline), offlineWait, p.giveUp); {
	case errors.Is(err, errNoAck):
		p.log.Warn("the broker did not acknowledge offline; subscribers may still see the agent online", "waited", offlineWait)
		p.met.Publishes.WithLabelValues("availability", "error").Inc()
	case err != nil:
		p.log.Warn("publishing offline failed; subscribers may still see the agent online", "err", err)
		p.met.Publishes.WithLabelValues("availability", "error").Inc()
	default:
		p.met.Publishes.WithLabelValues("availability", "ok").Inc()
	}
}

// Enqueue hands m to the Publisher without blocking; a full queue (a
// broker slower than the cameras) drops m, except a state: that one waits
// as pending until the queue has room, and only a newer state of its
// camera arriving while the queue is still full replaces it.
func (p *Publisher) Enqueue(m Message) {
	if m.Kind != "state" {
		select {
		case p.queue <- m:
		default:
			p.met.Publishes.WithLabelValues(m.Kind, "dropped").Inc()
		}
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.pending[m.Topic]; ok {
		select {
		case p.queue <- old: // room again: the older state goes first
			delete(p.pending, m.Topic)
			p.queued[m.Topic]++
		default:
			p.met.Publishes.WithLabelValues(old.Kind, "dropped").Inc()
			p.pending[m.Topic] = m
			return
		}
	}
	select {
	case p.queue <- m:
		p.queued[m.Topic]++
	default:
		p.pending[m.Topic] = m
	}
}

// EnqueueWait is enqueue for messages that must not be lost to a burst of
// predictions (command replies): it waits up to d for room in the queue.
func (p *Publisher) EnqueueWait(m Message, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case p.queue <- m:
	case <-t.C:
		p.met.Publishes.WithLabelValues(m.Kind, "dropped").Inc()
	}
}

// send publishes m and waits for the broker's acknowledgement (QoS > 0),
// so that the queue, not paho's store, is what bounds memory. In a stop
// that has run out of time for it (drainWait), m is dropped.
func (p *Publisher) send(m Message) {
	if !p.client.IsConnectionOpen() {
		p.met.Publishes.WithLabelValues(m.Kind, "dropped").Inc()
		return
	}
	if stopping(p.drained) {
		if !p.drainLogged {
			p.drainLogged = true
			p.log.Warn("stopping: dropping the messages not yet sent; the broker took too long", "limit", drainWait)
		}
		p.met.Publishes.WithLabelValues(m.Kind, "dropped").Inc()
		return
	}
	if err := p.publishWait(m.Topic, byte(p.cfg.QoS), m.Retained, m.Payload, p.cfg.ConnectTimeout, p.drained); err != nil {
		p.met.Publishes.WithLabelValues(m.Kind, "error").Inc()
		p.met.Errors.Inc()
		p.log.Warn("mqtt publish failed", "topic", m.Topic, "err", err)
		return
	}
	p.met.Publishes.WithLabelValues(m.Kind, "ok").Inc()
}

// Status reports whether the connection is up and, when it is not, why
// and how many connection attempts have failed in this outage.
func (p *Publisher) Status() (ok bool, why string, attempts uint64) {
	if p.connected.Load() && p.client.IsConnectionOpen() {
		return true, "", 0
	}
	s, _ := p.lastErr.Load().(string)
	return false, s, p.attempts.Load()
}

// copyStore is paho's in-flight Message store, keeping each packet as
// bytes so that Get returns a fresh copy. Paho's MemoryStore hands the
// same packet back on reconnect, and resume() then sets its DUP flag while
// the old connection's writer may still be reading it (a data race in
// paho v1.5.1). Memory stays bounded: the Publisher has at most a few
// messages in flight.
type copyStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newCopyStore() *copyStore { return &copyStore{m: map[string][]byte{}} }

func (s *copyStore) Open()  {}
func (s *copyStore) Close() {}
func (s *copyStore) Reset() { s.mu.Lock(); s.m = map[string][]byte{}; s.mu.Unlock() }

func (s *copyStore) Put(key string, p packets.ControlPacket) {
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		return
	}
	s.mu.Lock()
	s.m[key] = b.Bytes()
	s.mu.Unlock()
}

func (s *copyStore) Get(key string) packets.ControlPacket {
	s.mu.Lock()
	b, ok := s.m[key]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	p, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		return nil
	}
	return p
}

func (s *copyStore) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *copyStore) Del(key string) { s.mu.Lock(); delete(s.m, key); s.mu.Unlock() }
