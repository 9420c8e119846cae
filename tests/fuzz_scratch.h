/* SPDX-License-Identifier: MIT */
/*
 * fuzz_scratch.h - the scratch files of a libFuzzer harness: in
 * $SHMQ_FUZZ_DIR, or in a fresh /dev/shm/shmq-fuzz.<pid>, named
 * <file>.<pid>; removed (with the directory we made) at exit.
 */
#ifndef SHMQ_FUZZ_SCRATCH_H
#define SHMQ_FUZZ_SCRATCH_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[256];
static char fuzz_path[320];
/* More scratch files in the same directory (fuzz_scratch_more()). */
static char fuzz_more[3][320];

/* Remove the scratch files, and the directory when we made it. */
static void fuzz_scratch_remove(void)
{
	unsigned i;

	unlink(fuzz_path);
	for (i = 0; i < sizeof(fuzz_more) / sizeof(fuzz_more[0]); i++)
		if (fuzz_more[i][0])
			unlink(fuzz_more[i]);
	if (!getenv("SHMQ_FUZZ_DIR"))
		rmdir(fuzz_dir);
}

/* Choose (and make) the directory and the file's path; exit 2 on error. */
static void fuzz_scratch_init(const char *who, const char *file)
{
	const char *d = getenv("SHMQ_FUZZ_DIR");

	if (d) {
		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s", d);
	} else {
		snprintf(fuzz_dir, sizeof(fuzz_dir), "/dev/shm/shmq-fuzz.%d",
			 (int)getpid());
		if (mkdir(fuzz_dir, 0700) && errno != EEXIST) {
			fprintf(stderr, "%s: mkdir %s: %s\n", who, fuzz_dir,
				strerror(errno));
			exit(2);
		}
	}
	snprintf(fuzz_path, sizeof(fuzz_path), "%s/%s.%d", fuzz_dir, file,
		 (int)getpid());
	unlink(fuzz_path);
}

/*
 * After fuzz_scratch_init(): the path of one more scratch file <file>.<pid>
 * in the same directory, removed by fuzz_scratch_remove(); exit 2 when
 * all are taken.
 */
static inline const char *fuzz_scratch_more(const char *file)
{
	unsigned i;

	for (i = 0; i < sizeof(fuzz_more) / sizeof(fuzz_more[0]); i++) {
		if (fuzz_more[i][0])
			continue;
		snprintf(fuzz_more[i], sizeof(fuzz_more[i]), "%s/%s.%d",
			 fuzz_dir, file, (int)getpid());
		unlink(fuzz_more[i]);
		return fuzz_more[i];
	}
	fprintf(stderr, "fuzz_scratch_more: too many files\n");
	exit(2);
}

#endif /* SHMQ_FUZZ_SCRATCH_H */
