package gateway

import (
	"errors"

	"golang.org/x/sys/unix"
)

// canReadRaw: readRaw can wait for a socket and read it with a buffer taken
// only once bytes are there.
const canReadRaw = true

// readRaw waits until the socket behind rc has bytes or has ended, then
// reads what is there into a buffer from getBuf(bulk), lent only for the
// read that finds bytes: a read that would block gives it back before
// waiting. It returns the buffer (nil at EOF or on an error) and how many
// bytes it holds. One read(2) per wakeup, as Go's own Read does.
func readRaw(rc interface {
	Read(func(fd uintptr) bool) error
}, bulk bool) (*[]byte, int, error) {
	var bp *[]byte
	var n int
	var opErr error
	err := rc.Read(func(fd uintptr) bool {
		bp = getBuf(bulk)
		for {
			n, opErr = unix.Read(int(fd), *bp)
			if !errors.Is(opErr, unix.EINTR) {
				break
			}
		}
		if errors.Is(opErr, unix.EAGAIN) {
			putBuf(bp)
			bp = nil
			return false // wait for the poller
		}
		return true
	})
	if err == nil {
		err = opErr
	}
	if err != nil || n <= 0 {
		if bp != nil {
			putBuf(bp)
		}
		return nil, 0, err
	}
	return bp, n, nil
}
