//go:build !linux

package gateway

import "errors"

// canReadRaw: off Linux the relay reads into a buffer it holds while it
// waits.
const canReadRaw = false

func readRaw(interface {
	Read(func(fd uintptr) bool) error
}, bool) (*[]byte, int, error) {
	return nil, 0, errors.New("not on this OS")
}
