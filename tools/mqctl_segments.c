/* SPDX-License-Identifier: MIT */
/*
 * mqctl_segments.c - mqctl segments: the POSIX segments under /dev/shm and
 * the file-backed ones named on the command line, each examined as an
 * observer would (nothing is written), with its owner and mode.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqctl.h"

struct seg_row {
	char name[300];
	char path[4200];
	struct stat st;
	int have_st;
	int err;                /* 0: it opens as a segment */
	char status[160];
	struct shmq_seg_info in;
};

/*
 * What @path is: its lstat() (never following a link), and whether it
 * opens as a segment.  It is observed by path, which changes nothing in
 * it, and only if it is a regular file (a FIFO is never opened).
 */
static void seg_examine(const char *name, const char *path, struct seg_row *r)
{
	const char *why;
	shmq_seg *seg;
	int rc, shm;

	/* /dev/shm/shmq.NAME is "-s NAME" in the hint; a file, its path. */
	shm = strncmp(path, "/dev/shm/shmq.", 14) == 0 &&
	      strcmp(path + 14, name) == 0;
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->path, sizeof(r->path), "%s", path);
	if (lstat(path, &r->st) < 0) {
		r->err = -errno;
		snprintf(r->status, sizeof(r->status), "%s", strerror(errno));
		return;
	}
	r->have_st = 1;
	why = file_kind_problem(path, &r->err);
	if (why) {
		snprintf(r->status, sizeof(r->status), "%s", why);
		return;
	}
	/* A path with a '/' is a file to the library, whatever its name. */
	rc = shmq_seg_observe(path, &seg);
	if (!rc) {
		rc = shmq_seg_info(seg, &r->in);
		shmq_seg_close(seg);
	}
	r->err = rc;
	if (!rc)
		snprintf(r->status, sizeof(r->status), "ok");
	else if (rc == -EPROTO)
		snprintf(r->status, sizeof(r->status), "not a shmq segment, "
			 "corrupt, or another layout version ('mqctl -s %s "
			 "check')", shm ? name : path);
	else
		snprintf(r->status, sizeof(r->status), "%s",
			 shmq_strerror(rc));
}

static int row_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seg_row *)a)->name,
		      ((const struct seg_row *)b)->name);
}

/* Column widths of the text table: the longest name and path. */
struct seg_widths {
	int name, path;
};

static void seg_print(const struct ctx *c, const struct seg_row *r, int first,
		      const struct seg_widths *w)
{
	char b[32], u[64], g[64], q[16], m[8];

	if (c->json) {
		printf("%s{\"name\":", first ? "" : ",");
		json_str(stdout, r->name);
		printf(",\"path\":");
		json_str(stdout, r->path);
		if (r->have_st) {
			printf(",\"size\":%llu,\"uid\":%u,\"user\":",
			       (unsigned long long)r->st.st_size,
			       (unsigned)r->st.st_uid);
			json_str(stdout, user_name(r->st.st_uid, u, sizeof(u)));
			printf(",\"gid\":%u,\"group\":",
			       (unsigned)r->st.st_gid);
			json_str(stdout, group_name(r->st.st_gid, g,
						    sizeof(g)));
			printf(",\"mode\":\"%04o\"",
			       (unsigned)(r->st.st_mode & 07777));
		} else {
			printf(",\"size\":null,\"uid\":null,\"user\":null,"
			       "\"gid\":null,\"group\":null,\"mode\":null");
		}
		printf(",\"valid\":%s,\"error\":", r->err ? "false" : "true");
		if (r->err)
			json_str(stdout, err_name(r->err));
		else
			printf("null");
		printf(",\"status\":");
		json_str(stdout, r->status);
		if (r->err)
			printf(",\"queues\":null,\"procs\":null}");
		else
			printf(",\"queues\":%u,\"procs\":%u}", r->in.queues,
			       r->in.procs);
		return;
	}
	snprintf(q, sizeof(q), "-");
	if (!r->err)
		snprintf(q, sizeof(q), "%u", r->in.queues);
	snprintf(b, sizeof(b), "-");
	snprintf(u, sizeof(u), "-");
	snprintf(g, sizeof(g), "-");
	snprintf(m, sizeof(m), "-");
	if (r->have_st) {
		fmt_bytes((uint64_t)r->st.st_size, b, sizeof(b));
		user_name(r->st.st_uid, u, sizeof(u));
		group_name(r->st.st_gid, g, sizeof(g));
		snprintf(m, sizeof(m), "%04o",
			 (unsigned)(r->st.st_mode & 07777));
	}
	printf("%-*s %10s %-10s %-10s %4s %6s %-*s %s\n", w->name, r->name, b,
	       u, g, m, q, w->path, r->path, r->status);
}

/* Room for one more row in *@rows; NULL when out of memory. */
static struct seg_row *seg_more(struct seg_row **rows, size_t *n,
				size_t *cap)
{
	struct seg_row *tmp;

	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		tmp = realloc(*rows, *cap * sizeof(**rows));
		if (!tmp)
			return NULL;
		*rows = tmp;
	}
	return &(*rows)[(*n)++];
}

/*
 * The POSIX segments are the /dev/shm/shmq.* objects; a file-backed
 * segment can be anywhere, so those are listed only when named.
 */
int cmd_segments(struct ctx *c, int argc, char **argv)
{
	struct seg_widths w = { 4, 4 };
	struct seg_row *rows = NULL, *r;
	size_t n = 0, cap = 0, nshm, i;
	struct dirent *d;
	char path[4200];
	DIR *dir;
	int rc = parse_opts(c, find_cmd("segments"), argc, argv, NULL, NULL);

	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	dir = opendir("/dev/shm");
	if (!dir)
		return fail_sys(c, NULL, -errno, "/dev/shm");
	while ((d = readdir(dir)) != NULL) {
		if (strncmp(d->d_name, "shmq.", 5) != 0 || !d->d_name[5])
			continue;
		r = seg_more(&rows, &n, &cap);
		if (!r) {
			closedir(dir);
			free(rows);
			return fail(c, NULL, -ENOMEM, NULL);
		}
		snprintf(path, sizeof(path), "/dev/shm/%s", d->d_name);
		seg_examine(d->d_name + 5, path, r);
	}
	closedir(dir);
	nshm = n;
	if (nshm)
		qsort(rows, nshm, sizeof(*rows), row_cmp);
	/* Then the file-backed segments named, in the order given. */
	for (i = 0; i < (size_t)c->argc; i++) {
		r = seg_more(&rows, &n, &cap);
		if (!r) {
			free(rows);
			return fail(c, NULL, -ENOMEM, NULL);
		}
		/* "seg.bin" is a file here, as "./seg.bin" to the library. */
		snprintf(path, sizeof(path), "%s%s",
			 strchr(c->argv[i], '/') ? "" : "./", c->argv[i]);
		seg_examine(c->argv[i], path, r);
	}
	for (i = 0; i < n; i++) {
		if ((int)strlen(rows[i].name) > w.name)
			w.name = (int)strlen(rows[i].name);
		if ((int)strlen(rows[i].path) > w.path)
			w.path = (int)strlen(rows[i].path);
	}
	if (c->json)
		printf("{\"segments\":[");
	else
		printf("%-*s %10s %-10s %-10s %4s %6s %-*s %s\n", w.name,
		       "NAME", "SIZE", "OWNER", "GROUP", "MODE", "QUEUES",
		       w.path, "PATH", "STATUS");
	for (i = 0; i < n; i++)
		seg_print(c, &rows[i], i == 0, &w);
	if (c->json)
		printf("]}\n");
	free(rows);
	return 0;
}
