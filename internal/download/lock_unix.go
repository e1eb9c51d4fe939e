//go:build unix

package download

import (
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive, non-blocking lock on f, released when f is closed. It fails only
// when another open file holds the lock; where locks are not supported (some network file
// systems) it goes on without one.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errors.New("its .part file is locked")
	}
	return nil
}
