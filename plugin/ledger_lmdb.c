/*
 * ledger_lmdb.c - the embedded capacity ledger: one LMDB environment in
 * <ledger.path>/ledger/, shared by every thread and every process that opens
 * the same path.
 *
 * Two named databases:
 *   "admissions"  site \0 day \0 person  ->  first entry: when, door, rule, exempt
 *   "counts"      site \0 day            ->  count, exempt_count
 * `day` is stored as 4 bytes big-endian (offset binary), so one site's days
 * sort in date order.
 *
 * A reservation is one write transaction: LMDB serialises writers across
 * processes with the mutex in its lock file (robust: a writer killed mid-way
 * releases it and its transaction is simply never committed), so "check the
 * count, insert, bump the count" cannot interleave.  Commits are synchronous
 * (no MDB_NOSYNC): ADMITTED is returned only after the data is on disk.
 * A re-entry is found with a read-only transaction and writes nothing.
 *
 * LMDB forbids opening one environment twice in a process, so open
 * environments live in a process-wide registry keyed by the real path,
 * refcounted, under a mutex.  Entries opened before a fork() are not used by
 * the child (LMDB handles do not survive fork); the child opens its own.
 * MDB_NOTLS: read transactions are not tied to threads.
 */
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include "fsutil.h"
#include "ledger.h"
#include "rules.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define MAX_READERS 1024
#define KEY_BUF 1024
#define FIELD_MAX 4096

struct env_entry {
	struct env_entry *next;
	char *dir;              /* real path of <ledger.path>/ledger */
	pid_t pid;              /* process that opened it */
	unsigned refs;
	MDB_env *env;
	MDB_dbi adm, cnt;
	/* Transactions hold it shared; adopting a map size grown by another
	 * process (MDB_MAP_RESIZED) needs it exclusive, because
	 * mdb_env_set_mapsize() wants no transaction active in this process. */
	pthread_rwlock_t resize;
	pthread_mutex_t prune_mu;
	int64_t pruned_cutoff;  /* automatic pruning done up to this day */
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct env_entry *registry;

void rg_ledger_lmdb_fork_prepare(void)
{
	pthread_mutex_lock(&registry_mu);
}

void rg_ledger_lmdb_fork_release(void)
{
	pthread_mutex_unlock(&registry_mu);
}

struct lmdb_ledger {
	struct rg_ledger base;
	struct env_entry *e;
	unsigned retain_days;
};

static const struct rg_ledger_ops lmdb_ops;

/* ---- encoding ---- */

static void put_day(uint8_t *p, int32_t day)
{
	uint32_t u = (uint32_t)day ^ 0x80000000u;

	p[0] = (uint8_t)(u >> 24);
	p[1] = (uint8_t)(u >> 16);
	p[2] = (uint8_t)(u >> 8);
	p[3] = (uint8_t)u;
}

static int32_t get_day(const uint8_t *p)
{
	uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

	return (int32_t)(u ^ 0x80000000u);
}

/* site \0 day  -> length, or 0 if it does not fit */
static size_t day_key(uint8_t *buf, size_t len, const char *site, int32_t day)
{
	size_t sl = strlen(site);

	if (sl + 5 > len)
		return 0;
	memcpy(buf, site, sl);
	buf[sl] = 0;
	put_day(buf + sl + 1, day);
	return sl + 5;
}

/* site \0 day \0 person */
static size_t adm_key(uint8_t *buf, size_t len, const char *site, int32_t day,
		      const char *person)
{
	size_t n = day_key(buf, len, site, day), pl = strlen(person);

	if (!n || n + 1 + pl > len)
		return 0;
	buf[n] = 0;
	memcpy(buf + n + 1, person, pl);
	return n + 1 + pl;
}

struct counts {
	uint32_t count, exempt;
};

static struct counts get_counts(const MDB_val *v)
{
	struct counts c = { 0, 0 };

