package seccomp

import (
	"slices"
	"strings"
	"testing"
)

func TestRulesWellFormed(t *testing.T) {
	rules := Rules()
	if len(rules) == 0 {
		t.Fatal("Rules() is empty")
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Syscall] {
			t.Errorf("Rules() lists %q twice", r.Syscall)
		}
		seen[r.Syscall] = true
		if r.Errno != "EPERM" && r.Errno != "ENOSYS" {
			t.Errorf("rule %q: Errno = %q, want EPERM or ENOSYS", r.Syscall, r.Errno)
		}
		if r.Why == "" || strings.Contains(r.Why, "\n") {
			t.Errorf("rule %q: Why = %q, want one non-empty line", r.Syscall, r.Why)
		}
	}
	if again := Rules(); !slices.Equal(rules, again) {
		t.Errorf("Rules() is not stable: %v, then %v", rules, again)
	}
}

// TestRulesContents pins the rules whose exact form matters, so that a
// change to them is a deliberate one.
func TestRulesContents(t *testing.T) {
	tests := []struct {
		syscall string
		errno   string
	}{
		{"mount", "EPERM"},
		{"unshare", "EPERM"},
		{"setns", "EPERM"},
		{"clone(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP)", "EPERM"},
		{"clone3", "ENOSYS"},
		{"ptrace", "EPERM"},
		{"bpf", "EPERM"},
		{"keyctl", "EPERM"},
		{"io_uring_setup", "EPERM"},
		{"open_by_handle_at", "EPERM"},
		{"ioctl(TIOCSTI)", "EPERM"},
		{"ioctl(TIOCLINUX)", "EPERM"},
	}
	rules := Rules()
	for _, tt := range tests {
		t.Run(tt.syscall, func(t *testing.T) {
			i := slices.IndexFunc(rules, func(r Rule) bool { return r.Syscall == tt.syscall })
			if i < 0 {
				t.Fatalf("Rules() has no %q", tt.syscall)
			}
			if got := rules[i].Errno; got != tt.errno {
				t.Errorf("rule %q: Errno = %q, want %q", tt.syscall, got, tt.errno)
			}
		})
	}
}

func TestEntriesForArch(t *testing.T) {
	tests := []struct {
		goarch   string
		syscall  string
		included bool
	}{
		{"amd64", "iopl", true},
		{"amd64", "ioperm", true},
		{"arm64", "iopl", false},
		{"arm64", "ioperm", false},
		{"arm64", "mount", true},
		{"riscv64", "mount", true},
	}
	for _, tt := range tests {
		t.Run(tt.goarch+"/"+tt.syscall, func(t *testing.T) {
			got := slices.ContainsFunc(entriesFor(tt.goarch), func(e entry) bool { return e.name == tt.syscall })
			if got != tt.included {
				t.Errorf("entriesFor(%q) has %s = %v, want %v", tt.goarch, tt.syscall, got, tt.included)
			}
		})
	}
}

func TestEntriesConsistent(t *testing.T) {
	for _, e := range denyList {
		if (e.args == "") != (e.test == nil) {
			t.Errorf("entry %s: args %q with test %v; want both or neither", e.name, e.args, e.test)
		}
	}
}
