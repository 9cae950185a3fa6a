package sandbox

import (
	"io"
	"os"
	"time"

	"golang.org/x/term"
)

// ttyRelay joins the user's terminal to the pty master of the sandbox.
type ttyRelay struct {
	in, out, master *os.File
	saved           *term.State
	outDone         chan struct{}
}

func startRelay(in, out, master *os.File) (*ttyRelay, error) {
	saved, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, err
	}
	r := &ttyRelay{in: in, out: out, master: master, saved: saved, outDone: make(chan struct{})}
	go func() {
		io.Copy(out, master) // ends with EIO when the last slave closes
		close(r.outDone)
	}()
	go io.Copy(master, in)
	return r, nil
}

// resize copies the user's window size to the sandbox's terminal; the
// kernel sends SIGWINCH to its foreground process group.
func (r *ttyRelay) resize() {
	if w, err := windowOf(int(r.in.Fd())); err == nil {
		setWindow(int(r.master.Fd()), w)
	}
}

// drain waits for the command's last output. Everything holding the slave
// died with the sandbox, so the master reaches EIO promptly; the bound
// only guards against a kernel that keeps it open.
func (r *ttyRelay) drain() {
	select {
	case <-r.outDone:
	case <-time.After(2 * time.Second):
	}
}

func (r *ttyRelay) stop() {
	term.Restore(int(r.in.Fd()), r.saved)
	r.master.Close()
}
