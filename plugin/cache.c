/*
 * cache.c - membership cache: in-memory TTL map + persistent LMDB snapshot,
 * and rg_dir_sync().  See cache.h for the contract.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

#include <glib.h>
#include <lmdb.h>

#include "cache.h"
#include "fsutil.h"

#define RG_SNAPSHOT_MAP_SIZE ((size_t)256 << 20)
#define RG_SNAPSHOT_FORMAT 1

static void seterr(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Principals compare like uids in LDAP: case-insensitively.  g_malloc'd. */
static char *principal_key(const char *principal)
{
	if (g_utf8_validate(principal, -1, NULL))
		return g_utf8_casefold(principal, -1);
	return g_strdup(principal);
}

/* ---- in-memory map ---------------------------------------------------- */

struct cache_entry {
	struct rg_person *p; /* NULL: negative entry */
	int64_t fetched;
};

struct rg_cache {
	pthread_mutex_t lock;
	GHashTable *map; /* key (g_free) -> struct cache_entry (entry_free) */
};

static void entry_free(gpointer v)
{
	struct cache_entry *e = v;

	rg_person_free(e->p);
	free(e);
}

struct rg_cache *rg_cache_new(void)
{
	struct rg_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c);
		return NULL;
	}
	c->map = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, entry_free);
	return c;
}

void rg_cache_free(struct rg_cache *c)
{
	if (c == NULL)
		return;
	g_hash_table_destroy(c->map);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void rg_cache_fork_prepare(struct rg_cache *c)
{
	if (c != NULL)
		pthread_mutex_lock(&c->lock);
}

void rg_cache_fork_release(struct rg_cache *c)
{
	if (c != NULL)
		pthread_mutex_unlock(&c->lock);
}

static gboolean is_negative_entry(gpointer k, gpointer v, gpointer u)
{
	(void)k;
	(void)u;
	return ((struct cache_entry *)v)->p == NULL;
}

/* Called with the lock held. */
static void insert(struct rg_cache *c, const char *principal, struct rg_person *p, int64_t fetched)
{
	struct cache_entry *e = malloc(sizeof(*e));
	char *key = principal_key(principal);

	if (e == NULL) {
		g_free(key);
		rg_person_free(p);
		return;
	}
	e->p = p;
	e->fetched = fetched;
	if (g_hash_table_size(c->map) >= RG_CACHE_MAX_ENTRIES && !g_hash_table_contains(c->map, key)) {
		g_hash_table_foreach_remove(c->map, is_negative_entry, NULL);
		if (g_hash_table_size(c->map) >= RG_CACHE_MAX_ENTRIES)
			g_hash_table_remove_all(c->map);
	}
	g_hash_table_replace(c->map, key, e);
}

static bool fresh(int64_t fetched, int64_t now, int64_t max_age)
{
	int64_t age = now - fetched;

	return (age < 0 ? 0 : age) <= max_age;
}

struct rg_person *rg_cache_get(struct rg_cache *c, const char *principal, int64_t now, int64_t max_age)
{
	struct rg_person *r = NULL;
	struct cache_entry *e;
	char *key;

	if (c == NULL || principal == NULL)
		return NULL;
	key = principal_key(principal);
	pthread_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->map, key);
	if (e != NULL && e->p != NULL && fresh(e->fetched, now, max_age))
		r = rg_person_dup(e->p);
	pthread_mutex_unlock(&c->lock);
	g_free(key);
	return r;
}

