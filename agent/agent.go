package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shortcut-edge/shortcut/agent/classify"
	"github.com/shortcut-edge/shortcut/agent/decide"
	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/agent/pins"
	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/agent/web"
	"github.com/shortcut-edge/shortcut/agent/webauth"
)

// Options are the agent's seams for tests and for the camera package.
type Options struct {
	Logger *slog.Logger
	// OpenSource opens each camera's source; nil means OpenSource.
	OpenSource SourceOpener
	// LoadModel loads and checks a model file; nil means LoadModel.
	LoadModel ModelLoader
	// CheckSource validates camera source strings; nil means CheckSource.
	// Give the checker that goes with OpenSource.
	CheckSource SourceChecker
	// Getenv reads NOTIFY_SOCKET, WATCHDOG_USEC and STATE_DIRECTORY; nil
	// means os.Getenv.
	Getenv func(string) string
	// Train runs one head training (on its own goroutine); nil means
	// t.Train(ctx). Tests hold training here to see the agent busy.
	Train func(ctx context.Context, t *head.Trainer) (*head.Head, error)
	// OpenPin finds a GPIO pin by name; nil means the board's pins through
	// periph.io (host.Init, gpioreg.ByName). Only used when gpio names pins.
	OpenPin PinOpener
	// Accelerate moves a loaded model to model.accelerator; nil means
	// classify.Accelerate. Tests stand in for engines that cannot run here
	// (TensorRT).
	Accelerate func(Classifier, classify.AccelOptions, *slog.Logger) (Classifier, AcceleratorStatus)
}

type modelRef struct {
	c    Classifier
	info ModelInfo
}

// Agent is the daemon: cameras, one shared model, the MQTT publisher, the
// HTTP server and systemd notifications, all owned by Run's context.
type Agent struct {
	cfg    Config
	opt    Options
	log    *slog.Logger
	met    *metrics
	topics publish.Topics
	model  atomic.Pointer[modelRef]
	accel  atomic.Pointer[AcceleratorStatus] // what runs the model (loadmodel.go)
	// prepare carries a model whose accelerator is prepared in the
	// background (loadmodel.go) to Run's goroutine that prepares it.
	prepare chan *modelRef
	cams    []*camera
	pub     *publish.Publisher
	notify  *notifier
	head    atomic.Pointer[activeHead] // nil: the model's own classifier
	learn   *learner                   // nil when learning is off
	gpio    *pins.Unit                 // nil without gpio pins
	hub     *web.Hub                   // the page's live events (package web)
	auth    *webauth.Auth              // http.auth: sessions, tokens, the guard of every route

	processed atomic.Uint64
	readyOnce sync.Once

	reloadMu  sync.Mutex
	modelStat fileStamp
	modelPath string // the file in use: model.path, or one a model command installed

	brokerURL string
	httpLn    net.Listener
	broker    *publish.Broker
}