	if (v->mv_size >= 8) {
		memcpy(&c.count, v->mv_data, 4);
		memcpy(&c.exempt, (const uint8_t *)v->mv_data + 4, 4);
	}
	return c;
}

/* admission value: version(1) exempt(1) when(8) door_len(2) rule_len(2) door rule */
#define ADM_HDR 14

static size_t adm_value(uint8_t *buf, size_t len, const struct rg_reservation *r)
{
	const char *door = r->door ? r->door : "", *rule = r->rule ? r->rule : "";
	size_t dl = strlen(door), rl = strlen(rule);
	uint16_t d16 = (uint16_t)dl, r16 = (uint16_t)rl;

	if (dl > FIELD_MAX || rl > FIELD_MAX || ADM_HDR + dl + rl > len)
		return 0;
	buf[0] = 1;
	buf[1] = r->exempt ? 1 : 0;
	memcpy(buf + 2, &r->when, 8);
	memcpy(buf + 10, &d16, 2);
	memcpy(buf + 12, &r16, 2);
	memcpy(buf + ADM_HDR, door, dl);
	memcpy(buf + ADM_HDR + dl, rule, rl);
	return ADM_HDR + dl + rl;
}

static int decode_admission(const MDB_val *k, size_t prefix, const MDB_val *v,
			    struct rg_admission *a)
{
	const uint8_t *p = v->mv_data;
	uint16_t dl, rl;

	memset(a, 0, sizeof(*a));
	if (v->mv_size < ADM_HDR || p[0] != 1)
		return -1;
	memcpy(&dl, p + 10, 2);
	memcpy(&rl, p + 12, 2);
	if ((size_t)ADM_HDR + dl + rl > v->mv_size)
		return -1;
	memcpy(&a->when, p + 2, 8);
	a->exempt = p[1] != 0;
	a->person = strndup((const char *)k->mv_data + prefix, k->mv_size - prefix);
	a->door = strndup((const char *)p + ADM_HDR, dl);
	a->rule = strndup((const char *)p + ADM_HDR + dl, rl);
	if (!a->person || !a->door || !a->rule) {
		free(a->person);
		free(a->door);
		free(a->rule);
		memset(a, 0, sizeof(*a));
		return -1;
	}
	return 0;
}

/* ---- transactions ---- */

static int txn_begin(struct env_entry *e, unsigned flags, MDB_txn **txn)
{
	int rc;

	pthread_rwlock_rdlock(&e->resize);
	rc = mdb_txn_begin(e->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&e->resize);
		pthread_rwlock_wrlock(&e->resize);
		rc = mdb_env_set_mapsize(e->env, 0);
		pthread_rwlock_unlock(&e->resize);
		if (rc)
			return rc;
		pthread_rwlock_rdlock(&e->resize);
		rc = mdb_txn_begin(e->env, NULL, flags, txn);
	}
	if (rc)
		pthread_rwlock_unlock(&e->resize);
	return rc;
}

static void txn_abort(struct env_entry *e, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&e->resize);
}

static int txn_commit(struct env_entry *e, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);

	pthread_rwlock_unlock(&e->resize);
	return rc;
}

static void mdb_err(struct env_entry *e, int rc, const char *what, char *err, size_t errlen)
{
	size_t map = 0;
	MDB_envinfo info;

	if (rc == MDB_MAP_FULL) {
		if (mdb_env_info(e->env, &info) == 0)
			map = info.me_mapsize;
		rg_ledger_err(err, errlen,
			      "ledger %s: ledger full: raise ledger.map-size (now %zu bytes)", e->dir,
			      map);
		return;
	}
	rg_ledger_err(err, errlen, "ledger %s: %s: %s", e->dir, what, mdb_strerror(rc));
}

/* ---- registry ---- */

static void entry_free(struct env_entry *e)
{
	if (!e)
		return;
	if (e->env)
		mdb_env_close(e->env);
	pthread_rwlock_destroy(&e->resize);
	pthread_mutex_destroy(&e->prune_mu);
	free(e->dir);
	free(e);
}

static int open_dbis(struct env_entry *e, char *err, size_t errlen)
{
	MDB_txn *txn;
	int rc = txn_begin(e, 0, &txn);

	if (rc) {
		mdb_err(e, rc, "begin", err, errlen);
		return -1;
	}
	rc = mdb_dbi_open(txn, "admissions", MDB_CREATE, &e->adm);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "counts", MDB_CREATE, &e->cnt);
	if (rc) {
		txn_abort(e, txn);
		mdb_err(e, rc, "open databases", err, errlen);
		return -1;
	}
	rc = txn_commit(e, txn);
	if (rc) {
		mdb_err(e, rc, "commit", err, errlen);
		return -1;
	}
	return 0;
}

