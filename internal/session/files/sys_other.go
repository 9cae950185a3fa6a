//go:build !linux

package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// The file operations rely on Linux (O_PATH, /proc/self/fd, statfs
// magic numbers); sessions run only there. This file lets the packages
// that import this one build elsewhere.

var errNotLinux = fmt.Errorf("session file operations need Linux: %w", errors.ErrUnsupported)

type stat struct {
	mode  fs.FileMode
	size  int64
	mtime time.Time
}

func statAt(*os.File, string) (stat, error)                    { return stat{}, errNotLinux }
func openRegularAt(*os.File, string, string) (*os.File, error) { return nil, errNotLinux }
func checkFS(*os.File) error                                   { return errNotLinux }
func setTimes(*os.File, time.Time) error                       { return errNotLinux }
func setTimesAt(*os.File, string, time.Time) error             { return errNotLinux }
