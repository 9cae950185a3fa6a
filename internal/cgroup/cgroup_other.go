//go:build !linux

package cgroup

import (
	"errors"
	"fmt"
)

// errNotLinux is what every operation returns off Linux: cgroups are a
// Linux kernel feature.
var errNotLinux = fmt.Errorf("cgroups: %w on this OS", errors.ErrUnsupported)

// Create is not supported off Linux.
func Create(name string, l Limits) (*Leaf, error) { return nil, errNotLinux }

// Add is not supported off Linux.
func (l *Leaf) Add(pid int) error { return errNotLinux }

// Kill is not supported off Linux.
func (l *Leaf) Kill() error { return errNotLinux }

// Remove is not supported off Linux.
func (l *Leaf) Remove() error { return errNotLinux }

// RemoveDirs is not supported off Linux.
func RemoveDirs(dirs []string) error { return errNotLinux }

// OOMKilled is always false off Linux.
func (l *Leaf) OOMKilled() bool { return false }

// Probe reports that there are no cgroups off Linux.
func Probe() Report {
	return Report{Reason: "cgroups exist only on Linux"}
}

// Parents lists nothing off Linux.
func Parents() []string { return nil }

// MemoryBytes is 0 off Linux.
func (l *Leaf) MemoryBytes() int64 { return 0 }

// SetLimits fails off Linux.
func (l *Leaf) SetLimits(lim Limits) error { return errNotLinux }

// SetCPUWeight fails off Linux.
func (l *Leaf) SetCPUWeight(weight int) error { return errNotLinux }
