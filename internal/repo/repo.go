// Package repo finds files of this repository at run time, for the tools
// that tests and benchmarks start (the Node TFLite runner, the Arm NN runner):
// under $SHORTCUT_ROOT if set, else above the working directory, else above
// this source file.
package repo

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// RootEnv overrides where the repository root is looked for.
const RootEnv = "SHORTCUT_ROOT"

// Find returns the folder holding rel, a path relative to the repository
// root such as "tools/tflite-node/run.mjs": filepath.Join(root, filepath.Dir(rel)).
func Find(rel string) (string, error) {
	has := func(root string) bool {
		_, err := os.Stat(filepath.Join(root, rel))
		return err == nil
	}
	if root := os.Getenv(RootEnv); root != "" {
		if !has(root) {
			return "", fmt.Errorf("%s=%s has no %s", RootEnv, root, rel)
		}
		return filepath.Join(root, filepath.Dir(rel)), nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if has(dir) {
				return filepath.Join(dir, filepath.Dir(rel)), nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("cannot find %s above %v; set %s to the repository root", rel, starts, RootEnv)
}
