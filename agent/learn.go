package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shortcut-edge/shortcut/agent/head"
	"github.com/shortcut-edge/shortcut/agent/web"
)

// On-device learning: examples come from the pipelines (the model's
// embedding of live frames), a head is trained beside inference, and the
// new head is swapped in through Agent.head. The learner owns the example
// store and the state directory; commands reach it from MQTT (commands.go)
// and from the GPIO button.

// DefaultStateDir is where learning keeps its state when neither
// learning.state_dir nor $STATE_DIRECTORY says otherwise.
const DefaultStateDir = "/var/lib/shortcut"

// activeHead is a trained head in use: its scores replace the model's.
type activeHead struct {
	h       *head.Head
	version string
	labels  []string
}

func newActiveHead(h *head.Head) *activeHead {
	return &activeHead{h: h, version: headVersion(h), labels: h.Labels()}
}

// headVersion names a head by its contents, so that the same head has the
// same version after a restart or an import: "h-" and 12 hex digits of the
// SHA-256 of its labels, weights and bias.
func headVersion(h *head.Head) string {
	s := sha256.New()
	for _, l := range h.Labels() {
		s.Write([]byte(l))
		s.Write([]byte{0})
	}
	var b [4]byte
	for _, v := range append(h.Weights(), h.Bias()...) {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		s.Write(b[:])
	}
	s.Write([]byte(h.Background()))
	return "h-" + hex.EncodeToString(s.Sum(nil)[:6])
}

// headVersion is what payloads report: the active head's version, else the
// configured model.head_version.
func (a *Agent) headVersion() string {
	if ah := a.head.Load(); ah != nil {
		return ah.version
	}
	return a.cfg.Model.HeadVersion
}

// setHead swaps the head in use (nil: the model's own classifier) and
// republishes discovery, whose label options are the head's labels.
func (a *Agent) setHead(ah *activeHead) {
	a.head.Store(ah)
	a.met.setModel(a.Model(), a.headVersion())
	a.rediscover()
}

// example is one frame offered to a learn command by a pipeline.
type example struct {
	seq       uint64
	embedding []float32
	input     []float32 // the model input, for the thumbnail
	info      ModelInfo
	pre       PreprocessConfig
}

// captureReq is a learn command waiting for frames on one camera. Only
// that camera's inference goroutine calls offer; the learner reads out.
type captureReq struct {
	label    string
	count    int
	interval time.Duration
	out      chan example // capacity count
	id       string       // the learn command's id, for progress events

	sent int
	next time.Time // frames captured before it are not taken
}

// offer hands the frame to the request when it is due (interval after the
// previous one taken). It copies what it keeps and never blocks.
func (r *captureReq) offer(f Frame, emb, input []float32, info ModelInfo, pre PreprocessConfig) {
	if r.sent >= r.count || f.Time.Before(r.next) || len(emb) == 0 {
		return
	}
	select {
	case r.out <- example{seq: f.Seq, embedding: slices.Clone(emb), input: slices.Clone(input), info: info, pre: pre}:
		r.sent++
		r.next = f.Time.Add(r.interval)
	default:
	}
}

// learner runs the learning commands. Commands are handled one at a time
// on its goroutine; capturing examples and training run on goroutines of
// their own, which the busy flags guard.
type learner struct {
	a   *Agent
	log *slog.Logger
	cfg LearningConfig
	dir *head.Dir

	cmds chan command
	ids  *commandIDs // ids of the commands that discard state, seen lately
	wg   sync.WaitGroup

	saveMu sync.Mutex // one save at a time, each of the latest state

	mu        sync.Mutex
	store     *head.Store       // nil until a model with an embedding is known
	loaded    head.State        // read at start, until a model can take it
	broken    string            // why the state directory cannot be used ("" when fine)
	training  time.Time         // zero when no training runs
	capturing map[string]string // camera id -> label being learned there
	updating  string            // the id of the model command running ("" when none)
	// parked is a trained head the model in use cannot take (another
	// embedding width): it stays on disk and comes back with a model it fits.
	parked *activeHead
}

// StateDir is where learning keeps its state: learning.state_dir, else
// the first of $STATE_DIRECTORY (systemd's StateDirectory=), else
// DefaultStateDir.
func StateDir(cfg LearningConfig, getenv func(string) string) string {
	if cfg.StateDir != "" {
		return cfg.StateDir
	}
	// systemd sets STATE_DIRECTORY to a colon-separated list.
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return d
	}
	return DefaultStateDir
}

