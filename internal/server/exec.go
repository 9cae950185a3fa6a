package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/session"
)

// drainAfterExit is how long an exec's output is still read after its
// process ended: a child it left in the background may hold stdout open
// for ever, and the exit frame must not wait for it.
const drainAfterExit = 250 * time.Millisecond

// stream writes NDJSON lines, one at a time, each flushed: the frames of
// stdout and stderr come from two goroutines.
type stream struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	broken chan struct{} // closed at the first failed write: the client is gone
	err    error
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	st := &stream{w: w, rc: http.NewResponseController(w), broken: make(chan struct{})}
	st.flush()
	return st
}

// send writes v as one line and flushes it; after a failed write it does
// nothing.
func (st *stream) send(v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a command line reads as typed: "a > b", not "a \u003e b"
	if err := enc.Encode(v); err != nil {
		return // cannot happen: frames and events are plain data
	}
	b := buf.Bytes()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return
	}
	if _, err := st.w.Write(b); err != nil {
		st.fail(err)
		return
	}
	st.flushLocked()
}

func (st *stream) flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushLocked()
}

func (st *stream) flushLocked() {
	if st.err != nil {
		return
	}
	if err := st.rc.Flush(); err != nil {
		st.fail(err)
	}
}

func (st *stream) fail(err error) {
	st.err = err
	close(st.broken)
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	var req client.ExecRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	e, err := s.m.Exec(r.Context(), r.PathValue("id"), req)
	var xe *session.ExecError
	switch {
	case errors.As(err, &xe):
		// The command's own failure (not found, not executable): an
		// exit, as a shell would say it.
		st := newStream(w)
		code := xe.Code
		st.send(client.ExecFrame{Type: client.FrameExit, ExitCode: &code, Error: xe.Error()})
		return
	case err != nil && isRequestError(err):
		s.fail(w, err)
		return
	case err != nil:
		s.opts.Log("exec in %s: %v", r.PathValue("id"), err)
		st := newStream(w)
		st.send(client.ExecFrame{Type: client.FrameError, Error: err.Error()})
		return
	}
	defer e.Close()

	proc := e.Process()
	st := newStream(w)
	st.send(client.ExecFrame{Type: client.FrameStarted, ExecID: e.ID, Pid: proc.Pid()})

	var readers sync.WaitGroup
	pump := func(rd io.Reader, typ string) {
		defer readers.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := rd.Read(buf)
			if n > 0 {
				st.send(client.ExecFrame{Type: typ, Data: append([]byte(nil), buf[:n]...)})
			}
			if err != nil {
				return
			}
		}
	}
	if out := proc.Stdout(); out != nil {
		readers.Add(1)
		go pump(out, client.FrameStdout)
	}
	if errOut := proc.Stderr(); errOut != nil {
		readers.Add(1)
		go pump(errOut, client.FrameStderr)
	}
	read := make(chan struct{})
	go func() {
		readers.Wait()
		close(read)
	}()

	// The client leaving, or no longer taking frames, ends the exec: no
	// process outlives the request that watches it.
	select {
	case <-e.Done():
	case <-r.Context().Done():
		e.Kill()
		<-e.Done()
	case <-st.broken:
		e.Kill()
		<-e.Done()
	}
	drain := time.NewTimer(drainAfterExit)
	select {
	case <-read:
	case <-drain.C:
		// Something still holds the output open (a child left in the
		// background). What the process wrote is in the pipes already:
		// the readers are stopped, then the pipes emptied without
		// waiting, so that a busy server that did not read in time
		// loses nothing of it.
		stopped := stopReaders(proc)
		<-read
		if stopped {
			drainRest(proc.Stdout(), func(b []byte) { st.send(client.ExecFrame{Type: client.FrameStdout, Data: b}) })
			drainRest(proc.Stderr(), func(b []byte) { st.send(client.ExecFrame{Type: client.FrameStderr, Data: b}) })
		}
	}
	drain.Stop()
	e.Close() // a reader still blocked returns now
	<-read

	status, werr := e.Status()
	code := status.Code
	f := client.ExecFrame{Type: client.FrameExit, ExitCode: &code, Timeout: e.TimedOut()}
	if status.Signal != 0 {
		f.Signal = session.SignalName(status.Signal)
	}
	if werr != nil {
		f.Error = werr.Error()
	}
	st.send(f)
}

