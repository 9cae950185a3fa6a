package gateway

import (
	"errors"

	"golang.org/x/sys/unix"
)

// canPeek: readable can wait for a socket and say how much it holds.
const canPeek = true

// readable waits until the socket has bytes or has ended, and returns how
// many bytes wait to be read: 0 at EOF.
func readable(rc interface {
	Read(func(fd uintptr) bool) error
}) (int, error) {
	var avail int
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false // wait for the poller
		case errors.Is(err, unix.EINTR):
			return false
		case err != nil:
			opErr = err
		case n == 0:
			avail = 0
		default:
			avail, opErr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if opErr == nil && avail < 1 {
				avail = 1
			}
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return avail, opErr
}
