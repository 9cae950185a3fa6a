package sandbox

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// openPTY opens a terminal pair on the sandbox's own devpts instance, so
// that the command's terminal is a device of the sandbox (ttyname works,
// and the host's /dev/pts stays out of sight). The master goes to the
// supervisor, which relays it to the user's terminal.
func openPTY(ws *Window) (master, slave *os.File, err error) {
	master, slave, err = pty.Open()
	if err != nil {
		return nil, nil, err
	}
	if ws != nil {
		if err := pty.Setsize(master, &pty.Winsize{Rows: ws.Rows, Cols: ws.Cols}); err != nil {
			master.Close()
			slave.Close()
			return nil, nil, fmt.Errorf("setting the window size: %w", err)
		}
	}
	return master, slave, nil
}

// windowOf reads the size of the terminal on fd.
func windowOf(fd int) (*Window, error) {
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return nil, err
	}
	return &Window{Rows: ws.Row, Cols: ws.Col}, nil
}

// setWindow sets the size of the terminal on fd.
func setWindow(fd int, w *Window) error {
	return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: w.Rows, Col: w.Cols})
}