// newLearner opens the state directory and loads the newest readable state.
// A damaged newest file falls back to the one before (logged); a state
// written by a newer agent disables learning rather than overwrite it.
func newLearner(a *Agent) (*learner, error) {
	path := StateDir(a.cfg.Learning, a.opt.Getenv)
	dir, err := head.OpenDir(path)
	if err != nil {
		return nil, fmt.Errorf("learning.state_dir: %w (set learning.state_dir, or learning.enabled: false to run without on-device learning)", err)
	}
	l := &learner{a: a, log: a.log.With("component", "learning"), cfg: a.cfg.Learning, dir: dir,
		cmds: make(chan command, 16), capturing: map[string]string{}}
	if l.ids, err = loadCommandIDs(path); err != nil {
		l.log.Error("the ids of recent forget, reset and import commands cannot be read; starting with none (a repeat of one of them would run again)", "err", err)
	}
	st, info, err := dir.Load()
	for _, skipped := range info.Skipped {
		l.log.Warn("damaged learning state skipped; using an older one", "err", skipped)
	}
	switch {
	case errors.Is(err, head.ErrUnknownVersion):
		l.broken = err.Error()
		l.log.Error("learning disabled: the state directory holds a newer format", "dir", path, "err", err)
	case err != nil:
		l.log.Error("no readable learning state; starting with none (the damaged files stay until two new saves)", "dir", path, "err", err)
	case info.Generation > 0:
		l.log.Info("learning state loaded", "file", info.Path, "labels", len(st.Examples.Labels),
			"examples", st.Examples.Count(), "head", st.Head != nil)
	}
	l.loaded = st
	return l, nil
}

// attach adapts learning to the model in use (at start and after every
// reload): it makes the example store once a model with an embedding of
// the stored width is there, and activates the stored head when it fits.
func (l *learner) attach(info ModelInfo) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dim := info.EmbeddingDim
	if l.broken != "" || dim == 0 {
		if ah := l.a.head.Load(); ah != nil && dim != ah.h.Dim() {
			l.log.Warn("the trained head does not fit the new model; it is set aside (kept on disk) and predictions come from the model's own classifier",
				"head", ah.version, "head_width", ah.h.Dim(), "embedding_width", dim)
			l.parked = ah
			l.a.setHead(nil)
		}
		return
	}
	if l.store == nil {
		ex := l.loaded.Examples
		if ex.Dim != 0 && ex.Dim != dim {
			l.log.Error("stored examples do not fit the model; learning is off until a model with that embedding width is loaded",
				"examples_width", ex.Dim, "embedding_width", dim, "dir", l.dir.Path())
			return
		}
		limits := head.Limits{PerLabel: l.cfg.ExamplesPerLabel, MaxLabels: l.cfg.MaxLabels}
		var s *head.Store
		var err error
		if ex.Dim == 0 {
			s, err = head.NewStore(dim, limits)
		} else {
			s, err = head.NewStoreFrom(ex, limits)
		}
		if err != nil {
			l.log.Error("learning is off: cannot make the example store", "err", err)
			return
		}
		l.store = s
		if h := l.loaded.Head; h != nil && h.Dim() == dim {
			ah := newActiveHead(h)
			l.a.setHead(ah)
			l.log.Info("trained head in use", "head", ah.version, "labels", ah.labels)
		}
		l.loaded = head.State{}
		l.updateMetrics(s)
		return
	}
	if l.store.Dim() != dim {
		l.log.Error("the new model's embedding does not fit the stored examples; learning is off until a fitting model is loaded",
			"examples_width", l.store.Dim(), "embedding_width", dim)
	}
	if ah := l.a.head.Load(); ah != nil && ah.h.Dim() != dim {
		l.log.Warn("the trained head does not fit the new model; it is set aside (kept on disk, used again when a model of its width is loaded) and predictions come from the model's own classifier",
			"head", ah.version, "head_width", ah.h.Dim(), "embedding_width", dim)
		l.parked = ah
		l.a.setHead(nil)
	} else if p := l.parked; ah == nil && p != nil && p.h.Dim() == dim {
		l.log.Info("the model fits the trained head set aside before; it is in use again", "head", p.version)
		l.parked = nil
		l.a.setHead(p)
	} else if ah != nil {
		l.log.Warn("model replaced; the trained head stays in use but was trained on the previous model's embeddings: train again, or reset", "head", ah.version)
	}
}

