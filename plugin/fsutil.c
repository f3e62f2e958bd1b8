/*
 * fsutil.c - private state directories.  See fsutil.h for the contract.
 *
 * Why lstat() and refuse rather than repair: a directory that exists with
 * the wrong owner or mode was made that way by someone, and a symlink may
 * point anywhere; silently chmod'ing it would hide that from the admin,
 * and following the link could put user names where others can read them.
 */
#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

__attribute__((format(printf, 3, 4))) static void rg_fs_err(char *err, size_t errlen,
							    const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* mkdir -p with mode 0700 for every level created.  `buf` is modified and
 * restored. */
static int rg_fs_mkdirs(char *buf, char *err, size_t errlen)
{
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			rg_fs_err(err, errlen, "%s: cannot create directory: %s", buf,
				  strerror(errno));
			*p = c;
			return -1;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

static int rg_fs_check(const char *path, const struct stat *st, char *err, size_t errlen)
{
	uid_t euid = geteuid();

	if (S_ISLNK(st->st_mode)) {
		rg_fs_err(err, errlen,
			  "%s: is a symbolic link; refusing to keep private state behind it "
			  "(name the real directory)",
			  path);
		return -1;
	}
	if (!S_ISDIR(st->st_mode)) {
		rg_fs_err(err, errlen, "%s: exists and is not a directory", path);
		return -1;
	}
	if (st->st_uid != euid) {
		rg_fs_err(err, errlen, "%s: directory is owned by uid %lu, not by uid %lu that "
				       "rotagate runs as",
			  path, (unsigned long)st->st_uid, (unsigned long)euid);
		return -1;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		rg_fs_err(err, errlen,
			  "%s: directory is %s-writable (mode %04o); it holds private state: "
			  "chmod 0700 it",
			  path, (st->st_mode & S_IWOTH) ? "world" : "group",
			  (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

int rg_private_dir(const char *path, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t len = path ? strlen(path) : 0;

	if (len == 0) {
		rg_fs_err(err, errlen, "no directory given");
		return -1;
	}
	if (len >= sizeof buf) {
		rg_fs_err(err, errlen, "%.64s...: path too long", path);
		return -1;
	}
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/') /* "dir/" would make lstat follow a link */
		buf[--len] = '\0';

	if (lstat(buf, &st) != 0) {
		if (errno != ENOENT) {
			rg_fs_err(err, errlen, "%s: %s", buf, strerror(errno));
			return -1;
		}
		if (rg_fs_mkdirs(buf, err, errlen) != 0)
			return -1;
		/* look again: another process may have raced us to it */
		if (lstat(buf, &st) != 0) {
			rg_fs_err(err, errlen, "%s: %s", buf, strerror(errno));
			return -1;
		}
	}
	return rg_fs_check(buf, &st, err, errlen);
}
