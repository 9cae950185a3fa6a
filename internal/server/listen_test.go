package server

import (
	"context"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestListenUnix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	path := filepath.Join(dir, "cordon.sock")
	gid := strconv.Itoa(os.Getgid())
	l, err := Listen("unix://"+path, gid)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != uint32(os.Getgid()) {
		t.Errorf("socket %v, gid %d; want a socket, 0660, gid %s", st.Mode(), st.Sys().(*syscall.Stat_t).Gid, gid)
	}
	if ds, err := os.Stat(dir); err != nil || ds.Mode().Perm() != 0o755 {
		t.Errorf("socket directory: %v, %v; want 0755", ds, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the socket's directory holds %d entries, want the socket alone", len(ents))
	}

	// It serves, and a second server on it is refused.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(l)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := hc.Get("http://cordon/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("over the socket: %q", b)
	}
	hc.CloseIdleConnections()
	if _, err := Listen("unix://"+path, ""); err == nil || !strings.Contains(err.Error(), "already answers") {
		t.Errorf("a second Listen on a live socket: %v", err)
	}
	srv.Close()
	if _, err := os.Lstat(path); err == nil {
		t.Error("the socket remains after Close")
	}

	// A socket left by a dead server is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err = Listen("unix://"+path, "")
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()

	// Anything else at the path is not touched.
	if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix://"+path, ""); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Error("the file at the socket's path was changed")
	}
}

func TestListenAddresses(t *testing.T) {
	l, err := Listen("tcp://127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, addr := range []string{"127.0.0.1:80", "http://127.0.0.1:80", "tcp://127.0.0.1", "unix://relative.sock", ""} {
		if l, err := Listen(addr, ""); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", addr)
		}
	}
	if l, err := Listen("tcp://127.0.0.1:0", "wheel"); err == nil {
		l.Close()
		t.Error("a socket group with TCP was taken")
	}
	if _, err := Listen("unix://"+filepath.Join(t.TempDir(), "s"), "no-such-group-here"); err == nil {
		t.Error("an unknown group was taken")
	}
}