// ready returns the store, or why learning cannot run now.
func (l *learner) ready() (*head.Store, *cmdError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	info := l.a.Model()
	switch {
	case l.broken != "":
		return nil, &cmdError{codeUnavailable, "learning is off: " + l.broken}
	case info.EmbeddingDim == 0:
		return nil, &cmdError{codeUnavailable, fmt.Sprintf("model %q has no embedding for on-device learning (%s)", info.Name, info.Embedding)}
	case l.store == nil || l.store.Dim() != info.EmbeddingDim:
		return nil, &cmdError{codeUnavailable, fmt.Sprintf("the stored examples (%s) were made with another model's embedding; move them aside to start afresh", l.dir.Path())}
	}
	return l.store, nil
}

// save writes the current head and examples as a new generation.
func (l *learner) save() error {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	s := l.store
	l.mu.Unlock()
	if s == nil {
		return nil
	}
	st := head.State{Examples: s.Snapshot()}
	if ah := l.a.head.Load(); ah != nil {
		st.Head = ah.h
	}
	_, err := l.dir.Save(st)
	if err != nil {
		l.log.Error("saving the learning state failed; the change is live but not on disk", "err", err)
		l.a.met.errors.WithLabelValues("learning").Inc()
	}
	l.updateMetrics(s)
	return err
}

func (l *learner) updateMetrics(s *head.Store) {
	m := l.a.met
	m.examples.Reset()
	for _, lc := range s.Counts() {
		m.examples.WithLabelValues(lc.Label).Set(float64(lc.Count))
	}
}

// run handles commands until ctx ends, then waits for the captures and
// trainings it started.
func (l *learner) run(ctx context.Context) {
	defer l.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-l.cmds:
			l.handle(ctx, c)
		}
	}
}

// submit queues a command without blocking; a full queue is answered busy.
func (l *learner) submit(c command) {
	select {
	case l.cmds <- c:
	default:
		l.a.reply(c, nil, &cmdError{codeBusy, fmt.Sprintf("busy: %d commands are already waiting; try again", cap(l.cmds))})
	}
}

// startLearn installs a capture on the camera and collects its examples on
// a goroutine of its own; the reply goes out when count examples are in,
// or when the camera gave too few in time.
func (l *learner) startLearn(ctx context.Context, c command, req learnRequest) *cmdError {
	store, cerr := l.ready()
	if cerr != nil {
		return cerr
	}
	cam := l.a.cameraByID(req.Camera)
	if cam == nil {
		return &cmdError{codeInvalid, fmt.Sprintf("camera %q: no such camera (cameras: %s)", req.Camera, strings.Join(l.a.cameraIDs(), ", "))}
	}
	l.mu.Lock()
	if other, busy := l.capturing[cam.cfg.ID]; busy {
		l.mu.Unlock()
		return &cmdError{codeBusy, fmt.Sprintf("busy: camera %s is already capturing examples of %q; wait for that learn reply", cam.cfg.ID, other)}
	}
	for camID, lbl := range l.capturing {
		if lbl == req.Label {
			l.mu.Unlock()
			return &cmdError{codeBusy, fmt.Sprintf("busy: %q is already being learned on camera %s", lbl, camID)}
		}
	}
	l.capturing[cam.cfg.ID] = req.Label
	l.mu.Unlock()

	// Only frames captured from now on: the ones still in the pipeline's
	// queues may show the scene before the user set it up.
	r := &captureReq{label: req.Label, count: *req.Count, interval: time.Duration(*req.IntervalMS) * time.Millisecond,
		out: make(chan example, *req.Count), next: time.Now(), id: req.ID}
	cam.capture.Store(r)
	l.log.Info("learning", "label", req.Label, "camera", cam.cfg.ID, "count", r.count, "interval", r.interval)
	l.wg.Go(func() {
		res, err := l.collect(ctx, store, cam, r)
		cam.capture.CompareAndSwap(r, nil)
		l.mu.Lock()
		delete(l.capturing, cam.cfg.ID)
		l.mu.Unlock()
		var warn string
		if res.Added > 0 {
			if serr := l.save(); serr != nil {
				warn = notSaved("the examples are", serr).msg
			}
		}
		l.a.replyWarn(c, res, err, warn)
	})
	return nil
}

// learnGrace is how long, beyond count x interval, a learn command waits
// for frames before it gives up with what it has.
const learnGrace = 15 * time.Second

