//go:build !linux

package gateway

import "errors"

// canSplice: off Linux the relay copies through a buffer.
const canSplice = false

func readable(interface {
	Read(func(fd uintptr) bool) error
}) (int, error) {
	return 0, errors.New("not on this OS")
}