static struct env_entry *entry_open(const char *dir, size_t map_size, char *err, size_t errlen)
{
	struct env_entry *e = calloc(1, sizeof(*e));
	int rc, dead = 0;

	if (!e) {
		rg_ledger_err(err, errlen, "ledger: out of memory");
		return NULL;
	}
	pthread_rwlock_init(&e->resize, NULL);
	pthread_mutex_init(&e->prune_mu, NULL);
	e->pruned_cutoff = INT64_MIN;
	e->pid = getpid();
	e->refs = 1;
	e->dir = strdup(dir);
	if (!e->dir) {
		rg_ledger_err(err, errlen, "ledger: out of memory");
		goto fail;
	}
	rc = mdb_env_create(&e->env);
	if (rc) {
		e->env = NULL;
		mdb_err(e, rc, "create", err, errlen);
		goto fail;
	}
	mdb_env_set_maxdbs(e->env, 4);
	mdb_env_set_maxreaders(e->env, MAX_READERS);
	rc = mdb_env_set_mapsize(e->env, map_size ? map_size : DEFAULT_MAP_SIZE);
	if (rc == 0)
		rc = mdb_env_open(e->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		mdb_err(e, rc, "open", err, errlen);
		goto fail;
	}
	/* reader slots left behind by killed processes */
	mdb_reader_check(e->env, &dead);
	if (open_dbis(e, err, errlen) != 0)
		goto fail;
	return e;
fail:
	entry_free(e);
	return NULL;
}

/* Find or open the environment for `dir`; registry_mu must be held. */
static struct env_entry *entry_get(const char *dir, size_t map_size, char *err, size_t errlen)
{
	pid_t me = getpid();
	struct env_entry *e;

	for (e = registry; e; e = e->next) {
		if (e->pid == me && strcmp(e->dir, dir) == 0) {
			e->refs++;
			return e;
		}
	}
	e = entry_open(dir, map_size, err, errlen);
	if (e) {
		e->next = registry;
		registry = e;
	}
	return e;
}

static void entry_put(struct env_entry *e)
{
	struct env_entry **pp;

	pthread_mutex_lock(&registry_mu);
	if (--e->refs > 0) {
		pthread_mutex_unlock(&registry_mu);
		return;
	}
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_mu);
	if (e->pid != getpid()) {
		/* inherited across fork(): closing would clear the parent's
		 * reader slots; leave the handle alone */
		return;
	}
	entry_free(e);
}

int rg_ledger_lmdb_open(const struct rg_config *cfg, struct rg_ledger **out, char *err,
			size_t errlen)
{
	char dir[PATH_MAX], real[PATH_MAX], why[PATH_MAX + 160];
	struct lmdb_ledger *l;
	const char *path = cfg->ledger.path;

	*out = NULL;
	if (!path || !*path) {
		rg_ledger_err(err, errlen, "ledger: ledger.path is not set");
		return -1;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/ledger", path) >= sizeof(dir)) {
		rg_ledger_err(err, errlen, "ledger: path too long");
		return -1;
	}
	if (rg_private_dir(dir, why, sizeof(why)) != 0) {
		rg_ledger_err(err, errlen, "ledger: %s", why);
		return -1;
	}
	if (!realpath(dir, real)) {
		rg_ledger_err(err, errlen, "ledger: %s: %s", dir, strerror(errno));
		return -1;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		rg_ledger_err(err, errlen, "ledger: out of memory");
		return -1;
	}
	l->base.ops = &lmdb_ops;
	l->retain_days = cfg->ledger.retain_days;
	pthread_mutex_lock(&registry_mu);
	l->e = entry_get(real, cfg->ledger.map_size, err, errlen);
	pthread_mutex_unlock(&registry_mu);
	if (!l->e) {
		free(l);
		return -1;
	}
	*out = &l->base;
	return 0;
}

static void lmdb_close(struct rg_ledger *base)
{
	struct lmdb_ledger *l = (struct lmdb_ledger *)base;

	entry_put(l->e);
	free(l);
}

/* ---- pruning ---- */