// New checks cfg, loads the model and opens every camera source. Nothing
// runs until Run.
func New(cfg Config, opt Options) (*Agent, error) {
	if errs := cfg.Validate(opt.CheckSource); len(errs) > 0 {
		return nil, &ConfigError{File: "(config)", Errors: errs}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.OpenSource == nil {
		opt.OpenSource = OpenSource
	}
	if opt.LoadModel == nil {
		opt.LoadModel = LoadModel
	}
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	if opt.Train == nil {
		opt.Train = func(ctx context.Context, t *head.Trainer) (*head.Head, error) { return t.Train(ctx) }
	}
	if cfg.MQTT.ClientID == "" {
		cfg.MQTT.ClientID = "shortcut-" + cfg.Device.ID
	}
	if cfg.Device.Name == "" {
		cfg.Device.Name = "Shortcut " + cfg.Device.ID
	}
	a := &Agent{cfg: cfg, opt: opt, log: opt.Logger, met: newMetrics(), notify: notifierFromEnv(opt.Getenv), hub: web.NewHub(), prepare: make(chan *modelRef, 1),
		topics: publish.Topics{Prefix: cfg.MQTT.TopicPrefix, Device: cfg.Device.ID, DiscoveryPrefix: cfg.MQTT.Discovery.Prefix}}
	a.met.reg.MustRegister(newSourceCollector(a), newThermalCollector(thermalRoot))
	a.auth = webauth.New(cfg.HTTP, a.log.With("component", "http"))
	a.modelPath = cfg.Model.Path
	var c Classifier
	var err error
	if p, err := startModelPath(cfg, opt.Getenv); err != nil {
		a.log.Error("the record of the model installed by a model command cannot be read; running model.path", "err", err, "path", cfg.Model.Path)
	} else if p != cfg.Model.Path {
		if c, err = a.loadModel(p); err != nil {
			a.log.Error("the model a model command installed does not load; running model.path (send a model command again)", "installed", p, "err", err, "path", cfg.Model.Path)
		} else {
			a.modelPath = p
			a.log.Info("running the model a model command installed instead of model.path (rollback goes back)", "path", p)
		}
	}
	if c == nil {
		c, err = a.loadModel(cfg.Model.Path)
		if err := cfg.ModelError(c, err); err != nil {
			return nil, err // names model.path and its line
		}
	}
	for _, comp := range []string{"source", "preprocess", "inference", "mqtt", "model", "learning", "gpio"} {
		a.met.errors.WithLabelValues(comp) // present at 0 from the start
	}
	a.model.Store(&modelRef{c: c, info: c.Info()})
	a.met.setModel(c.Info(), a.headVersion())
	a.modelStat, _ = statFile(a.modelPath)
	if cfg.Learning.Enabled {
		if a.learn, err = newLearner(a); err != nil {
			return nil, err
		}
		a.learn.attach(c.Info())
	}
	if a.gpio, err = a.newPins(); err != nil {
		return nil, err
	}
	for _, cc := range cfg.Cameras {
		src, err := opt.OpenSource(cc)
		if err != nil {
			a.closeSources()
			a.gpio.Halt()
			return nil, err
		}
		if ma, ok := src.(ModelAware); ok {
			ma.SetModel(c.Info())
		}
		cam := &camera{cfg: cc, src: src, deb: decide.NewDebouncer(cfg.Decision), limiter: decide.NewRateLimiter(cfg.MQTT.Predictions.MaxRate), events: &eventTracker{camera: cc.ID}}
		cam.lastErr.Store("")
		for _, stage := range []string{"preprocess", "reload"} {
			a.met.dropped.WithLabelValues(cc.ID, stage)
		}
		a.cams = append(a.cams, cam)
	}
	return a, nil
}

// setModel swaps in a reloaded model: sources that make model inputs
// themselves and the learner are told first, then the pipelines pick it up
// at their next frame.
func (a *Agent) setModel(c Classifier) {
	info := c.Info()
	for _, cam := range a.cams {
		if ma, ok := cam.src.(ModelAware); ok {
			ma.SetModel(info)
		}
	}
	if a.learn != nil {
		a.learn.attach(info)
	}
	a.model.Store(&modelRef{c: c, info: info})
	a.met.setModel(info, a.headVersion())
}

func (a *Agent) modelRef(info ModelInfo) ModelRef {
	return ModelRef{Name: info.Name, Version: info.Version, SHA256: info.SHA256, HeadVersion: a.headVersion()}
}

func (a *Agent) cameraByID(id string) *camera {
	for _, c := range a.cams {
		if c.cfg.ID == id {
			return c
		}
	}
	return nil
}

func (a *Agent) cameraIDs() []string {
	ids := make([]string, len(a.cams))
	for i, c := range a.cams {
		ids[i] = c.cfg.ID
	}
	return ids
}

// inputAttrs are log attributes describing a model's input: its size and,
// for a model trained on smaller padded images, the picture area frames
// are fitted into.
func inputAttrs(info ModelInfo) []any {
	attrs := []any{"input", fmt.Sprintf("%dx%dx%d", info.Height, info.Width, info.Channels)}
	if info.ContentHeight > 0 && info.ContentWidth > 0 {
		attrs = append(attrs, "image_size", fmt.Sprintf("%dx%d centred, black border", info.ContentHeight, info.ContentWidth))
	}
	return attrs
}

// Model describes the model in use.
func (a *Agent) Model() ModelInfo { return a.model.Load().info }

func (a *Agent) closeSources() {
	for _, c := range a.cams {
		if err := c.src.Close(); err != nil {
			a.log.Warn("closing camera source", "camera", c.cfg.ID, "err", err)
		}
	}
}

// Start binds the network listeners (embedded broker, HTTP) and prepares
// the MQTT client, so that their errors come back before anything runs; Run calls it when it was not
// called.
func (a *Agent) Start() error {
	if a.brokerURL != "" {
		return nil
	}
	a.brokerURL = a.cfg.MQTT.Broker
	if a.brokerURL == "" {
		b, err := publish.StartBroker(a.cfg.EmbeddedBroker.Address, a.log)
		if err != nil {
			return err
		}
		a.broker = b
		a.brokerURL = "tcp://" + a.cfg.EmbeddedBroker.Address
		a.log.Info("no mqtt.broker configured; running the embedded broker", "address", a.cfg.EmbeddedBroker.Address)
	}
	if a.cfg.HTTP.Address != "" {
		ln, err := net.Listen("tcp", a.cfg.HTTP.Address)
		if err != nil {
			a.stopBroker()
			return fmt.Errorf("http: listen on %s: %w (change http.address, or set it to \"\" to disable)", a.cfg.HTTP.Address, err)
		}
		a.httpLn = ln
	}
	names := make([]string, len(a.cams))
	for i, c := range a.cams {
		names[i] = c.cfg.ID
	}
	opt := publish.Options{Discovery: a.discoveryMessages, CameraAvailability: a.cameraAvailability}
	if a.learn != nil {
		opt.Groups = a.cfg.Device.Groups
		opt.OnCommand = func(name string, payload []byte, group string) {
			a.learn.submit(command{name: name, payload: payload, from: "mqtt", group: group})
		}
	}
	pub, err := publish.New(a.cfg.MQTT, a.brokerURL, a.topics, names, a.log.With("component", "mqtt"), a.met.publisher(), opt)
	if err != nil {
		a.stopBroker()
		if a.httpLn != nil {
			a.httpLn.Close()
		}
		return err
	}
	a.pub = pub
	return nil
}

// stopBroker stops the embedded broker, if the agent runs one, after its
// subscribers have had the agent's last messages (publish.Broker.Close).
func (a *Agent) stopBroker() {
	if a.broker != nil {
		a.broker.Close(a.cfg.MQTT.ClientID)
		a.broker = nil
	}
}

// HTTPAddr is the address the HTTP server listens on (after Start).
func (a *Agent) HTTPAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

// Run runs the agent until ctx ends, then stops every goroutine it started,
// publishes "offline" and returns. Whatever the broker does (gone, hung,
// coming back), the stop takes the HTTP server's shutdown (2 s at most)
// while the pipelines and the learner finish (their frame in flight, up
// to 2 s handing a last event or reply to a full publish queue), then the
// publisher's stop (publish.Publisher.Run: 5.25 s at most): about 7 s
// plus one inference, with camera sources and a training that honour
// ctx; systemd waits 90 s.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Start(); err != nil {
		return err
	}
	defer a.stopBroker()
	defer a.closeSources()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	pub := a.pub
	var wg sync.WaitGroup
	pubCtx, pubCancel := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() { pub.Run(pubCtx); close(pubDone) }()

	var srv *http.Server
	if a.httpLn != nil {
		var ln net.Listener
		srv, ln = a.newHTTPServer(ctx, a.httpLn)
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("http server stopped", "err", err)
			}
		})
	}
	for _, c := range a.cams {
		wg.Go(func() { a.runCamera(ctx, c) })
	}
	if a.learn != nil {
		wg.Go(func() { a.learn.run(ctx) })
	}
	if a.gpio != nil {
		wg.Go(func() { a.gpio.Run(ctx) })
	}
	if a.cfg.Model.Watch {
		wg.Go(func() { a.watchModel(ctx) })
	}
	wg.Go(func() { a.prepareAccelerators(ctx) })
	if a.notify.watchdog > 0 {
		wg.Go(func() { a.watchdog(ctx) })
	}
	a.log.Info("agent running", append([]any{"device", a.cfg.Device.ID, "cameras", len(a.cams), "model", a.Model().Name},
		append(inputAttrs(a.Model()), "broker", a.brokerURL, "http", a.HTTPAddr())...)...)

	<-ctx.Done()
	a.log.Info("stopping")
	a.notify.notify("STOPPING=1")
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(sctx)
		scancel()
	}
	wg.Wait()
	// The pipelines are done: the publisher may now say "offline" and go.
	pubCancel()
	<-pubDone
	return nil
}

// watchdog pings systemd at half its timeout, but only while frames flow:
// a pipeline stuck anywhere stops the pings and systemd restarts us.
func (a *Agent) watchdog(ctx context.Context) {
	t := time.NewTicker(a.notify.watchdog / 2)
	defer t.Stop()
	last := a.processed.Load()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n := a.processed.Load()
			if n == last {
				a.log.Warn("no frame classified since the last watchdog ping; withholding it")
				continue
			}
			last = n
			if err := a.notify.notify("WATCHDOG=1"); err != nil {
				a.log.Warn("sd_notify WATCHDOG failed", "err", err)
			}
		}
	}
}
