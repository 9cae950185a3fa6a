package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, content string
		mode          os.FileMode
		want, err     string
	}{
		{"good", "0123456789abcdef0123\nsecond line\n", 0o600, "0123456789abcdef0123", ""},
		{"spaces trimmed", "  0123456789abcdef0123  \r\n", 0o400, "0123456789abcdef0123", ""},
		{"readable by the group", "0123456789abcdef0123\n", 0o640, "", "chmod 600"},
		{"readable by all", "0123456789abcdef0123\n", 0o644, "", "chmod 600"},
		{"short", "short\n", 0o600, "", "shorter than 16"},
		{"empty", "", 0o600, "", "shorter than 16"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := readTokenFile(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("readTokenFile = %q, %v; want an error saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("readTokenFile = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := readTokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing token file was read")
	}
}

func TestLockState(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockState(dir); err == nil || !strings.Contains(err.Error(), "another cordon serve") {
		t.Errorf("a second lock on the state directory: %v", err)
	}
	unlock()
	unlock2, err := lockState(dir)
	if err != nil {
		t.Fatalf("the lock after the first was released: %v", err)
	}
	unlock2()
}

func TestServeRefusesUnsafeSetups(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		f    serveFlags
		want string
	}{
		{"tcp without a token", serveFlags{listen: "tcp://127.0.0.1:0", stateDir: dir}, "needs --token-file"},
		{"a token on a unix socket", serveFlags{listen: "unix://" + filepath.Join(dir, "s"), tokenFile: "/dev/null", stateDir: dir}, "for --listen tcp://"},
		{"tls on a unix socket", serveFlags{listen: "unix://" + filepath.Join(dir, "s"), tlsCert: "c", tlsKey: "k", stateDir: dir}, "for --listen tcp://"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := runServe(context.Background(), io.Discard, tt.f); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("runServe = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
