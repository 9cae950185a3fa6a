package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runProbe is the test binary inside a sandbox: it makes one kind of
// attempt and prints "ok <detail>" or "err <errno>" per attempt.
func runProbe(args []string) int {
	if len(args) == 0 {
		fmt.Println("err no action")
		return 2
	}
	say := func(err error, detail string) {
		if err != nil {
			fmt.Println("err", errName(err))
			return
		}
		fmt.Println("ok", detail)
	}
	action, rest := args[0], args[1:]
	switch action {
	case "read":
		for _, p := range rest {
			b, err := os.ReadFile(p)
			say(err, strings.TrimSpace(string(b)))
		}
	case "connect-tcp":
		c, err := net.DialTimeout("tcp", rest[0], 2*time.Second)
		if err == nil {
			c.Close()
		}
		say(err, rest[0])
	case "send-udp":
		// A datagram leaves without an answer: report whether the
		// kernel even accepted it for sending.
		c, err := net.Dial("udp", rest[0])
		if err == nil {
			_, err = c.Write([]byte("cordon-udp-probe"))
			c.Close()
		}
		say(err, rest[0])
	case "dns":
		_, err := net.LookupHost(rest[0])
		say(err, rest[0])
	case "connect-unix":
		c, err := net.DialTimeout("unix", rest[0], 2*time.Second)
		if err == nil {
			c.Close()
		}
		say(err, rest[0])
	case "connect-abstract":
		c, err := net.DialTimeout("unix", "@"+rest[0], 2*time.Second)
		if err == nil {
			c.Close()
		}
		say(err, rest[0])
	case "listen-connect":
		// A server on the sandbox's own loopback, and a client to it.
		l, err := net.Listen("tcp4", "127.0.0.1:"+rest[0])
		if err != nil {
			say(err, "listen")
			break
		}
		defer l.Close()
		c, err := net.DialTimeout("tcp4", l.Addr().String(), 2*time.Second)
		if err == nil {
			c.Close()
		}
		say(err, "connect")
	case "listen-connect-abstract":
		// A server on an abstract socket of the sandbox's own, and a
		// client to it: the positive control for connect-abstract.
		l, err := net.Listen("unix", "@"+rest[0])
		if err != nil {
			say(err, "listen")
			break
		}
		defer l.Close()
		c, err := net.DialTimeout("unix", "@"+rest[0], 2*time.Second)
		if err == nil {
			c.Close()
		}
		say(err, "connect")
	case "listen":
		// Listen on an address and accept until killed.
		l, err := net.Listen("tcp", rest[0])
		if err != nil {
			say(err, "listen")
			return 0
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return 0
			}
			c.Close()
		}
	case "kill":
		pid, _ := strconv.Atoi(rest[0])
		say(unix.Kill(pid, unix.SIGTERM), "kill")
	case "ptrace":
		pid, _ := strconv.Atoi(rest[0])
		err := unix.PtraceAttach(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		say(err, "ptrace")
	case "readmem":
		f, err := os.Open("/proc/" + rest[0] + "/mem")
		if err == nil {
			buf := make([]byte, 16)
			_, err = f.ReadAt(buf, 0x400000)
			f.Close()
		}
		say(err, "mem")
	case "tiocsti":
		c := byte('x')
		_, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TIOCSTI, uintptr(unsafe.Pointer(&c)))
		say(errnoOrNil(e), "tiocsti")
	case "unshare-unmask":
		// Try to lift a mask: a nested user+mount namespace, then
		// unmount what covers the path, then read it.
		err := unix.Unshare(unix.CLONE_NEWUSER | unix.CLONE_NEWNS)
		say(err, "unshare")
		if err == nil {
			err = unix.Unmount(rest[0], unix.MNT_DETACH)
			say(err, "umount")
			b, err := os.ReadFile(filepath.Join(rest[0], rest[1]))
			say(err, string(b))
		}
	case "clone-newuser":
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS}
		say(cmd.Run(), "clone")
	case "fork":
		n, _ := strconv.Atoi(rest[0])
		started := 0
		var last error
		for i := 0; i < n; i++ {
			cmd := exec.Command("/bin/sleep", "30")
			if err := cmd.Start(); err != nil {
				last = err
				break
			}
			started++
		}
		fmt.Printf("started %d\n", started)
		say(last, "all")
	case "alloc":
		mb, _ := strconv.Atoi(rest[0])
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("ok allocated", len(keep))
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case "scan-proc":
		// Every process this sandbox can see: does any carry the needle?
		ents, _ := os.ReadDir("/proc")
		seen := 0
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			seen++
			for _, f := range []string{"environ", "cmdline"} {
				b, err := os.ReadFile("/proc/" + e.Name() + "/" + f)
				if err == nil && strings.Contains(string(b), rest[0]) {
					fmt.Println("found", e.Name(), f)
				}
			}
		}
		fmt.Println("ok scanned", seen)
	default:
		fmt.Println("err unknown action", action)
		return 2
	}
	return 0
}

func errnoOrNil(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// errName gives the errno's name (EACCES) when err carries one.
func errName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}