void rg_cache_put(struct rg_cache *c, const struct rg_person *p)
{
	struct rg_person *copy;

	if (c == NULL || p == NULL || p->principal == NULL || (copy = rg_person_dup(p)) == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	insert(c, p->principal, copy, p->fetched);
	pthread_mutex_unlock(&c->lock);
}

void rg_cache_put_negative(struct rg_cache *c, const char *principal, int64_t when)
{
	if (c == NULL || principal == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	insert(c, principal, NULL, when);
	pthread_mutex_unlock(&c->lock);
}

void rg_cache_forget(struct rg_cache *c, const char *principal)
{
	char *key;

	if (c == NULL || principal == NULL)
		return;
	key = principal_key(principal);
	pthread_mutex_lock(&c->lock);
	g_hash_table_remove(c->map, key);
	pthread_mutex_unlock(&c->lock);
	g_free(key);
}

bool rg_cache_is_negative(struct rg_cache *c, const char *principal, int64_t now, int64_t max_age)
{
	struct cache_entry *e;
	bool r;
	char *key;

	if (c == NULL || principal == NULL)
		return false;
	key = principal_key(principal);
	pthread_mutex_lock(&c->lock);
	e = g_hash_table_lookup(c->map, key);
	r = e != NULL && e->p == NULL && fresh(e->fetched, now, max_age);
	pthread_mutex_unlock(&c->lock);
	g_free(key);
	return r;
}

void rg_cache_clear(struct rg_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	g_hash_table_remove_all(c->map);
	pthread_mutex_unlock(&c->lock);
}

/* ---- snapshot: record encoding ----------------------------------------
 * u8 format, i64 fetched, then strings principal, dn, uid, u32 ngroups and
 * the groups; a string is u32 length + bytes.  Native byte order: the file
 * never leaves the machine. */

static void put_bytes(GByteArray *b, const void *p, size_t n)
{
	g_byte_array_append(b, p, (guint)n);
}

static void put_str(GByteArray *b, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : 0;

	put_bytes(b, &n, sizeof(n));
	if (n)
		put_bytes(b, s, n);
}

static GByteArray *encode_person(const struct rg_person *p)
{
	GByteArray *b = g_byte_array_new();
	uint8_t fmt = RG_SNAPSHOT_FORMAT;
	uint32_t ng = (uint32_t)p->ngroups;

	put_bytes(b, &fmt, 1);
	put_bytes(b, &p->fetched, sizeof(p->fetched));
	put_str(b, p->principal);
	put_str(b, p->dn);
	put_str(b, p->uid);
	put_bytes(b, &ng, sizeof(ng));
	for (size_t i = 0; i < p->ngroups; i++)
		put_str(b, p->groups[i]);
	return b;
}

struct reader {
	const unsigned char *p;
	size_t left;
};

static bool get_bytes(struct reader *r, void *out, size_t n)
{
	if (r->left < n)
		return false;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

static bool get_str(struct reader *r, char **out)
{
	uint32_t n;

	if (!get_bytes(r, &n, sizeof(n)) || r->left < n || (*out = malloc((size_t)n + 1)) == NULL)
		return false;
	memcpy(*out, r->p, n);
	(*out)[n] = '\0';
	r->p += n;
	r->left -= n;
	return true;
}

static struct rg_person *decode_person(const void *data, size_t len)
{
	struct reader r = { data, len };
	struct rg_person *p = calloc(1, sizeof(*p));
	uint8_t fmt;
	uint32_t ng;

	if (p == NULL)
		return NULL;
	if (!get_bytes(&r, &fmt, 1) || fmt != RG_SNAPSHOT_FORMAT || !get_bytes(&r, &p->fetched, sizeof(p->fetched)) ||
	    !get_str(&r, &p->principal) || !get_str(&r, &p->dn) || !get_str(&r, &p->uid) ||
	    !get_bytes(&r, &ng, sizeof(ng)) || ng > r.left / sizeof(uint32_t))
		goto fail;
	if ((p->groups = calloc((size_t)ng + 1, sizeof(char *))) == NULL)
		goto fail;
	for (; p->ngroups < ng; p->ngroups++)
		if (!get_str(&r, &p->groups[p->ngroups]))
			goto fail;
	if (r.left != 0)
		goto fail;
	return p;
fail:
	rg_person_free(p);
	return NULL;
}

/* ---- snapshot: environments (one per path per process) --------------- */

struct rg_snapshot {
	char *path;          /* realpath of DIR/snapshot */
	MDB_env *env;
	MDB_dbi persons, meta;
	unsigned refs;
	pid_t pid;           /* LMDB environments must not be used across fork() */
	struct rg_snapshot *next;
};

static pthread_mutex_t snapshots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rg_snapshot *snapshots; /* open environments, under snapshots_lock */

void rg_snapshot_fork_prepare(void)
{
	pthread_mutex_lock(&snapshots_lock);
}

void rg_snapshot_fork_release(void)
{
	pthread_mutex_unlock(&snapshots_lock);
}

static struct rg_snapshot *snapshot_create(const char *path, char *err, size_t len)
{
	struct rg_snapshot *s = calloc(1, sizeof(*s));
	MDB_txn *txn = NULL;
	int rc;

	if (s != NULL)
		s->pid = getpid();
	if (s == NULL || (s->path = strdup(path)) == NULL) {
		seterr(err, len, "out of memory");
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0 || (rc = mdb_env_set_maxdbs(s->env, 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, RG_SNAPSHOT_MAP_SIZE)) != 0 ||
	    (rc = mdb_env_open(s->env, path, MDB_NOTLS, 0600)) != 0) {
		seterr(err, len, "%s: cannot open snapshot: %s", path, mdb_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "persons", MDB_CREATE, &s->persons)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
		if (txn != NULL && rc != 0)
			mdb_txn_abort(txn);
		seterr(err, len, "%s: cannot open snapshot tables: %s", path, mdb_strerror(rc));
		txn = NULL;
		goto fail;
	}
	s->refs = 1;
	return s;
fail:
	if (s != NULL) {
		if (s->env != NULL)
			mdb_env_close(s->env);
		free(s->path);
		free(s);
	}
	return NULL;
}

struct rg_snapshot *rg_snapshot_open(const char *dir, char *err, size_t errlen)
{
	char *sub = NULL, real[PATH_MAX];
	struct rg_snapshot *s = NULL;

	if (dir == NULL || *dir == '\0') {
		seterr(err, errlen, "snapshot: no directory (ledger.path)");
		return NULL;
	}
	if (rg_private_dir(dir, err, errlen) != 0)
		return NULL;
	if ((sub = g_build_filename(dir, "snapshot", NULL)) == NULL || rg_private_dir(sub, err, errlen) != 0)
		goto out;
	if (realpath(sub, real) == NULL) {
		seterr(err, errlen, "%s: %s", sub, strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&snapshots_lock);
	for (s = snapshots; s != NULL; s = s->next)
		if (s->pid == getpid() && strcmp(s->path, real) == 0)
			break;
	if (s != NULL) {
		s->refs++;
	} else if ((s = snapshot_create(real, err, errlen)) != NULL) {
		s->next = snapshots;
		snapshots = s;
	}
	pthread_mutex_unlock(&snapshots_lock);
out:
	g_free(sub);
	return s;
}

void rg_snapshot_close(struct rg_snapshot *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&snapshots_lock);
	if (--s->refs == 0) {
		for (struct rg_snapshot **pp = &snapshots; *pp != NULL; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		mdb_env_close(s->env);
		free(s->path);
		free(s);
	}
	pthread_mutex_unlock(&snapshots_lock);
}

/* ---- snapshot: records ------------------------------------------------ */

/* The LMDB key for a principal (g_malloc'd) or NULL if unusable. */
static char *snapshot_key(struct rg_snapshot *s, const char *principal, char *err, size_t len)
{
	char *key;

	if (principal == NULL || *principal == '\0') {
		seterr(err, len, "snapshot: empty principal");
		return NULL;
	}
	key = principal_key(principal);
	if (strlen(key) > (size_t)mdb_env_get_maxkeysize(s->env)) {
		seterr(err, len, "snapshot: principal too long");
		g_free(key);
		return NULL;
	}
	return key;
}

int rg_snapshot_get(struct rg_snapshot *s, const char *principal, struct rg_person **out, char *err,
		    size_t errlen)
{
	MDB_txn *txn;
	MDB_val k, v;
	char *key;
	int rc, r = -1;

	*out = NULL;
	if (s == NULL || (key = snapshot_key(s, principal, err, errlen)) == NULL)
		return -1;
	k.mv_data = key;
	k.mv_size = strlen(key);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		g_free(key);
		return -1;
	}
	rc = mdb_get(txn, s->persons, &k, &v);
	if (rc == MDB_NOTFOUND) {
		r = 0;
	} else if (rc != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
	} else if ((*out = decode_person(v.mv_data, v.mv_size)) == NULL) {
		seterr(err, errlen, "snapshot: damaged record (or out of memory)");
	} else {
		r = 1;
	}
	mdb_txn_abort(txn);
	g_free(key);
	return r;
}

/* Put one person inside txn. */
static int put_in(struct rg_snapshot *s, MDB_txn *txn, const struct rg_person *p, char *err, size_t len)
{
	GByteArray *b;
	MDB_val k, v;
	char *key;
	int rc;

	if (p == NULL || (key = snapshot_key(s, p->principal, err, len)) == NULL)
		return -1;
	b = encode_person(p);
	k.mv_data = key;
	k.mv_size = strlen(key);
	v.mv_data = b->data;
	v.mv_size = b->len;
	rc = mdb_put(txn, s->persons, &k, &v, 0);
	g_byte_array_free(b, TRUE);
	g_free(key);
	if (rc != 0) {
		seterr(err, len, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

static int commit(MDB_txn *txn, char *err, size_t len)
{
	int rc = mdb_txn_commit(txn);

	if (rc != 0) {
		seterr(err, len, "snapshot: commit: %s", mdb_strerror(rc));
		return -1;
	}
	return 0;
}

int rg_snapshot_put_person(struct rg_snapshot *s, const struct rg_person *p, char *err, size_t errlen)
{
	MDB_txn *txn;
	int rc;

	if (s == NULL)
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	if (put_in(s, txn, p, err, errlen) != 0) {
		mdb_txn_abort(txn);
		return -1;
	}
	return commit(txn, err, errlen);
}

int rg_snapshot_del(struct rg_snapshot *s, const char *principal, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k;
	char *key;
	int rc;

	if (s == NULL || (key = snapshot_key(s, principal, err, errlen)) == NULL)
		return -1;
	k.mv_data = key;
	k.mv_size = strlen(key);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		g_free(key);
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	rc = mdb_del(txn, s->persons, &k, NULL);
	g_free(key);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	return commit(txn, err, errlen);
}

int rg_snapshot_replace_all(struct rg_snapshot *s, const struct rg_person *const *persons, size_t n,
			    int64_t synced_at, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = { 9, "synced-at" }, v = { sizeof(synced_at), &synced_at };
	int rc;

	if (s == NULL || (n > 0 && persons == NULL))
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	if ((rc = mdb_drop(txn, s->persons, 0)) != 0 || (rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (put_in(s, txn, persons[i], err, errlen) != 0)
			goto fail;
	return commit(txn, err, errlen);
fail:
	mdb_txn_abort(txn);
	return -1;
}

int rg_snapshot_synced_at(struct rg_snapshot *s, int64_t *when, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val k = { 9, "synced-at" }, v;
	int rc, r = -1;

	*when = 0;
	if (s == NULL)
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		r = 0;
	} else if (rc != 0 || v.mv_size != sizeof(*when)) {
		seterr(err, errlen, "snapshot: %s", rc ? mdb_strerror(rc) : "damaged sync time");
	} else {
		memcpy(when, v.mv_data, sizeof(*when));
		r = 1;
	}
	mdb_txn_abort(txn);
	return r;
}

long rg_snapshot_count(struct rg_snapshot *s, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_stat st;
	int rc;

	if (s == NULL)
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0 || (rc = mdb_stat(txn, s->persons, &st)) != 0) {
		if (rc != 0 && txn != NULL)
			mdb_txn_abort(txn);
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		return -1;
	}
	mdb_txn_abort(txn);
	return (long)st.ms_entries;
}

/* Every stored person, in key order, from one read transaction (a
 * consistent view even while a sync replaces the snapshot). */
int rg_snapshot_foreach(struct rg_snapshot *s, rg_snapshot_visit_fn visit, void *data, char *err,
			size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, r = -1;

	if (s == NULL || visit == NULL)
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, s->persons, &cur)) != 0) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		goto out;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		struct rg_person *p = decode_person(v.mv_data, v.mv_size);

		if (p == NULL) {
			seterr(err, errlen, "snapshot: damaged record or another format "
			       "(run rotagatectl sync with this version)");
			goto out;
		}
		if (visit(p, data) != 0) {
			seterr(err, errlen, "snapshot: out of memory");
			goto out;
		}
	}
	if (rc != MDB_NOTFOUND) {
		seterr(err, errlen, "snapshot: %s", mdb_strerror(rc));
		goto out;
	}
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	return r;
}

/* ---- sync ------------------------------------------------------------- */

int rg_dir_sync(struct rg_dir *d, const char *const *group_dns, size_t ngroups, struct rg_snapshot *snap,
		size_t *npersons, rg_sync_skipped_fn skipped, void *data, char *err, size_t errlen)
{
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free); /* key -> principal */
	GPtrArray *persons = g_ptr_array_new_with_free_func((GDestroyNotify)rg_person_free);
	GHashTableIter it;
	gpointer key, val;
	char msg[512];
	int r = -1;

	if (npersons != NULL)
		*npersons = 0;
	if (d == NULL || snap == NULL || (ngroups > 0 && group_dns == NULL)) {
		seterr(err, errlen, "sync: bad arguments");
		goto out;
	}
	for (size_t i = 0; i < ngroups; i++) {
		char **members = NULL;
		enum rg_dir_status st = rg_dir_group_members(d, group_dns[i], &members, msg, sizeof(msg));

		if (st == RG_DIR_NOT_FOUND)
			continue;
		if (st != RG_DIR_OK) {
			seterr(err, errlen, "sync: members of %s: %s", group_dns[i], msg);
			goto out;
		}
		for (char **m = members; *m != NULL; m++) {
			char *k = principal_key(*m);
			if (g_hash_table_contains(seen, k))
				g_free(k);
			else
				g_hash_table_insert(seen, k, g_strdup(*m));
			free(*m);
		}
		free(members);
	}
	g_hash_table_iter_init(&it, seen);
	while (g_hash_table_iter_next(&it, &key, &val)) {
		struct rg_person *p = NULL;
		enum rg_dir_status st = rg_dir_lookup(d, val, &p, msg, sizeof(msg));

		if (st == RG_DIR_NOT_FOUND || st == RG_DIR_BAD_INPUT)
			continue;
		if (st == RG_DIR_AMBIGUOUS) {
			if (skipped != NULL)
				skipped(val, msg, data);
			continue;
		}
		if (st != RG_DIR_OK) {
			seterr(err, errlen, "sync: %s: %s", (const char *)val, msg);
			goto out;
		}
		g_ptr_array_add(persons, p);
	}
	if (rg_snapshot_replace_all(snap, (const struct rg_person *const *)persons->pdata, persons->len,
				    (int64_t)time(NULL), err, errlen) != 0)
		goto out;
	if (npersons != NULL)
		*npersons = persons->len;
	r = 0;
out:
	g_ptr_array_free(persons, TRUE);
	g_hash_table_destroy(seen);
	return r;
}
