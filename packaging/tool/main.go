// Command tool builds Shortcut's Debian packages with nfpm used as a
// library (nfpm's own command cannot be built here: two of its modules, for
// RPM and MSIX, are refused by the Go module proxy). It is its own Go module
// so that nfpm stays out of the main module's dependencies.
//
//	go run . -config ../nfpm.yaml -target OUT.deb
//
// The configuration is nfpm's YAML; ${VAR} references in it are expanded
// from the environment, and a reference to a variable that is not set is an
// error (except nfpm's own NFPM_* signing variables), so that a missing ARCH
// or VERSION never yields a broken package.
// Relative paths in it are relative to the working directory.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "package:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	config := fs.String("config", "", "nfpm YAML configuration")
	target := fs.String("target", "", "the .deb to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *config == "" || *target == "" || fs.NArg() > 0 {
		return fmt.Errorf("usage: package -config nfpm.yaml -target OUT.deb")
	}
	missing := map[string]bool{}
	cfg, err := nfpm.ParseFileWithEnvMapping(*config, func(name string) string {
		v, ok := os.LookupEnv(name)
		if !ok && !strings.HasPrefix(name, "NFPM_") { // nfpm asks for its signing passphrases itself
			missing[name] = true
		}
		return v
	})
	if err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	if len(missing) > 0 {
		var names []string
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("%s uses unset variables: %s", *config, strings.Join(names, ", "))
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	if err := nfpm.Validate(info); err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	p, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*target), 0o755); err != nil {
		return err
	}
	tmp := *target + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("building %s: %w", *target, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, *target)
}
