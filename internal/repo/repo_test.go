package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindLocatesRepositoryFilesAndExplainsFailures(t *testing.T) {
	dir, err := Find("tools/tflite-node/run.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run.mjs")); err != nil || filepath.Base(dir) != "tflite-node" {
		t.Errorf("Find gave %q, which does not hold run.mjs", dir)
	}
	if _, err := Find("no/such/file.txt"); err == nil || !strings.Contains(err.Error(), RootEnv) {
		t.Errorf("a missing file gave %v; want an error that suggests %s", err, RootEnv)
	}
	t.Setenv(RootEnv, t.TempDir())
	if _, err := Find("tools/tflite-node/run.mjs"); err == nil || !strings.Contains(err.Error(), RootEnv+"=") {
		t.Errorf("a wrong %s gave %v; want an error naming it", RootEnv, err)
	}
}
