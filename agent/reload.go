package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/shortcut-edge/shortcut/agent/publish"
	"github.com/shortcut-edge/shortcut/agent/web"
)

// fileStamp is what the watcher compares to notice a replaced model file.
type fileStamp struct {
	size int64
	mod  time.Time
}

func statFile(path string) (fileStamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: st.Size(), mod: st.ModTime()}, nil
}

// Reload loads the model file in use (model.path, or the file a model
// command installed) again beside the running model, checks it, and swaps
// it in atomically; the pipelines pick it up at their next frame. A file
// that fails to load leaves the old model running; the failure goes to the
// log, to shortcut_model_reloads_total and, as an event, to MQTT. Reload is
// what SIGHUP and the file watcher call.
func (a *Agent) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	path := a.modelPath
	c, err := a.replaceModelLocked(path, nil)
	if err != nil {
		old := a.modelRef(a.Model())
		a.event(Event{Kind: EventModelReloadFailed, Message: err.Error() + "; the previous model keeps running", Path: path, Model: &old})
		return err
	}
	now := a.modelRef(c.Info())
	a.event(Event{Kind: EventModelReloaded, Message: "model reloaded", Path: path, Model: &now})
	return nil
}

// replaceModelLocked is the one way a model replaces the running one
// (reload, model, rollback): load path beside it, run it once, let check
// (when not nil) refuse it or record it, and swap it in. On failure the
// running model stays, and the failure is logged and counted; the caller
// publishes the event. a.reloadMu must be held.
func (a *Agent) replaceModelLocked(path string, check func(Classifier) error) (Classifier, error) {
	a.modelStat, _ = statFile(path)
	c, err := a.loadModel(path)
	if err == nil {
		if err = trialRun(c); err != nil {
			err = fmt.Errorf("model %q: %w", path, err)
		}
	}
	if err == nil && check != nil {
		err = check(c)
	}
	if err != nil {
		a.met.reloads.WithLabelValues("error").Inc()
		a.met.errors.WithLabelValues("model").Inc()
		a.log.Error("model not replaced; keeping the running model", "path", path, "err", err, "running_sha256", a.Model().SHA256)
		return nil, err
	}
	a.modelPath = path
	a.setModel(c)
	a.met.reloads.WithLabelValues("ok").Inc()
	a.log.Info("model loaded", append([]any{"path", path, "name", c.Info().Name, "sha256", c.Info().SHA256}, inputAttrs(c.Info())...)...)
	a.rediscover() // the device's model name, and maybe its labels, changed
	return c, nil
}

func (a *Agent) event(e Event) {
	if a.pub == nil {
		return
	}
	e.Time, e.Device = stamp(time.Now()), a.cfg.Device.ID
	a.hub.Publish(web.TypeEvent, e)
	a.pub.Enqueue(publish.Message{Kind: "event", Topic: a.topics.Event(), Payload: mustJSON(e)})
}

// watchModel polls the model file in use and reloads when its size or time changes.
// Polling, not inotify, because a model is often replaced by a rename over
// the watched name, and because it works on every file system.
func (a *Agent) watchModel(ctx context.Context) {
	t := time.NewTicker(a.cfg.Model.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.reloadMu.Lock()
			path := a.modelPath
			st, err := statFile(path)
			changed := err == nil && st != a.modelStat
			a.reloadMu.Unlock()
			if changed {
				a.log.Info("model file changed; reloading", "path", path)
				a.Reload()
			}
		}
	}
}
