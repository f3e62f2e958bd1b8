/*
 * cache.h - membership cache: in-memory TTL map + persistent LMDB snapshot,
 * and the sync that fills the snapshot from the directory.
 *
 * Principals are compared the way LDAP compares uids: case-insensitively
 * (UTF-8 case folding), in the map and in the snapshot alike.
 *
 * In-memory map: shared by all threads of a handle (mutex inside) and lives
 * as long as the handle, i.e. across PAM transactions.  It holds at most
 * RG_CACHE_MAX_ENTRIES entries; beyond that negative entries are dropped
 * first, then everything (answers are cheap to fetch again).
 *
 * Snapshot: its own LMDB environment in DIR/snapshot/ (DIR is ledger.path;
 * directories created 0700, files 0600), separate from the ledger's.  It is
 * safe across threads and processes; one environment per path per process
 * (opening the same path twice shares it, refcounted).  It holds one record
 * per principal (a struct rg_person with its fetched time) and the time of
 * the last complete sync.  Uses:
 *   - lookup = live: the api layer writes every live answer through
 *     (rg_snapshot_put_person / rg_snapshot_del) so that after a restart,
 *     with the directory down, answers younger than offline-max-age remain;
 *   - lookup = snapshot: decisions read only the snapshot; rotagatectl sync
 *     (rg_dir_sync) replaces its content atomically.  A principal absent
 *     from a snapshot that has been synced is unknown; before the first
 *     sync (rg_snapshot_synced_at() == 0) the data is simply missing.
 */
#ifndef RG_CACHE_H
#define RG_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "directory.h"

#define RG_CACHE_MAX_ENTRIES 65536

struct rg_cache;

struct rg_cache *rg_cache_new(void);   /* NULL on allocation failure */
void rg_cache_free(struct rg_cache *c);
/* pthread_atfork support (api.c): hold / release the map's lock across fork(). */
void rg_cache_fork_prepare(struct rg_cache *c);
void rg_cache_fork_release(struct rg_cache *c);

/* Copy of the cached answer for `principal` if younger than max_age seconds
 * at `now` (an answer from the future counts as age 0).  Returns NULL when
 * absent, negative or too old.  Caller frees. */
struct rg_person *rg_cache_get(struct rg_cache *c, const char *principal, int64_t now,
			       int64_t max_age);

/* Remember a copy of `p` (fetched at p->fetched), keyed by p->principal.
 * Replaces a negative entry. */
void rg_cache_put(struct rg_cache *c, const struct rg_person *p);

/* Remember that `principal` does not exist (negative entry), fetched at `when`. */
void rg_cache_put_negative(struct rg_cache *c, const char *principal, int64_t when);

/* Is there a negative entry younger than max_age? */
bool rg_cache_is_negative(struct rg_cache *c, const char *principal, int64_t now, int64_t max_age);

/* Drop whatever is remembered for `principal` (positive or negative). */
void rg_cache_forget(struct rg_cache *c, const char *principal);

void rg_cache_clear(struct rg_cache *c);

/* ---- persistent snapshot ---------------------------------------------- */

struct rg_snapshot;

/* Open (creating as needed) the snapshot environment in dir/snapshot/.
 * NULL with a message on failure. */
struct rg_snapshot *rg_snapshot_open(const char *dir, char *err, size_t errlen);
void rg_snapshot_close(struct rg_snapshot *s);   /* NULL is fine */
/* pthread_atfork support (api.c): hold / release the list of open
 * environments across fork(). */
void rg_snapshot_fork_prepare(void);
void rg_snapshot_fork_release(void);

/* 1 and a new person in *out (caller frees; p->fetched is when the directory
 * gave the answer), 0 when absent, -1 on error (message in err). */
int rg_snapshot_get(struct rg_snapshot *s, const char *principal, struct rg_person **out, char *err,
		    size_t errlen);

/* Store (replace) one person, keyed by p->principal.  0 / -1. */
int rg_snapshot_put_person(struct rg_snapshot *s, const struct rg_person *p, char *err, size_t errlen);

/* Forget one principal (the directory said it does not exist).  0 / -1. */
int rg_snapshot_del(struct rg_snapshot *s, const char *principal, char *err, size_t errlen);

/* Replace everything with persons[0..n) and record synced_at, in one write
 * transaction: readers see the old content or the new, never a mix.  0 / -1
 * (on -1 the old content is untouched). */
int rg_snapshot_replace_all(struct rg_snapshot *s, const struct rg_person *const *persons, size_t n,
			    int64_t synced_at, char *err, size_t errlen);

/* 1 with *when = time of the last rg_snapshot_replace_all, 0 if never, -1 on error. */
int rg_snapshot_synced_at(struct rg_snapshot *s, int64_t *when, char *err, size_t errlen);

/* Number of persons stored, or -1 on error. */
long rg_snapshot_count(struct rg_snapshot *s, char *err, size_t errlen);

/* Call visit(person, data) for every stored person, from one read
 * transaction.  visit takes ownership of the person (free it with
 * rg_person_free) and returns 0, or non-zero to stop with an error
 * (out of memory).  0, or -1 with err set (a damaged record, a record of
 * another format, LMDB errors): never a silently partial walk. */
typedef int (*rg_snapshot_visit_fn)(struct rg_person *p, void *data);
int rg_snapshot_foreach(struct rg_snapshot *s, rg_snapshot_visit_fn visit, void *data, char *err,
			size_t errlen);

/* ---- sync (rotagatectl sync) ------------------------------------------ */

/* For every group DN (e.g. rg_config_all_groups()), list its members
 * (rg_dir_group_members: nesting per config), look each person up
 * (rg_dir_lookup: their groups), then replace the snapshot atomically.
 * A group that does not exist counts as empty; a member that vanished in
 * between is skipped; a member whose name matches more than one entry is
 * left out of the snapshot (so nobody decides from it: such a name stays
 * unknown until the directory is fixed) and reported through skipped()
 * (may be NULL), one call per name; any other failure (directory
 * unavailable, error) aborts the sync and leaves the snapshot as it was.
 * 0 with *npersons (may be NULL) set, or -1 with a message. */
typedef void (*rg_sync_skipped_fn)(const char *principal, const char *why, void *data);
int rg_dir_sync(struct rg_dir *d, const char *const *group_dns, size_t ngroups, struct rg_snapshot *snap,
		size_t *npersons, rg_sync_skipped_fn skipped, void *data, char *err, size_t errlen);

#endif
