// Package seccomp holds Cordon's syscall deny list as data and compiles it to
// a seccomp BPF filter that the sandbox init installs right before it starts
// the contained command.
//
// # What it guarantees
//
// After [Install], every thread of the calling process, and every process it
// forks or executes from then on, has no_new_privs set and runs under the
// filter. The filter:
//
//   - answers EPERM for the syscalls in [Rules]: the mount API, namespace
//     creation and entry, access to other processes' memory, the kernel's
//     keyring, module, kexec, BPF and perf interfaces, the clocks, io_uring
//     and a few administrative calls;
//   - answers ENOSYS for clone3, whose flags sit in memory the filter cannot
//     read; glibc and Go fall back to clone, whose flags it can;
//   - matches ioctl's cmd on its low 32 bits only, as the kernel does, so
//     setting the upper bits does not slip TIOCSTI past it;
//   - kills the whole process (SECCOMP_RET_KILL_PROCESS, seen as SIGSYS) on a
//     syscall made through a foreign ABI, such as int 0x80 (i386) on amd64 or
//     AArch32 on arm64, whose syscall numbers the deny list does not cover;
//     x32 calls on amd64 get ENOSYS, as the kernel gives when x32 is off.
//
// Everything else is allowed: this is a deny list, one wall among several
// (mount namespace, Landlock, cgroup, the egress gateway), not a complete
// sandbox by itself.
//
// # What it does not guarantee
//
// It does not filter what the kernel reaches through allowed syscalls (open,
// connect, ...); that is the other walls' job. 32-bit programs cannot run
// inside the sandbox at all. A program that needs clone3 without a clone
// fallback (for example Go's SysProcAttr.UseCgroupFD) fails with ENOSYS.
//
// # Use
//
// The sandbox init calls [Install] as its last step before execve:
//
//	if err := seccomp.Install(); err != nil {
//		return fmt.Errorf("installing seccomp filter: %w", err)
//	}
//	return unix.Exec(path, argv, env)
//
// `cordon doctor` calls [Available], which installs nothing, and prints
// [Rules].
//
// Install is implemented for linux/amd64 and linux/arm64; elsewhere it and
// Available return an error wrapping [errors.ErrUnsupported].
package seccomp