// isRequestError says whether err is the caller's (a plain 4xx) rather
// than the runtime's.
func isRequestError(err error) bool {
	for _, target := range []error{session.ErrBadRequest, session.ErrNotFound, session.ErrStopped, session.ErrConflict, session.ErrLimit} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func (s *Server) stdin(w http.ResponseWriter, r *http.Request) {
	e, err := s.m.Execution(r.PathValue("id"), r.PathValue("exec"))
	if err != nil {
		s.fail(w, err)
		return
	}
	if err := e.WriteStdin(r.Body); err != nil {
		if !errors.Is(err, session.ErrConflict) {
			err = &conflictError{"writing to the exec's stdin: " + err.Error()}
		}
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// conflictError is a 409 the server itself decides.
type conflictError struct{ msg string }

func (e *conflictError) Error() string        { return e.msg }
func (e *conflictError) Is(target error) bool { return target == session.ErrConflict }

func (s *Server) resize(w http.ResponseWriter, r *http.Request) {
	var req client.ResizeRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	e, err := s.m.Execution(r.PathValue("id"), r.PathValue("exec"))
	if err == nil {
		err = e.Resize(req.Rows, req.Cols)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	var req client.SignalRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if _, err := session.ParseSignal(req.Signal); err != nil {
		s.fail(w, err)
		return
	}
	e, err := s.m.Execution(r.PathValue("id"), r.PathValue("exec"))
	if err == nil {
		err = e.Signal(req.Signal)
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// events streams a session's past events and, with follow, its new ones
// until the session ends or the client leaves.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	follow := false
	switch v := r.URL.Query().Get("follow"); v {
	case "", "0", "false":
	case "1", "true":
		follow = true
	default:
		s.fail(w, badRequest("follow %q: want 1 or 0", v))
		return
	}
	past, sub, err := s.m.Events(r.PathValue("id"), follow)
	if err != nil {
		s.fail(w, err)
		return
	}
	st := newStream(w)
	for _, e := range past {
		st.send(e)
	}
	if sub == nil {
		return
	}
	defer sub.Close()
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				if sub.Dropped() {
					st.send(client.Event{"event": session.EventOverflow, "time": time.Now().UTC().Format(time.RFC3339Nano),
						"error": "this reader fell too far behind the session's events and was dropped; read again without follow for the history"})
				}
				return
			}
			st.send(e)
		case <-r.Context().Done():
			return
		case <-st.broken:
			return
		}
	}
}

// deadliner is a pipe whose blocked reads can be ended.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// stopReaders ends the reads blocked on the process's output (pipes that
// take deadlines) and says whether it could; when it could not, closing the
// process's stdio ends them.
func stopReaders(p session.Process) bool {
	ok := true
	for _, rd := range []io.Reader{p.Stdout(), p.Stderr()} {
		if rd == nil {
			continue
		}
		d, can := rd.(deadliner)
		if !can || d.SetReadDeadline(time.Unix(1, 0)) != nil {
			ok = false
		}
	}
	return ok
}

// drainRest sends what the pipe rd holds now, reading without waiting.
func drainRest(rd io.Reader, send func([]byte)) {
	f, ok := rd.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok || rd == nil {
		return
	}
	if d, ok := rd.(deadliner); ok {
		d.SetReadDeadline(time.Time{}) // stopReaders set it in the past
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 32<<10)
	rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.Read(int(fd), buf)
			if n > 0 {
				send(append([]byte(nil), buf[:n]...))
			}
			if n <= 0 || err != nil {
				return true // empty (EAGAIN), at its end, or broken
			}
		}
	})
}
