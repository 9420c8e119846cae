/* SPDX-License-Identifier: MIT */
/*
 * util.c - error strings, names, paths, clocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shm.h"

const char *shmq_version(void)
{
	return SHMQ_VERSION_STR;
}

const char *shmq_strerror(int err)
{
	if (err == INT_MIN)
		err = 0x7fffffff;       /* no negation overflow; unknown */
	else if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
#define X(code, name, msg) case code: return msg;
	SHMQ_ERRNO_MAP(X)
#undef X
	default:
		return "unknown error";
	}
}

const char *shmq_errname(int err)
{
	if (err == INT_MIN)
		err = 0x7fffffff;       /* no negation overflow; unknown */
	else if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "0";
#define X(code, name, msg) case code: return name;
	SHMQ_ERRNO_MAP(X)
#undef X
	default:
		return "E?";
	}
}

/* 1-63 bytes of [A-Za-z0-9._-], but not "." or ".." (path components). */
int shmq__name_check(const char *name)
{
	size_t i;

	if (!name || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= SHMQ_NAME_MAX)
			return -ENAMETOOLONG;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return -EINVAL;
	}
	return i ? 0 : -EINVAL;
}

/*
 * Resolve a segment name to the file that holds it: NULL means
 * $SHMQ_SEGMENT, else "shmq"; a name with a '/' is a path; otherwise the
 * POSIX shm object /shmq.NAME, which lives at /dev/shm/shmq.NAME.
 */
int shmq__seg_path(const char *name, char *path, size_t len)
{
	int rc, n;

	if (!name) {
		name = getenv("SHMQ_SEGMENT");
		if (!name || !*name)
			name = "shmq";
	}
	if (strchr(name, '/')) {
		if (strlen(name) >= len)
			return -ENAMETOOLONG;
		strcpy(path, name);
		return 0;
	}
	rc = shmq__name_check(name);
	if (rc)
		return rc;
	n = snprintf(path, len, "/dev/shm/shmq.%s", name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

uint64_t shmq__now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int shmq__ofd(int fd, int cmd, short type, off_t byte)
{
	struct flock fl = {
		.l_type = type,
		.l_whence = SEEK_SET,
		.l_start = byte,
		.l_len = 1,
	};
	int rc;

	do
		rc = fcntl(fd, cmd, &fl);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return cmd == F_OFD_GETLK ? fl.l_type : 0;
}
