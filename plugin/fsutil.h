/*
 * fsutil.h - file-system checks shared by the parts that keep private state
 * on disk: the audit spool (user names), the LMDB ledger and the membership
 * snapshot.
 *
 * No global state; safe from any thread.  No output.
 */
#ifndef RG_FSUTIL_H
#define RG_FSUTIL_H

#include <stddef.h>

/* Make sure `path` is a directory only this process's user can change.
 *
 * Missing: it is created with mode 0700 (missing parents too, also 0700).
 * Present: it is lstat()ed and refused when it is a symbolic link, not a
 * directory, not owned by the effective uid (so root-owned is fine only for
 * root), or group- or world-writable.  An existing directory is never
 * chmod'ed or chown'ed: fixing it is the administrator's decision.
 *
 * Returns 0, or -1 with "PATH: problem" in err (caller-owned; callers
 * prefix their part's name). */
int rg_private_dir(const char *path, char *err, size_t errlen);

#endif
