/* launch: run a command and record, on the trace file, the monotonic time
 * just before the fork and just after the wait. Part of
 * bench/profile-startup.sh. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: launch TRACEFILE CMD [ARGS...]\n");
		return 2;
	}
	int fd = open(argv[1], O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	long long t0 = now();
	pid_t p = fork();
	if (p == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	int st = 0;
	waitpid(p, &st, 0);
	long long t1 = now();
	dprintf(fd, "%d launch.start %lld\n%d launch.end %lld\n", getpid(), t0, getpid(), t1);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
