//go:build !linux

package gateway

import "errors"

// canPeek: off Linux the relay reads into a buffer it holds while it waits.
const canPeek = false

func readable(interface {
	Read(func(fd uintptr) bool) error
}) (int, error) {
	return 0, errors.New("not on this OS")
}