func (l *learner) collect(ctx context.Context, store *head.Store, cam *camera, r *captureReq) (LearnResult, *cmdError) {
	res := LearnResult{Label: r.label, Camera: cam.cfg.ID, Requested: r.count}
	limit := time.Duration(r.count)*r.interval + learnGrace
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for res.Added < r.count {
		select {
		case <-ctx.Done():
			return res, &cmdError{codeFailed, "the agent is stopping"}
		case <-timer.C:
			res.Total = l.countOf(store, r.label)
			return res, &cmdError{codeFailed, fmt.Sprintf("camera %s gave %d of %d frames within %v (is it delivering frames? see /healthz); the %d taken are kept",
				cam.cfg.ID, res.Added, r.count, limit, res.Added)}
		case ex := <-r.out:
			var thumb []byte
			if l.cfg.ThumbnailSize > 0 {
				var err error
				if thumb, err = thumbnail(ex.input, ex.info, ex.pre, l.cfg.ThumbnailSize); err != nil {
					l.log.Warn("no thumbnail for an example", "label", r.label, "err", err)
				}
			}
			dropped, err := store.Add(r.label, ex.embedding, thumb)
			if err != nil {
				res.Total = l.countOf(store, r.label)
				return res, &cmdError{codeFailed, err.Error()}
			}
			res.Added++
			l.a.hub.Publish(web.TypeProgress, LearnProgress{Time: stamp(time.Now()), Command: CmdLearn, ID: r.id, Label: r.label,
				Camera: cam.cfg.ID, Added: res.Added, Requested: r.count})
			if dropped {
				res.Dropped++
			}
			res.Seqs = append(res.Seqs, ex.seq)
		}
	}
	res.Total = l.countOf(store, r.label)
	l.log.Info("learned", "label", r.label, "camera", cam.cfg.ID, "added", res.Added, "total", res.Total)
	return res, nil
}

func (l *learner) countOf(s *head.Store, label string) int {
	for _, lc := range s.Counts() {
		if lc.Label == label {
			return lc.Count
		}
	}
	return 0
}

// startTrain trains a head from the stored examples beside inference and
// swaps it in when done.
func (l *learner) startTrain(ctx context.Context, c command) *cmdError {
	store, cerr := l.ready()
	if cerr != nil {
		return cerr
	}
	l.mu.Lock()
	if cerr := l.busyLocked("train"); cerr != nil {
		l.mu.Unlock()
		return cerr
	}
	for camID, lbl := range l.capturing {
		l.mu.Unlock()
		return &cmdError{codeBusy, fmt.Sprintf("busy: examples of %q are being captured on camera %s; train after that learn reply", lbl, camID)}
	}
	ex := store.Snapshot()
	if ex.Count() == 0 {
		l.mu.Unlock()
		return &cmdError{codeInvalid, "no examples stored; teach labels with the learn command first"}
	}
	ref := l.a.model.Load()
	opt := head.Options{Mode: head.Replace, Seed: 1}
	var base *head.Head
	if hm, ok := ref.c.(HeadModel); ok {
		var err error
		if base, err = hm.BaseHead(); err != nil {
			l.mu.Unlock()
			return &cmdError{codeUnavailable, err.Error()}
		}
		opt.Mode = head.Extend
	}
	tr, err := head.NewTrainer(base, ex, opt)
	if err != nil {
		l.mu.Unlock()
		return &cmdError{codeInvalid, err.Error()}
	}
	l.training = time.Now()
	l.mu.Unlock()
	l.log.Info("training a head", "examples", ex.Count(), "labels", len(ex.Labels), "mode", opt.Mode)
	l.wg.Go(func() {
		defer func() {
			l.mu.Lock()
			l.training = time.Time{}
			l.mu.Unlock()
		}()
		h, err := l.a.opt.Train(ctx, tr)
		if err == nil {
			h, err = l.clearThreshold(h, ex)
		}
		if err == nil && h.Dim() != l.a.Model().EmbeddingDim {
			err = fmt.Errorf("the model was replaced during training and its embedding no longer fits the head; train again")
		}
		if err != nil {
			l.a.met.trainings.WithLabelValues("error").Inc()
			l.log.Error("training failed", "err", err)
			l.a.event(Event{Kind: EventHeadTrainFailed, Message: err.Error()})
			l.a.reply(c, nil, &cmdError{codeFailed, "training failed: " + err.Error()})
			return
		}
		ah := newActiveHead(h)
		l.a.setHead(ah)
		l.a.met.trainings.WithLabelValues("ok").Inc()
		info := headInfo(ah)
		l.log.Info("new head in use", "head", ah.version, "labels", ah.labels, "validation_accuracy", info.ValidationAccuracy,
			"milliseconds", info.Milliseconds)
		var warn string
		if err := l.save(); err != nil {
			warn = notSaved("the head is", err).msg
		}
		l.a.event(Event{Kind: EventHeadTrained, Message: fmt.Sprintf("head %s trained: validation accuracy %.3f on %d examples",
			ah.version, info.ValidationAccuracy, info.ValidationExamples), Head: info})
		l.a.replyWarn(c, info, nil, warn)
	})
	return nil
}

