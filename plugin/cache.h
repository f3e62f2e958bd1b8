/*
 * cache.h - membership cache: in-memory TTL map + persistent LMDB snapshot.
 *
 * The in-memory map is shared by all threads of a handle (mutex inside) and
 * lives as long as the handle, i.e. across PAM transactions.  The snapshot is
 * stored in the LMDB environment under ledger.path so that it survives
 * restarts and can be used when the directory is down.
 */
#ifndef RG_CACHE_H
#define RG_CACHE_H

#include <stdint.h>
#include <stdbool.h>
#include "directory.h"

struct rg_cache;

struct rg_cache *rg_cache_new(void);
void rg_cache_free(struct rg_cache *c);

/* Copy of the cached answer for `principal` if younger than max_age seconds
 * at `now`.  Returns NULL when absent or too old.  Caller frees. */
struct rg_person *rg_cache_get(struct rg_cache *c, const char *principal, int64_t now,
			       int64_t max_age);

/* Remember a copy of `p` (fetched at p->fetched). */
void rg_cache_put(struct rg_cache *c, const struct rg_person *p);

/* Remember that `principal` does not exist (negative entry), fetched at `when`. */
void rg_cache_put_negative(struct rg_cache *c, const char *principal, int64_t when);

/* Is there a negative entry younger than max_age? */
bool rg_cache_is_negative(struct rg_cache *c, const char *principal, int64_t now, int64_t max_age);

void rg_cache_clear(struct rg_cache *c);

#endif
