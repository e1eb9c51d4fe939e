package agent

import (
	"context"
	"os"
	"time"
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

// Reload loads model.path again beside the running model, checks it, and
// swaps it in atomically; the pipelines pick it up at their next frame. A
// file that fails to load leaves the old model running; the failure goes
// to the log, to shortcut_model_reloads_total and, as an event, to MQTT.
// Reload is what SIGHUP and the file watcher call.
func (a *Agent) Reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	path := a.cfg.Model.Path
	a.modelStat, _ = statFile(path)
	c, err := a.loadModel(path)
	if err != nil {
		a.met.reloads.WithLabelValues("error").Inc()
		a.met.errors.WithLabelValues("model").Inc()
		old := a.modelRef(a.Model())
		a.log.Error("model reload failed; keeping the running model", "path", path, "err", err, "running_sha256", old.SHA256)
		a.event(Event{Kind: EventModelReloadFailed, Message: err.Error() + "; the previous model keeps running", Path: path, Model: &old})
		return err
	}
	a.setModel(c)
	a.met.reloads.WithLabelValues("ok").Inc()
	now := a.modelRef(c.Info())
	a.log.Info("model reloaded", append([]any{"path", path, "name", now.Name, "sha256", now.SHA256}, inputAttrs(c.Info())...)...)
	a.event(Event{Kind: EventModelReloaded, Message: "model reloaded", Path: path, Model: &now})
	a.rediscover() // the device's model name, and maybe its labels, changed
	return nil
}

func (a *Agent) event(e Event) {
	if a.pub == nil {
		return
	}
	e.Time, e.Device = stamp(time.Now()), a.cfg.Device.ID
	a.web.publish(webEvent, e)
	a.pub.enqueue(message{kind: "event", topic: a.topics.Event(), payload: mustJSON(e)})
}

// watchModel polls model.path and reloads when its size or time changes.
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
			st, err := statFile(a.cfg.Model.Path)
			a.reloadMu.Lock()
			changed := err == nil && st != a.modelStat
			a.reloadMu.Unlock()
			if changed {
				a.log.Info("model file changed; reloading", "path", a.cfg.Model.Path)
				a.Reload()
			}
		}
	}
}
