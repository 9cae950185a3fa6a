package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

func probeNamespaces() check {
	c := check{name: "namespaces", wall: "user, mount, pid, net, ipc, uts, cgroup: own view of files, processes and network"}
	uid, gid := os.Getuid(), os.Getgid()
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{probeArg0}, SysProcAttr: &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWNET |
			unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
	}}
	if err := cmd.Run(); err != nil {
		c.err = fmt.Errorf("cannot create them as uid %d: %w (check /proc/sys/user/max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns)", uid, err)
	}
	return c
}
