package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Listen listens on "unix:///ABS/PATH" or "tcp://HOST:PORT".
//
// A unix socket is made with mode 0660 and, if group is given (a name or
// a number), that group: who may use the API is who may open it. Its
// parent directory is made (0755) if missing. A socket left at the path
// by a server that is gone is replaced; one that a server still answers
// on, or a file that is not a socket, is an error.
func Listen(addr, group string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		return listenUnix(strings.TrimPrefix(addr, "unix://"), group)
	case strings.HasPrefix(addr, "tcp://"):
		hostport := strings.TrimPrefix(addr, "tcp://")
		if _, _, err := net.SplitHostPort(hostport); err != nil {
			return nil, fmt.Errorf("listen address %q: want tcp://HOST:PORT", addr)
		}
		if group != "" {
			return nil, fmt.Errorf("a socket group is for a unix socket, not %s", addr)
		}
		l, err := net.Listen("tcp", hostport)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return l, nil
	}
	return nil, fmt.Errorf("listen address %q: want unix:///PATH or tcp://HOST:PORT", addr)
}

func listenUnix(path, group string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("socket path %q: not absolute (unix:///run/cordon/cordon.sock)", path)
	}
	path = filepath.Clean(path)
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("making the socket's directory: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}

	// The socket is made in a directory only this process can enter,
	// given its mode and group there, then renamed into place: at no
	// moment can anyone else connect to it with the umask's mode.
	tmp, err := os.MkdirTemp(dir, ".cordon-sock-")
	if err != nil {
		return nil, fmt.Errorf("making the socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	tmpPath := filepath.Join(tmp, "s")
	l, err := net.Listen("unix", tmpPath)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(tmpPath, 0o660); err != nil {
		return fail(fmt.Errorf("setting the socket's mode: %w", err))
	}
	if gid >= 0 {
		if err := os.Chown(tmpPath, -1, gid); err != nil {
			return fail(fmt.Errorf("giving the socket to group %s: %w", group, err))
		}
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return fail(fmt.Errorf("putting the socket at %s: %w", path, err))
	}
	return &unixListener{UnixListener: ul, path: path}, nil
}

// unixListener removes its socket when closed.
type unixListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { os.Remove(l.path) })
	return err
}

// removeStale removes a socket at path that no server answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket path: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("a server already answers on %s", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale socket %s: %w", path, err)
	}
	return nil
}

func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("socket group: %w", err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("socket group %s: gid %q is not a number", group, g.Gid)
	}
	return n, nil
}
