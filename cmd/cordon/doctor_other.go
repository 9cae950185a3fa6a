//go:build !linux

package main

import (
	"fmt"
	"runtime"
)

func probeNamespaces() check {
	return check{name: "namespaces", wall: "user, mount, pid, net, ipc, uts, cgroup namespaces",
		err: fmt.Errorf("Cordon's host tier needs Linux; this is %s", runtime.GOOS)}
}