struct keylist {
	MDB_val *v;
	size_t n, cap;
};

static int keylist_add(struct keylist *kl, const MDB_val *k)
{
	if (kl->n == kl->cap) {
		size_t cap = kl->cap ? kl->cap * 2 : 16;
		MDB_val *nv = realloc(kl->v, cap * sizeof(*nv));

		if (!nv)
			return -1;
		kl->v = nv;
		kl->cap = cap;
	}
	kl->v[kl->n].mv_data = malloc(k->mv_size);
	if (!kl->v[kl->n].mv_data)
		return -1;
	memcpy(kl->v[kl->n].mv_data, k->mv_data, k->mv_size);
	kl->v[kl->n].mv_size = k->mv_size;
	kl->n++;
	return 0;
}

static void keylist_free(struct keylist *kl)
{
	for (size_t i = 0; i < kl->n; i++)
		free(kl->v[i].mv_data);
	free(kl->v);
}

/* Delete every admission whose key starts with `prefix` (site \0 day \0). */
static int delete_prefix(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen)
{
	MDB_cursor *c;
	MDB_val k = { plen, (void *)prefix }, v;
	int rc = mdb_cursor_open(txn, dbi, &c);

	if (rc)
		return rc;
	/* re-seek after each delete rather than rely on the cursor's position */
	for (;;) {
		k.mv_size = plen;
		k.mv_data = (void *)prefix;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		rc = mdb_cursor_del(c, 0);
		if (rc)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Remove all site-days with day < cutoff in one write transaction. */
static long prune_before(struct env_entry *e, int64_t cutoff, char *err, size_t errlen)
{
	struct keylist kl = { NULL, 0, 0 };
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t prefix[KEY_BUF];
	int rc = txn_begin(e, 0, &txn);
	long n = 0;

	if (rc) {
		mdb_err(e, rc, "begin", err, errlen);
		return -1;
	}
	rc = mdb_cursor_open(txn, e->cnt, &c);
	if (rc)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 5 || k.mv_size > sizeof(prefix) - 1)
			continue;
		if (get_day((const uint8_t *)k.mv_data + k.mv_size - 4) >= cutoff)
			continue;
		if (keylist_add(&kl, &k) != 0) {
			mdb_cursor_close(c);
			rc = ENOMEM;
			goto fail;
		}
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		goto fail;
	for (size_t i = 0; i < kl.n; i++) {
		memcpy(prefix, kl.v[i].mv_data, kl.v[i].mv_size);
		prefix[kl.v[i].mv_size] = 0;
		rc = delete_prefix(txn, e->adm, prefix, kl.v[i].mv_size + 1);
		if (rc == 0)
			rc = mdb_del(txn, e->cnt, &kl.v[i], NULL);
		if (rc)
			goto fail;
		n++;
	}
	keylist_free(&kl);
	rc = txn_commit(e, txn);
	if (rc) {
		mdb_err(e, rc, "commit", err, errlen);
		return -1;
	}
	return n;
fail:
	keylist_free(&kl);
	txn_abort(e, txn);
	mdb_err(e, rc, "prune", err, errlen);
	return -1;
}

static long lmdb_prune(struct rg_ledger *base, int32_t today, unsigned retain_days, char *err,
		       size_t errlen)
{
	struct lmdb_ledger *l = (struct lmdb_ledger *)base;

	return prune_before(l->e, (int64_t)today - retain_days, err, errlen);
}

/* Cheap retention on use: at most once per day per process.  "Today" is the
 * earlier of the swipe's day and the clock's (UTC) day, so a swipe dated in
 * the future (a test, `admit --at`) can never remove recent days. */
static void auto_prune(struct lmdb_ledger *l, int32_t day)
{
	struct env_entry *e = l->e;
	int64_t clock_day = (int64_t)time(NULL) / 86400, today, cutoff;
	bool run = false;
	char ignored[256];

	if (l->retain_days == 0)
		return;
	today = day < clock_day ? day : clock_day;
	cutoff = today - l->retain_days;
	pthread_mutex_lock(&e->prune_mu);
	if (cutoff > e->pruned_cutoff) {
		e->pruned_cutoff = cutoff;
		run = true;
	}
	pthread_mutex_unlock(&e->prune_mu);
	/* a failure only delays pruning; the explicit prune reports errors */
	if (run)
		(void)prune_before(e, cutoff, ignored, sizeof(ignored));
}

/* ---- reservations ---- */

/* Is the person admitted, and the day's counts, as seen by `txn`.
 * 0 or an LMDB error code. */
static int lookup(struct env_entry *e, MDB_txn *txn, const MDB_val *akey, const MDB_val *dkey,
		  bool *admitted, struct counts *c)
{
	MDB_val v;
	int rc = mdb_get(txn, e->adm, (MDB_val *)akey, &v);

	if (rc && rc != MDB_NOTFOUND)
		return rc;
	*admitted = rc == 0;
	rc = mdb_get(txn, e->cnt, (MDB_val *)dkey, &v);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	if (rc == 0)
		*c = get_counts(&v);
	else
		c->count = c->exempt = 0;
	return 0;
}

/* A process killed inside a read transaction leaves its reader slot behind,
 * and the pages its snapshot could see are never reused: the map fills up
 * although the data is small.  On MDB_MAP_FULL, clear such slots; true when
 * there were any (then the write is worth one more try). */
static bool stale_readers_cleared(struct env_entry *e)
{
	int dead = 0;
	return mdb_reader_check(e->env, &dead) == 0 && dead > 0;
}

static enum rg_ledger_result lmdb_reserve(struct rg_ledger *base, const struct rg_reservation *r,
					  unsigned *occupancy, char *err, size_t errlen)
{
	struct lmdb_ledger *l = (struct lmdb_ledger *)base;
	struct env_entry *e = l->e;
	uint8_t akbuf[KEY_BUF], dkbuf[KEY_BUF], vbuf[ADM_HDR + 2 * FIELD_MAX], cbuf[8];
	size_t maxkey = (size_t)mdb_env_get_maxkeysize(e->env);
	MDB_val akey, dkey, aval, cval;
	struct counts c;
	unsigned limit = rg_rules_place_limit(r->capacity, r->reserved, r->exempt);
	bool admitted;
	MDB_txn *txn;
	int rc;

	akey.mv_size = adm_key(akbuf, maxkey < sizeof(akbuf) ? maxkey : sizeof(akbuf), r->site,
			       r->day, r->person);
	akey.mv_data = akbuf;
	dkey.mv_size = day_key(dkbuf, sizeof(dkbuf), r->site, r->day);
	dkey.mv_data = dkbuf;
	aval.mv_size = adm_value(vbuf, sizeof(vbuf), r);
	aval.mv_data = vbuf;
	if (!akey.mv_size || !dkey.mv_size || !aval.mv_size) {
		rg_ledger_err(err, errlen, "ledger: site, person, door or rule too long");
		return RG_LEDGER_FAILED;
	}

	/* read-only first: a re-entry, a full day and a dry run write nothing */
	rc = txn_begin(e, MDB_RDONLY, &txn);
	if (rc) {
		mdb_err(e, rc, "begin read", err, errlen);
		return RG_LEDGER_FAILED;
	}
	rc = lookup(e, txn, &akey, &dkey, &admitted, &c);
	txn_abort(e, txn);
	if (rc) {
		mdb_err(e, rc, "read", err, errlen);
		return RG_LEDGER_FAILED;
	}
	*occupancy = c.count;
	if (admitted)
		return RG_LEDGER_REENTRY;
	if (c.count >= limit)
		return RG_LEDGER_FULL;
	if (r->dry_run)
		return RG_LEDGER_WOULD_ADMIT;

	/* the write transaction checks again: another writer may have won */
	bool retried = false;
	const char *what;
again:
	what = "write";
	rc = txn_begin(e, 0, &txn);
	if (rc) {
		mdb_err(e, rc, "begin write", err, errlen);
		return RG_LEDGER_FAILED;
	}
	rc = lookup(e, txn, &akey, &dkey, &admitted, &c);
	if (rc)
		goto fail;
	*occupancy = c.count;
	if (admitted || c.count >= limit) {
		txn_abort(e, txn);
		return admitted ? RG_LEDGER_REENTRY : RG_LEDGER_FULL;
	}
	rc = mdb_put(txn, e->adm, &akey, &aval, MDB_NOOVERWRITE);
	if (rc)
		goto fail;
	c.count++;
	if (r->exempt)
		c.exempt++;
	memcpy(cbuf, &c.count, 4);
	memcpy(cbuf + 4, &c.exempt, 4);
	cval.mv_size = sizeof(cbuf);
	cval.mv_data = cbuf;
	rc = mdb_put(txn, e->cnt, &dkey, &cval, 0);
	if (rc)
		goto fail;
	rc = txn_commit(e, txn); /* frees txn either way */
	if (rc == 0) {
		*occupancy = c.count;
		auto_prune(l, r->day);
		return RG_LEDGER_ADMITTED;
	}
	*occupancy = c.count - 1;
	what = "commit";
	goto failed;
fail:
	txn_abort(e, txn);
failed:
	if (rc == MDB_MAP_FULL && !retried && stale_readers_cleared(e)) {
		retried = true;
		goto again;
	}
	mdb_err(e, rc, what, err, errlen);
	return RG_LEDGER_FAILED;
}

/* ---- reading a day ---- */

static int collect(struct env_entry *e, MDB_txn *txn, const uint8_t *prefix, size_t plen,
		   struct rg_day_summary *out)
{
	MDB_cursor *c;
	MDB_val k = { plen, (void *)prefix }, v;
	int rc = mdb_cursor_open(txn, e->adm, &c);

	if (rc)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		struct rg_admission *na = realloc(out->admissions,
						  (out->nadmissions + 1) * sizeof(*na));
		if (!na) {
			rc = ENOMEM;
			break;
		}
		out->admissions = na;
		if (decode_admission(&k, plen, &v, &na[out->nadmissions]) != 0) {
			rc = ENOMEM;
			break;
		}
		out->nadmissions++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int lmdb_day(struct rg_ledger *base, const char *site, int32_t day, bool with_admissions,
		    struct rg_day_summary *out, char *err, size_t errlen)
{
	struct lmdb_ledger *l = (struct lmdb_ledger *)base;
	struct env_entry *e = l->e;
	uint8_t dkbuf[KEY_BUF];
	MDB_val dkey, v;
	MDB_txn *txn;
	int rc;

	dkey.mv_size = day_key(dkbuf, sizeof(dkbuf) - 1, site, day);
	dkey.mv_data = dkbuf;
	if (!dkey.mv_size) {
		rg_ledger_err(err, errlen, "ledger: site name too long");
		return -1;
	}
	rc = txn_begin(e, MDB_RDONLY, &txn);
	if (rc) {
		mdb_err(e, rc, "begin read", err, errlen);
		return -1;
	}
	rc = mdb_get(txn, e->cnt, &dkey, &v);
	if (rc == 0) {
		struct counts c = get_counts(&v);

		out->count = c.count;
		out->exempt_count = c.exempt;
	} else if (rc == MDB_NOTFOUND) {
		rc = 0;
	}
	if (rc == 0 && with_admissions) {
		dkbuf[dkey.mv_size] = 0;
		rc = collect(e, txn, dkbuf, dkey.mv_size + 1, out);
	}
	txn_abort(e, txn);
	if (rc) {
		rg_day_summary_clear(out);
		if (rc == ENOMEM)
			rg_ledger_err(err, errlen, "ledger: out of memory");
		else
			mdb_err(e, rc, "read", err, errlen);
		return -1;
	}
	rg_ledger_sort_admissions(out);
	return 0;
}

int rg_ledger_lmdb_last_txnid(struct rg_ledger *base, uint64_t *txnid, char *err, size_t errlen)
{
	struct lmdb_ledger *l = (struct lmdb_ledger *)base;
	MDB_envinfo info;
	int rc;

	if (!base || base->ops != &lmdb_ops) {
		rg_ledger_err(err, errlen, "ledger: not an lmdb ledger");
		return -1;
	}
	rc = mdb_env_info(l->e->env, &info);
	if (rc) {
		mdb_err(l->e, rc, "info", err, errlen);
		return -1;
	}
	*txnid = info.me_last_txnid;
	return 0;
}

static const struct rg_ledger_ops lmdb_ops = {
	.name = "lmdb",
	.reserve = lmdb_reserve,
	.day = lmdb_day,
	.prune = lmdb_prune,
	.close = lmdb_close,
};