// clearThreshold raises each imprinted label of h (one taught alone, or
// with fewer than head.Options.MinExamples examples) until its score on its
// own median example is halfway between decision.threshold and 1: imprinting
// alone leaves it tied with the model's best class there (a score near 0.5,
// head.imprintBias), and the debouncer would never make it the state.
func (l *learner) clearThreshold(h *head.Head, ex head.Examples) (*head.Head, error) {
	score := (1 + l.a.cfg.Decision.Threshold) / 2
	for _, label := range h.Report().Imprinted {
		for _, le := range ex.Labels {
			if le.Label != label {
				continue
			}
			var err error
			if h, err = h.WithImprintScore(label, le.Embeddings, score); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// busyLocked refuses a command that conflicts with a running training.
func (l *learner) busyLocked(name string) *cmdError {
	if !l.training.IsZero() {
		return &cmdError{codeBusy, fmt.Sprintf("busy: a training started %s ago is running; %s after its reply (on reply/train)",
			time.Since(l.training).Round(time.Millisecond), name)}
	}
	if l.updating != "" {
		return &cmdError{codeBusy, fmt.Sprintf("busy: model command %q is downloading or installing a model; %s after its reply (on reply/model)", l.updating, name)}
	}
	return nil
}

func (l *learner) forget(label string) (ForgetResult, *cmdError) {
	store, cerr := l.ready()
	if cerr != nil {
		return ForgetResult{}, cerr
	}
	l.mu.Lock()
	if cerr := l.busyLocked("forget"); cerr != nil {
		l.mu.Unlock()
		return ForgetResult{}, cerr
	}
	for camID, lbl := range l.capturing {
		if lbl == label {
			l.mu.Unlock()
			return ForgetResult{}, &cmdError{codeBusy, fmt.Sprintf("busy: %q is being learned on camera %s", label, camID)}
		}
	}
	res := ForgetResult{Label: label, Removed: l.countOf(store, label)}
	existed := store.Remove(label)
	// A taught label leaves the head too; the model's own labels stay.
	ah := l.a.head.Load()
	inHead := ah != nil && slices.Contains(ah.labels, label)
	base := l.a.Model().Labels
	if inHead && !slices.Contains(base, label) {
		nh, err := dropLabel(ah.h, label)
		if err != nil {
			l.mu.Unlock()
			return res, &cmdError{codeFailed, err.Error()}
		}
		if nh == nil {
			l.a.setHead(nil)
		} else {
			l.a.setHead(newActiveHead(nh))
		}
		res.RemovedFromHead = true
	}
	l.mu.Unlock()
	if !existed && !res.RemovedFromHead {
		return res, &cmdError{codeInvalid, fmt.Sprintf("label %q has no examples and is not in the head; see the labels command", label)}
	}
	res.HeadVersion = l.a.headVersion()
	if err := l.save(); err != nil {
		return res, notSaved("the change is", err)
	}
	return res, nil
}

// dropLabel returns h without label's row, or nil when nothing is left.
func dropLabel(h *head.Head, label string) (*head.Head, error) {
	labels, w, b := h.Labels(), h.Weights(), h.Bias()
	i := slices.Index(labels, label)
	if len(labels) == 1 {
		return nil, nil
	}
	dim := h.Dim()
	labels = slices.Delete(labels, i, i+1)
	w = slices.Delete(w, i*dim, (i+1)*dim)
	b = slices.Delete(b, i, i+1)
	bg := h.Background()
	if bg == label {
		bg = ""
	}
	return head.NewHead(labels, dim, w, b, bg)
}

func (l *learner) labels() (LabelsResult, *cmdError) {
	res := LabelsResult{Labels: []LabelCount{}, ModelLabels: l.a.Model().Labels, Learning: []Capturing{}}
	store, cerr := l.ready()
	if store != nil {
		for _, lc := range store.Counts() {
			res.Labels = append(res.Labels, LabelCount{Label: lc.Label, Count: lc.Count})
		}
	} else {
		res.Unavailable = cerr.msg
	}
	if ah := l.a.head.Load(); ah != nil {
		res.Head = headInfo(ah)
	}
	l.mu.Lock()
	res.Training = !l.training.IsZero()
	for cam, lbl := range l.capturing {
		res.Learning = append(res.Learning, Capturing{Camera: cam, Label: lbl})
	}
	l.mu.Unlock()
	slices.SortFunc(res.Learning, func(a, b Capturing) int { return strings.Compare(a.Camera, b.Camera) })
	return res, nil
}

func (l *learner) reset() (ResetResult, *cmdError) {
	l.mu.Lock()
	if cerr := l.busyLocked("reset"); cerr != nil {
		l.mu.Unlock()
		return ResetResult{}, cerr
	}
	old := l.a.head.Load()
	l.a.setHead(nil)
	l.mu.Unlock()
	res := ResetResult{HeadVersion: l.a.headVersion()}
	if old == nil {
		return res, nil
	}
	l.log.Info("head reset; the model's own classifier is in use", "was", old.version)
	l.a.event(Event{Kind: EventHeadReset, Message: "head " + old.version + " removed; predictions come from the model's own classifier"})
	if err := l.save(); err != nil {
		return res, notSaved("the model's own classifier is", err)
	}
	return res, nil
}

// headInfo describes an active head for replies and events.
func headInfo(ah *activeHead) *HeadInfo {
	r := ah.h.Report()
	return &HeadInfo{Version: ah.version, Labels: ah.labels, Mode: r.Mode, ValidationAccuracy: round(r.ValidationAccuracy, 4),
		ValidationExamples: r.ValidationExamples, TrainExamples: r.TrainExamples, Trained: r.Trained, Imprinted: r.Imprinted,
		Iterations: r.Iterations, Milliseconds: round(r.Milliseconds, 1)}
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (string, int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), int64(len(b)), nil
}

// exampleID is the form of a stored example's id (agent/head/ids.go): 16
// hex digits, then "-<n>" for the n-th identical example of a label.
var exampleID = regexp.MustCompile(`^[0-9a-f]{16}(?:-[0-9]{1,4})?$`)

func checkExampleID(id string) error {
	if !exampleID.MatchString(id) {
		return fmt.Errorf("example %q is not an example id: want 16 hex digits (and -<n>), as GET /api/v1/labels lists them", truncate(id, 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ForgetExampleResult is forget's result when it names one example.
type ForgetExampleResult struct {
	Example   string `json:"example"`
	Label     string `json:"label"`
	Remaining int    `json:"remaining"` // the label's examples left; at 0 the label is gone from the store
	// HeadVersion is the head in use, which deleting an example does not
	// change: train again for the head to follow.
	HeadVersion string `json:"head_version"`
}

// forgetExample removes one stored example. The head stays as it is
// (train again to drop what it learnt from the example); a label being
// captured, a training or a model update make it busy.
func (l *learner) forgetExample(id string) (ForgetExampleResult, *cmdError) {
	store, cerr := l.ready()
	if cerr != nil {
		return ForgetExampleResult{}, cerr
	}
	l.mu.Lock()
	if cerr := l.busyLocked("forget"); cerr != nil {
		l.mu.Unlock()
		return ForgetExampleResult{}, cerr
	}
	var label string
	for _, le := range store.ExampleIDs() {
		if slices.Contains(le.IDs, id) {
			label = le.Label
		}
	}
	for camID, lbl := range l.capturing {
		if lbl == label {
			l.mu.Unlock()
			return ForgetExampleResult{}, &cmdError{codeBusy, fmt.Sprintf("busy: %q is being learned on camera %s; forget its examples after that learn reply", label, camID)}
		}
	}
	label, left, ok := store.RemoveExample(id)
	l.mu.Unlock()
	if !ok {
		return ForgetExampleResult{}, invalid("no stored example has id %s (forgotten already, or dropped as its label filled up); see the labels", id)
	}
	l.log.Info("example forgotten", "example", id, "label", label, "remaining", left)
	res := ForgetExampleResult{Example: id, Label: label, Remaining: left, HeadVersion: l.a.headVersion()}
	if err := l.save(); err != nil {
		return res, notSaved("the change is", err)
	}
	return res, nil
}
