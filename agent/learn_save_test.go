package agent_test

import (
	"os"
	"strings"
	"testing"

	"github.com/shortcut-edge/shortcut/agent"
)

// TestAChangeThatCannotBeSavedIsLiveWithAWarning takes the state directory
// away under a running agent (a file in its place: writing fails even for
// root, as on a full disk): a learn still answers ok, with a warning that
// says what is in use, that it was not saved, and what to do.
func TestAChangeThatCannotBeSavedIsLiveWithAWarning(t *testing.T) {
	cmd, stateDir := learningAgent(t, nil)
	cmd.ok(agent.CmdLearn, map[string]any{"label": "cat", "count": 2, "interval_ms": 0}, nil)
	gone := stateDir + ".gone"
	if err := os.Rename(stateDir, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(stateDir); os.Rename(gone, stateDir) })

	r := cmd.send(agent.CmdLearn, map[string]any{"label": "cat", "count": 2, "interval_ms": 0})
	if !r.OK || !strings.HasPrefix(r.Warning, "the examples are in use but not saved: ") || !strings.Contains(r.Warning, "free space in the state directory") {
		t.Errorf("learn with an unwritable state directory: %+v; want ok with the warning \"the examples are in use but not saved: ...\" saying what to do", r)
	}
	var labels agent.LabelsResult
	cmd.ok(agent.CmdLabels, map[string]any{}, &labels)
	if len(labels.Labels) != 1 || labels.Labels[0].Count != 4 {
		t.Errorf("labels %+v; want the 4 examples of cat in use", labels.Labels)
	}
	// A reset cannot record its id there: it is refused and changes nothing.
	r = cmd.send(agent.CmdReset, map[string]any{})
	if r.OK || r.Code != "failed" || !strings.Contains(r.Error, "nothing was done") {
		t.Errorf("reset when its id cannot be recorded: %+v; want failed, nothing done", r)
	}
}
