//go:build !linux

package session

import (
	"context"
	"fmt"
	"runtime"
)

type gvisor struct{}

// NewGVisor is the gvisor runtime, which needs Linux.
func NewGVisor(runsc string) Runtime { return gvisor{} }

func (gvisor) Name() string { return "gvisor" }
func (gvisor) Available() error {
	return fmt.Errorf("gvisor sessions need Linux (runsc runs only there); this is %s", runtime.GOOS)
}
func (g gvisor) Create(ctx context.Context, spec Spec) (Box, error) { return nil, g.Available() }
func (gvisor) Sweep(stateDir string) error                          { return nil }
