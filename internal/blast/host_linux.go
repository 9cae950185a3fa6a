package blast

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// probeOS reads what only /proc tells: routes, listening sockets,
// processes, Yama and capabilities.
func probeOS(h *Host) {
	route4, err4 := os.ReadFile("/proc/net/route")
	route6, err6 := os.ReadFile("/proc/net/ipv6_route")
	h.RouteKnown = err4 == nil || err6 == nil
	h.DefaultRoute = defaultRoute4(route4) || defaultRoute6(route6)

	n, ok4 := listeningTCP("/proc/net/tcp")
	m, ok6 := listeningTCP("/proc/net/tcp6")
	if ok4 || ok6 {
		h.ListeningTCP = n + m
	}
	if b, err := os.ReadFile("/proc/net/unix"); err == nil {
		h.AbstractSockets = abstractSockets(b)
	}
	h.Processes = processes(h.UID)
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			h.PtraceScope = v
		}
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		h.Caps = effectiveCaps(b)
	}
}

// defaultRoute4 reports whether /proc/net/route has an up route to
// 0.0.0.0/0.
func defaultRoute4(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x1 != 0 { // RTF_UP
			return true
		}
	}
	return false
}

// defaultRoute6 reports whether /proc/net/ipv6_route has a route to ::/0
// through an interface other than lo (the kernel keeps an unreachable
// default route on lo).
func defaultRoute6(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// dest destlen src srclen nexthop metric refcnt use flags iface
		if len(f) < 10 || f[1] != "00" || strings.Trim(f[0], "0") != "" || f[9] == "lo" {
			continue
		}
		if flags, err := strconv.ParseUint(f[8], 16, 32); err == nil && flags&0x1 != 0 {
			return true
		}
	}
	return false
}

// listeningTCP counts the sockets in state LISTEN (0A) of a /proc/net/tcp
// file.
func listeningTCP(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 3 && f[3] == "0A" {
			n++
		}
	}
	return n, true
}

// abstractSockets counts the listening abstract unix sockets of
// /proc/net/unix: their path starts with '@', and __SO_ACCEPTCON is in
// their flags.
func abstractSockets(b []byte) int {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// Num RefCount Protocol Flags Type St Inode Path
		if len(f) < 8 || !strings.HasPrefix(f[7], "@") {
			continue
		}
		if flags, err := strconv.ParseUint(f[3], 16, 32); err == nil && flags&0x10000 != 0 {
			seen[f[7]] = true
		}
	}
	return len(seen)
}

// processes counts the other processes this one could signal: those of
// uid, or all of them for root. -1 if /proc cannot be read.
func processes(uid int) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	self := os.Getpid()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // gone
		}
		// /proc/PID belongs to the process's effective uid (or root,
		// when it is not dumpable: counted for root only, as it should).
		if st, ok := info.Sys().(*syscall.Stat_t); ok && (uid == 0 || int(st.Uid) == uid) {
			n++
		}
	}
	return n
}

// effectiveCaps reads CapEff of /proc/self/status.
func effectiveCaps(status []byte) []string {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil
		}
		var caps []string
		for i := 0; i < 64; i++ {
			if mask&(1<<i) == 0 {
				continue
			}
			if i < len(capNames) {
				caps = append(caps, capNames[i])
			} else {
				caps = append(caps, "cap_"+strconv.Itoa(i))
			}
		}
		return caps
	}
	return nil
}

// capNames are the capabilities by number (linux/capability.h).
var capNames = []string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
	"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
	"cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock",
	"cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
	"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource",
	"cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write",
	"cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
	"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
	"cap_checkpoint_restore",
}
