//go:build !linux

package session

import (
	"context"
	"fmt"
	"runtime"
)

type native struct{}

// NativeOption configures NewNative.
type NativeOption func()

// WithWarm does nothing off Linux.
func WithWarm(n int) NativeOption { return func() {} }

// WithSessionUser does nothing off Linux.
func WithSessionUser(uid, gid int) NativeOption { return func() {} }

// NewNative is the native runtime, which needs Linux.
func NewNative(opts ...NativeOption) Runtime { return native{} }

func (native) Name() string { return "native" }
func (native) Available() error {
	return fmt.Errorf("native sessions need Linux (namespaces, Landlock, seccomp); this is %s", runtime.GOOS)
}
func (n native) Create(ctx context.Context, spec Spec) (Box, error) { return nil, n.Available() }
func (native) Sweep(stateDir string) error                          { return nil }
