package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCommandIDsAdmitEachIDOnceWithinTheWindowAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ids, err := loadCommandIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	admit := func(ids *commandIDs, command, id string, at time.Time) time.Time {
		t.Helper()
		first, err := ids.admit(command, id, at)
		if err != nil {
			t.Fatal(err)
		}
		return first
	}
	if first := admit(ids, CmdReset, "r1", t0); !first.IsZero() {
		t.Fatalf("a new id was taken as seen at %v", first)
	}
	if first := admit(ids, CmdReset, "r1", t0.Add(time.Hour)); !first.Equal(t0) {
		t.Errorf("the same reset id again: first seen %v, want %v", first, t0)
	}
	if first := admit(ids, CmdForget, "r1", t0.Add(time.Hour)); !first.IsZero() {
		t.Errorf("the id of a reset refused a forget; ids are per command")
	}

	// A restart reads what was seen.
	again, err := loadCommandIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if first := admit(again, CmdReset, "r1", t0.Add(24*time.Hour)); !first.Equal(t0) {
		t.Errorf("after a restart the reset id was not known (first %v)", first)
	}
	// After the window it is forgotten, and taken as new.
	if first := admit(again, CmdReset, "r1", t0.Add(commandIDWindow+time.Minute)); !first.IsZero() {
		t.Errorf("an id older than %v still refused (first %v)", commandIDWindow, first)
	}
}

func TestCommandIDsKeepAtMostTheNewestOnes(t *testing.T) {
	ids, _ := loadCommandIDs(t.TempDir())
	if ids.limit != maxCommandIDs {
		t.Fatalf("limit %d, want %d", ids.limit, maxCommandIDs)
	}
	ids.limit = 10
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 15 {
		if _, err := ids.admit(CmdReset, fmt.Sprint(i), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids.seen) != 10 || ids.seen[0].ID != "5" || ids.seen[9].ID != "14" {
		t.Errorf("kept %v, want the newest 10 (5 to 14)", ids.seen)
	}
}

func TestCommandIDsThatCannotBeSavedAreNotTaken(t *testing.T) {
	dir := t.TempDir()
	ids, _ := loadCommandIDs(dir)
	// The state directory disappears under the agent (a file where it
	// was): saving fails, even for root.
	gone := dir + ".gone"
	if err := os.Rename(dir, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Rename(gone, dir) })
	if _, err := ids.admit(CmdReset, "r1", time.Now()); err == nil || !strings.Contains(err.Error(), commandIDsName) {
		t.Fatalf("admit into an unwritable directory: %v; want an error naming %s", err, commandIDsName)
	}
	if len(ids.seen) != 0 {
		t.Errorf("an id that could not be saved was kept: %v", ids.seen)
	}
}

func TestADamagedCommandIDsFileIsReported(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, commandIDsName), []byte(`{"version": 1, "commands": [`), 0o600)
	ids, err := loadCommandIDs(dir)
	if err == nil || !strings.Contains(err.Error(), commandIDsName) {
		t.Errorf("damaged file: %v; want an error naming it", err)
	}
	if ids == nil || len(ids.seen) != 0 {
		t.Fatalf("a damaged file must still give an empty, usable list")
	}
	if _, err := ids.admit(CmdReset, "r1", time.Now()); err != nil {
		t.Errorf("the next admit does not rewrite the damaged file: %v", err)
	}
	if _, err := loadCommandIDs(dir); err != nil {
		t.Errorf("after a rewrite: %v", err)
	}
}
