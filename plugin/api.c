/*
 * api.c - rotagate_open/decide/close: the decision pipeline.
 *
 *   request -> validate -> current config (hot reload) -> door -> site
 *           -> person + groups (cache, directory, offline data)
 *           -> rules (deny, exempt, closed, rota) -> ledger -> audit
 *
 * Everything that must outlive one call lives in the handle: the config in
 * force (refcounted "generation" with its audit sink, ledger and LDAP session
 * pool), the membership cache and the directory up/down state.  A reload
 * builds a complete new generation and swaps it in under the handle's mutex;
 * a request keeps the generation it started with until it finishes.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <syslog.h>
#include <time.h>

#include "api.h"
#include "audit.h"
#include "cache.h"
#include "calendar.h"
#include "directory.h"
#include "ledger.h"
#include "rotagate.h"
#include "rules.h"

#ifndef ROTAGATE_DEFAULT_CONF
#define ROTAGATE_DEFAULT_CONF "/etc/rotagate/rotagate.conf"
#endif

#define RG_EXPORT __attribute__((visibility("default")))
#define RG_PRINCIPAL_MAX 256
#define RG_DOOR_MAX 120

/* One applied configuration and the resources built from it. */
struct rg_generation {
	struct rg_config *cfg;
	struct rg_audit *audit;
	struct rg_ledger *ledger;
	struct rg_snapshot *snap;  /* membership snapshot under ledger.path */
	struct rg_dir_target *dir_target; /* directory URIs + backoff, shared by all sessions */
	struct rg_dir **pool;     /* idle LDAP sessions (one thread uses one at a time) */
	size_t npool, pool_cap;
	unsigned refs;            /* protected by the handle's mutex */
};

struct rg_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct rotagate {
	char *conf_path;
	pthread_mutex_t lock;        /* guards gen, file ids, pool lists, dir state */
	pthread_mutex_t reload_lock; /* one reload at a time */
	struct rg_generation *gen;
	struct rg_file_id applied;   /* file the current generation came from */
	struct rg_file_id rejected;  /* last file that failed (not re-parsed until it changes) */
	bool have_rejected;
	struct rg_cache *cache;
	int dir_state;               /* 1 up, 0 down, -1 unknown */
	pid_t pid;                   /* process the generation's resources belong to */
	struct rotagate *prev, *next; /* every open handle, under handles_lock */
};

/* ------------------------------------------------------------------ */
/* fork safety                                                         */
/*
 * A controller may fork while other threads are inside rotagate (a
 * pre-forking server with a housekeeping thread).  The child has only the
 * forking thread: a mutex another thread held at that moment would stay
 * locked in the child forever, and its first swipe would hang.  So the
 * prepare handler takes every lock the child can reach, in the one order
 * used everywhere else, and both sides release them after the fork:
 *
 *   registry_lock -> handles_lock -> each handle's reload_lock
 *     -> each handle's lock -> its cache's lock
 *     -> the config parser's lock -> the snapshot list -> the LMDB list
 *     -> the time-zone cache (a leaf: GLib's own zone lock is only ever
 *        taken under it, see calendar.c)
 *
 * (reload_lock is taken before lock, and the module-wide locks after the
 * handle's, on every other path too.)  Locks inside a generation (audit
 * sink, LDAP sessions, ledger) need no such care: the child never uses the
 * parent's generation, it builds its own (ensure_own_process).  The
 * handlers stay valid after dlclose because the module is linked
 * -z nodelete.
 */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER; /* PAM registry, below */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rotagate *handles;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
	pthread_mutex_lock(&handles_lock);
	for (struct rotagate *h = handles; h; h = h->next)
		pthread_mutex_lock(&h->reload_lock);
	for (struct rotagate *h = handles; h; h = h->next) {
		pthread_mutex_lock(&h->lock);
		rg_cache_fork_prepare(h->cache);
	}
	rg_config_fork_prepare();
	rg_snapshot_fork_prepare();
	rg_ledger_lmdb_fork_prepare();
	rg_cal_fork_prepare();
}

/* In the parent and in the child alike: the forking thread holds them all. */
static void fork_release(void)
{
	rg_cal_fork_release();
	rg_ledger_lmdb_fork_release();
	rg_snapshot_fork_release();
	rg_config_fork_release();
	for (struct rotagate *h = handles; h; h = h->next) {
		rg_cache_fork_release(h->cache);
		pthread_mutex_unlock(&h->lock);
	}
	for (struct rotagate *h = handles; h; h = h->next)
		pthread_mutex_unlock(&h->reload_lock);
	pthread_mutex_unlock(&handles_lock);
	pthread_mutex_unlock(&registry_lock);
}

static void atfork_register(void)
{
	pthread_atfork(fork_prepare, fork_release, fork_release);
}

static void handle_link(struct rotagate *h)
{
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&handles_lock);
	h->prev = NULL;
	h->next = handles;
	if (handles)
		handles->prev = h;
	handles = h;
	pthread_mutex_unlock(&handles_lock);
}

static void handle_unlink(struct rotagate *h)
{
	pthread_mutex_lock(&handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&handles_lock);
}

/* ------------------------------------------------------------------ */
/* names                                                               */

static const char *const reason_names[ROTAGATE_R__COUNT] = {
	[ROTAGATE_R_NONE] = "none",
	[ROTAGATE_R_ROTA_DAY] = "rota-day",
	[ROTAGATE_R_EXEMPT] = "exempt",
	[ROTAGATE_R_REENTRY] = "re-entry",
	[ROTAGATE_R_NOT_ON_ROTA_TODAY] = "not-on-rota-today",
	[ROTAGATE_R_OUTSIDE_HOURS] = "outside-hours",
	[ROTAGATE_R_SITE_CLOSED] = "site-closed",
	[ROTAGATE_R_CAPACITY_FULL] = "capacity-full",
	[ROTAGATE_R_DENY_GROUP] = "deny-group",
	[ROTAGATE_R_UNKNOWN_PERSON] = "unknown-person",
	[ROTAGATE_R_UNKNOWN_DOOR] = "unknown-door",
	[ROTAGATE_R_BAD_INPUT] = "bad-input",
	[ROTAGATE_R_DIRECTORY_UNAVAILABLE] = "directory-unavailable",
	[ROTAGATE_R_LEDGER_UNAVAILABLE] = "ledger-unavailable",
	[ROTAGATE_R_CONFIG_ERROR] = "config-error",
	[ROTAGATE_R_INTERNAL_ERROR] = "internal-error",
};

RG_EXPORT const char *rotagate_reason_name(enum rotagate_reason reason)
{
	if ((unsigned)reason >= ROTAGATE_R__COUNT || !reason_names[reason])
		return "unknown";
	return reason_names[reason];
}

RG_EXPORT const char *rotagate_verdict_name(enum rotagate_verdict verdict)
{
	switch (verdict) {
	case ROTAGATE_GRANT: return "GRANT";
	case ROTAGATE_DENY: return "DENY";
	case ROTAGATE_ERROR: return "ERROR";
	}
	return "ERROR";
}

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static int64_t now_monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	if (!len)
		return;
	snprintf(dst, len, "%s", src ? src : "");
}

static void explain_add(struct rotagate_decision *dec, bool on, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void explain_add(struct rotagate_decision *dec, bool on, const char *fmt, ...)
{
	if (!on)
		return;
	size_t used = strnlen(dec->explain, sizeof dec->explain);
	if (used + 1 >= sizeof dec->explain)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(dec->explain + used, sizeof dec->explain - used, fmt, ap);
	va_end(ap);
}

/* A door name is short printable ASCII. */
static bool door_ok(const char *door)
{
	if (!door || !*door)
		return false;
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)door; *p; p++, n++) {
		if (n >= RG_DOOR_MAX || *p < 0x21 || *p > 0x7e)
			return false;
	}
	return true;
}

static bool principal_ok(const char *principal)
{
	return principal && *principal && strnlen(principal, RG_PRINCIPAL_MAX + 1) <= RG_PRINCIPAL_MAX &&
	       rg_dir_principal_ok(principal);
}

static void file_id_from(const struct stat *st, struct rg_file_id *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtime = st->st_mtim;
	id->ctime = st->st_ctim;
}

static int file_id_of(const char *path, struct rg_file_id *id)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	file_id_from(&st, id);
	return 0;
}

static bool file_id_eq(const struct rg_file_id *a, const struct rg_file_id *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* generations                                                         */

/* flush_ms: how long the audit sink may try to deliver its spool first; a
 * request that happens to drop the last reference after a reload must not
 * wait for that, only an explicit close does. */
static void generation_free(struct rg_generation *g, int flush_ms)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->npool; i++)
		rg_dir_free(g->pool[i]);
	free(g->pool);
	rg_dir_target_free(g->dir_target);
	if (g->ledger)
		rg_ledger_close(g->ledger);
	rg_snapshot_close(g->snap);
	rg_audit_free_wait(g->audit, flush_ms);
	rg_config_free(g->cfg);
	free(g);
}

/* Build everything a config needs; on failure nothing is kept.  *id: the
 * identity of the file version actually parsed (all zero when it could not
 * be opened), also on failure: what a later stat() is compared with. */
static struct rg_generation *generation_new(const char *path, struct rg_file_id *id, char *err,
					    size_t errlen)
{
	struct stat st;
	struct rg_generation *g = calloc(1, sizeof *g);
	memset(id, 0, sizeof *id);
	if (!g) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	g->refs = 1;
	int rc = rg_config_load_stat(path, &g->cfg, &st, err, errlen);
	if (st.st_ino != 0 || st.st_dev != 0)
		file_id_from(&st, id);
	if (rc != 0)
		goto fail;
	g->dir_target = rg_dir_target_new(&g->cfg->directory);
	if (!g->dir_target) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	g->audit = rg_audit_new(&g->cfg->audit, err, errlen);
	if (!g->audit)
		goto fail;
	if (rg_ledger_open(g->cfg, &g->ledger, err, errlen) != 0) {
		g->ledger = NULL;
		goto fail;
	}
	g->snap = rg_snapshot_open(g->cfg->ledger.path, err, errlen);
	if (!g->snap)
		goto fail;
	return g;
fail:
	generation_free(g, 0);
	return NULL;
}

static struct rg_generation *generation_get(struct rotagate *h)
{
	pthread_mutex_lock(&h->lock);
	struct rg_generation *g = h->gen;
	g->refs++;
	pthread_mutex_unlock(&h->lock);
	return g;
}

static void generation_put(struct rotagate *h, struct rg_generation *g)
{
	pthread_mutex_lock(&h->lock);
	bool last = --g->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (last)
		generation_free(g, 0);
}

static struct rg_dir *dir_checkout(struct rotagate *h, struct rg_generation *g)
{
	struct rg_dir *d = NULL;
	pthread_mutex_lock(&h->lock);
	if (g->npool > 0)
		d = g->pool[--g->npool];
	pthread_mutex_unlock(&h->lock);
	return d ? d : rg_dir_new_shared(&g->cfg->directory, g->dir_target);
}

static void dir_checkin(struct rotagate *h, struct rg_generation *g, struct rg_dir *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&h->lock);
	if (g->npool == g->pool_cap) {
		size_t cap = g->pool_cap ? g->pool_cap * 2 : 8;
		struct rg_dir **p = realloc(g->pool, cap * sizeof *p);
		if (!p) {
			pthread_mutex_unlock(&h->lock);
			rg_dir_free(d);
			return;
		}
		g->pool = p;
		g->pool_cap = cap;
	}
	g->pool[g->npool++] = d;
	pthread_mutex_unlock(&h->lock);
}

/* ------------------------------------------------------------------ */
/* audit helpers                                                       */

static void audit_config_event(struct rg_generation *g, const char *event, const char *path,
			       const char *error)
{
	char nsites[16];
	snprintf(nsites, sizeof nsites, "%zu", g->cfg->nsites);
	struct rg_kv kv[] = {
		{ "config_sha", g->cfg->sha },
		{ "path", path },
		{ error ? "error" : "sites", error ? error : nsites },
	};
	rg_audit_emit(g->audit, error ? LOG_ERR : LOG_INFO, event, kv, sizeof kv / sizeof kv[0]);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_directory(const struct rg_directory_cfg *a, const struct rg_directory_cfg *b)
{
	return same_str(a->uri, b->uri) && same_str(a->base, b->base) &&
	       same_str(a->user_filter, b->user_filter) &&
	       same_str(a->badge_attribute, b->badge_attribute) && a->membership == b->membership &&
	       a->nested_groups == b->nested_groups;
}

/* After fork() the child must not touch what the parent's generation holds:
 * pooled LDAP connections (both would read each other's replies), the LMDB
 * environments (LMDB forbids use after fork) and the audit socket.  The
 * child abandons that generation without closing anything (closing would
 * disturb the parent) and builds its own from the file.  On failure it
 * keeps no generation usable: decisions are errors until a rebuild works. */
static bool ensure_own_process(struct rotagate *h)
{
	pid_t me = getpid();
	pthread_mutex_lock(&h->lock);
	bool mine = h->pid == me;
	pthread_mutex_unlock(&h->lock);
	if (mine)
		return true;

	pthread_mutex_lock(&h->reload_lock);
	bool ok = true;
	if (h->pid != me) {
		char err[1024] = "";
		struct rg_file_id id;
		struct rg_generation *fresh = generation_new(h->conf_path, &id, err, sizeof err);
		if (!fresh) {
			ok = false;
		} else {
			pthread_mutex_lock(&h->lock);
			h->gen = fresh; /* the parent's generation is deliberately leaked */
			h->applied = id;
			h->have_rejected = false;
			h->dir_state = -1;
			h->pid = me;
			pthread_mutex_unlock(&h->lock);
		}
	}
	pthread_mutex_unlock(&h->reload_lock);
	return ok;
}

/* Cheap per-decision check: stat the file; parse only when it changed and
 * differs from the last rejected version.  A broken file never applies. */
static void maybe_reload(struct rotagate *h)
{
	struct rg_file_id id;
	if (file_id_of(h->conf_path, &id) != 0)
		memset(&id, 0, sizeof id); /* a vanished file is a change, rejected below */

	pthread_mutex_lock(&h->lock);
	bool unchanged = file_id_eq(&id, &h->applied) ||
			 (h->have_rejected && file_id_eq(&id, &h->rejected));
	pthread_mutex_unlock(&h->lock);
	if (unchanged)
		return;

	pthread_mutex_lock(&h->reload_lock);
	/* another thread may have done it meanwhile: look again, now */
	if (file_id_of(h->conf_path, &id) != 0)
		memset(&id, 0, sizeof id);
	pthread_mutex_lock(&h->lock);
	unchanged = file_id_eq(&id, &h->applied) || (h->have_rejected && file_id_eq(&id, &h->rejected));
	pthread_mutex_unlock(&h->lock);
	if (unchanged) {
		pthread_mutex_unlock(&h->reload_lock);
		return;
	}

	/* from here on, id is the version parsed (the file may be replaced
	 * while it is read: that newer version is then a change of its own) */
	char err[1024] = "";
	struct rg_generation *fresh = generation_new(h->conf_path, &id, err, sizeof err);
	struct rg_generation *old = generation_get(h);
	if (!fresh) {
		pthread_mutex_lock(&h->lock);
		h->rejected = id;
		h->have_rejected = true;
		pthread_mutex_unlock(&h->lock);
		audit_config_event(old, "config.rejected", h->conf_path, err);
		generation_put(h, old);
		pthread_mutex_unlock(&h->reload_lock);
		return;
	}
	bool dir_changed = !same_directory(&old->cfg->directory, &fresh->cfg->directory);
	pthread_mutex_lock(&h->lock);
	h->gen = fresh;
	h->applied = id;
	h->have_rejected = false;
	if (dir_changed)
		h->dir_state = -1;
	pthread_mutex_unlock(&h->lock);
	if (dir_changed)
		rg_cache_clear(h->cache);
	audit_config_event(fresh, "config.loaded", h->conf_path, NULL);
	generation_put(h, old); /* the reference taken above */
	generation_put(h, old); /* the handle's own reference */
	pthread_mutex_unlock(&h->reload_lock);
}

/* ------------------------------------------------------------------ */
/* open / close                                                        */

RG_EXPORT int rotagate_open(const char *conf_path, struct rotagate **out, char *errbuf, size_t errlen)
{
	char dummy[8];
	if (!errbuf || !errlen) {
		errbuf = dummy;
		errlen = sizeof dummy;
	}
	errbuf[0] = '\0';
	if (!out) {
		snprintf(errbuf, errlen, "rotagate_open: no handle pointer");
		return -1;
	}
	*out = NULL;
	if (!conf_path)
		conf_path = ROTAGATE_DEFAULT_CONF;

	struct rotagate *h = calloc(1, sizeof *h);
	if (!h || !(h->conf_path = strdup(conf_path)) || !(h->cache = rg_cache_new())) {
		snprintf(errbuf, errlen, "%s: out of memory", conf_path);
		goto fail;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->reload_lock, NULL);
	h->dir_state = -1;
	h->pid = getpid();
	h->gen = generation_new(conf_path, &h->applied, errbuf, errlen);
	if (!h->gen)
		goto fail_locks;
	audit_config_event(h->gen, "config.loaded", conf_path, NULL);
	handle_link(h);
	*out = h;
	return 0;

fail_locks:
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->reload_lock);
fail:
	if (h) {
		rg_cache_free(h->cache);
		free(h->conf_path);
		free(h);
	}
	return -1;
}

RG_EXPORT void rotagate_close(struct rotagate *h)
{
	if (!h)
		return;
	handle_unlink(h);
	pthread_mutex_lock(&h->lock);
	bool last = --h->gen->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (last)
		generation_free(h->gen, 1000); /* give the spool a last chance */
	rg_cache_free(h->cache);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->reload_lock);
	free(h->conf_path);
	free(h);
}

void rg_api_view_get(struct rotagate *h, struct rg_api_view *v)
{
	maybe_reload(h);
	struct rg_generation *g = generation_get(h);
	v->cfg = g->cfg;
	v->ledger = g->ledger;
	v->gen_ = g;
}

void rg_api_view_put(struct rotagate *h, struct rg_api_view *v)
{
	if (v->gen_)
		generation_put(h, v->gen_);
	memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ */
/* the person                                                          */

enum lookup_result { LK_OK, LK_NOT_FOUND, LK_UNAVAILABLE, LK_BAD_INPUT, LK_ERROR };

static void set_dir_state(struct rotagate *h, struct rg_generation *g, int up, const char *detail)
{
	pthread_mutex_lock(&h->lock);
	bool changed = h->dir_state != up;
	bool first = h->dir_state == -1;
	h->dir_state = up;
	pthread_mutex_unlock(&h->lock);
	if (!changed || (first && up))
		return; /* "up" at start is the normal state, not news */
	struct rg_kv kv[] = {
		{ "config_sha", g->cfg->sha },
		{ "uri", g->cfg->directory.uri },
		{ "detail", detail ? detail : "" },
	};
	rg_audit_emit(g->audit, up ? LOG_NOTICE : LOG_WARNING, up ? "directory.up" : "directory.down",
		      kv, sizeof kv / sizeof kv[0]);
}

/* Keep the snapshot in step with live answers, without a disk write per
 * lookup: write when the person is new there, their groups changed, or the
 * stored copy is older than half of offline-max-age (so offline answers stay
 * reasonably fresh; an older stored time only makes them expire sooner). */
static void snapshot_write_through(struct rg_generation *g, const struct rg_person *p)
{
	char err[256];
	struct rg_person *old = NULL;
	int rc = rg_snapshot_get(g->snap, p->principal, &old, err, sizeof err);
	bool write = rc != 1 || old->ngroups != p->ngroups ||
		     !same_str(old->dn, p->dn) || !same_str(old->uid, p->uid) ||
		     p->fetched - old->fetched > (int64_t)g->cfg->directory.offline_max_age / 2;
	for (size_t i = 0; !write && i < p->ngroups; i++)
		write = !same_str(old->groups[i], p->groups[i]);
	rg_person_free(old);
	if (write)
		rg_snapshot_put_person(g->snap, p, err, sizeof err);
}

static void snapshot_forget(struct rg_generation *g, const char *principal)
{
	char err[256];
	struct rg_person *old = NULL;
	if (rg_snapshot_get(g->snap, principal, &old, err, sizeof err) == 1)
		rg_snapshot_del(g->snap, principal, err, sizeof err);
	rg_person_free(old);
}

/* lookup = snapshot: decisions read only the synced snapshot. */
static enum lookup_result find_in_snapshot(struct rg_generation *g, const char *principal,
					   struct rg_person **person, struct rotagate_decision *dec,
					   bool explain)
{
	char err[256] = "";
	int64_t now = time(NULL), synced = 0;
	int rc = rg_snapshot_synced_at(g->snap, &synced, err, sizeof err);
	if (rc != 1) {
		explain_add(dec, explain, "snapshot: %s\n",
			    rc == 0 ? "never synced (run rotagatectl sync)" : err);
		return LK_UNAVAILABLE;
	}
	if (now - synced > (int64_t)g->cfg->directory.offline_max_age) {
		explain_add(dec, explain, "snapshot: last sync %lld s ago, older than offline-max-age (%u s)\n",
			    (long long)(now - synced), g->cfg->directory.offline_max_age);
		return LK_UNAVAILABLE;
	}
	rc = rg_snapshot_get(g->snap, principal, person, err, sizeof err);
	if (rc < 0) {
		explain_add(dec, explain, "snapshot: %s\n", err);
		return LK_ERROR;
	}
	dec->data_age = now - synced;
	if (rc == 0) {
		explain_add(dec, explain, "snapshot: no such person (synced %lld s ago)\n",
			    (long long)dec->data_age);
		return LK_NOT_FOUND;
	}
	explain_add(dec, explain, "snapshot: %s, member of %zu group(s), synced %lld s ago\n",
		    (*person)->dn ? (*person)->dn : principal, (*person)->ngroups,
		    (long long)dec->data_age);
	return LK_OK;
}

static bool generation_is_current(struct rotagate *h, struct rg_generation *g)
{
	pthread_mutex_lock(&h->lock);
	bool current = h->gen == g;
	pthread_mutex_unlock(&h->lock);
	return current;
}

/* dry: a dry run changes nothing anywhere, not even the caches */
static enum lookup_result find_person(struct rotagate *h, struct rg_generation *g,
				      const struct rg_site *site, const char *principal,
				      struct rg_person **person, struct rotagate_decision *dec,
				      bool explain, bool dry)
{
	const struct rg_directory_cfg *dc = &g->cfg->directory;
	int64_t now = time(NULL);

	if (dc->lookup == RG_LOOKUP_SNAPSHOT)
		return find_in_snapshot(g, principal, person, dec, explain);

	*person = rg_cache_get(h->cache, principal, now, dc->cache_ttl);
	if (*person) {
		dec->data_age = now - (*person)->fetched;
		explain_add(dec, explain, "directory: cached answer, %lld s old (cache-ttl %u s)\n",
			    (long long)dec->data_age, dc->cache_ttl);
		return LK_OK;
	}
	if (rg_cache_is_negative(h->cache, principal, now, dc->cache_ttl)) {
		explain_add(dec, explain, "directory: no such person (cached answer)\n");
		return LK_NOT_FOUND;
	}

	char err[512] = "";
	struct rg_dir *d = dir_checkout(h, g);
	if (!d)
		return LK_ERROR;
	enum rg_dir_status st = rg_dir_lookup(d, principal, person, err, sizeof err);
	dir_checkin(h, g, d);

	switch (st) {
	case RG_DIR_OK:
		set_dir_state(h, g, 1, NULL);
		if (generation_is_current(h, g) && !dry) {
			/* an answer from a replaced directory config is not kept */
			rg_cache_put(h->cache, *person);
			snapshot_write_through(g, *person);
		}
		dec->data_age = 0;
		explain_add(dec, explain, "directory: %s, member of %zu group(s)\n", (*person)->dn,
			    (*person)->ngroups);
		return LK_OK;
	case RG_DIR_NOT_FOUND:
		set_dir_state(h, g, 1, NULL);
		if (generation_is_current(h, g) && !dry) {
			rg_cache_put_negative(h->cache, principal, now);
			snapshot_forget(g, principal);
		}
		explain_add(dec, explain, "directory: no such person\n");
		return LK_NOT_FOUND;
	case RG_DIR_BAD_INPUT:
		explain_add(dec, explain, "directory: principal refused: %s\n", err);
		return LK_BAD_INPUT;
	case RG_DIR_UNAVAILABLE:
		set_dir_state(h, g, 0, err);
		break;
	case RG_DIR_AMBIGUOUS:
		/* an answer, and a bad one: whatever was remembered about this
		 * name no longer identifies one person, so it must not decide
		 * later either (offline) */
		set_dir_state(h, g, 1, NULL);
		if (generation_is_current(h, g) && !dry) {
			rg_cache_forget(h->cache, principal);
			snapshot_forget(g, principal);
		}
		explain_add(dec, explain, "directory: %s\n", err);
		return LK_ERROR;
	case RG_DIR_ERROR:
	default:
		/* the directory answered, but not usably (incomplete answer,
		 * refused bind): not an outage, so no
		 * offline data may decide in its place */
		explain_add(dec, explain, "directory: error: %s\n", err);
		return LK_ERROR;
	}

	explain_add(dec, explain, "directory: unavailable: %s\n", err);
	if (site->on_directory_failure != RG_ONFAIL_CACHED) {
		explain_add(dec, explain, "site %s: on-directory-failure = deny\n", site->name);
		return LK_UNAVAILABLE;
	}
	*person = rg_cache_get(h->cache, principal, now, dc->offline_max_age);
	if (!*person) {
		/* a restarted process still has what an earlier one wrote through */
		char serr[256];
		struct rg_person *p = NULL;
		if (rg_snapshot_get(g->snap, principal, &p, serr, sizeof serr) == 1 &&
		    now - p->fetched <= (int64_t)dc->offline_max_age)
			*person = p;
		else
			rg_person_free(p);
	}
	if (!*person) {
		explain_add(dec, explain, "offline data: no answer younger than offline-max-age (%u s)\n",
			    dc->offline_max_age);
		return LK_UNAVAILABLE;
	}
	dec->degraded = 1;
	dec->data_age = now - (*person)->fetched;
	explain_add(dec, explain, "cache: using an answer %lld s old (degraded)\n",
		    (long long)dec->data_age);
	return LK_OK;
}

/* ------------------------------------------------------------------ */
/* decide                                                              */

static void finish(struct rotagate_decision *dec, enum rotagate_verdict v, enum rotagate_reason r)
{
	dec->verdict = v;
	dec->reason = r;
}

/* Returns what rg_audit_emit returned: 0 delivered, 1 spooled, -1 lost. */
static int audit_decision(struct rg_generation *g, const struct rotagate_request *req,
			  const struct rotagate_decision *dec, int64_t when)
{
	char occ[16], cap[16], deg[4], age[24], lat[24], at[40];
	snprintf(occ, sizeof occ, "%u", dec->occupancy);
	snprintf(cap, sizeof cap, "%u", dec->capacity);
	snprintf(deg, sizeof deg, "%d", dec->degraded);
	snprintf(age, sizeof age, "%lld", (long long)dec->data_age);
	snprintf(lat, sizeof lat, "%lld", (long long)dec->latency_us);
	struct tm tm;
	rg_cal_utc_tm(when, &tm); /* not gmtime_r(): fork safety */
	if (when >= -62135596800LL && when <= 253402300799LL) /* years 0001..9999 */
		snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		snprintf(at, sizeof at, "@%lld", (long long)when);

	const char *event = dec->verdict == ROTAGATE_GRANT ? "access.granted"
			    : dec->verdict == ROTAGATE_DENY ? "access.denied"
							     : "access.error";
	int sev = dec->verdict == ROTAGATE_GRANT ? LOG_INFO
		  : dec->verdict == ROTAGATE_DENY ? LOG_NOTICE
						   : LOG_ERR;
	struct rg_kv kv[] = {
		{ "config_sha", g->cfg->sha },
		{ "user", req && req->principal ? req->principal : "" },
		{ "door", req && req->door ? req->door : "" },
		{ "site", dec->site },
		{ "rule", dec->rule },
		{ "verdict", rotagate_verdict_name(dec->verdict) },
		{ "reason", rotagate_reason_name(dec->reason) },
		{ "occupancy", occ },
		{ "capacity", cap },
		{ "degraded", deg },
		{ "data_age", age },
		{ "latency_us", lat },
		{ "at", at },
		{ "date", dec->local_date },
		{ "dry_run", req && (req->flags & ROTAGATE_DRY_RUN) ? "1" : "0" },
	};
	return rg_audit_emit(g->audit, sev, event, kv, sizeof kv / sizeof kv[0]);
}

static void decide_in(struct rotagate *h, struct rg_generation *g, const struct rotagate_request *req,
		      struct rotagate_decision *dec, int64_t when, bool *hide_rule)
{
	const bool explain = req->flags & ROTAGATE_EXPLAIN;
	const bool dry = req->flags & ROTAGATE_DRY_RUN;

	if (!principal_ok(req->principal) || !door_ok(req->door)) {
		explain_add(dec, explain, "request: the user or door name is empty, too long or "
					  "contains bytes that are not allowed\n");
		finish(dec, ROTAGATE_DENY, ROTAGATE_R_BAD_INPUT);
		return;
	}
	const struct rg_site *site = rg_config_site_for_door(g->cfg, req->door);
	if (!site) {
		explain_add(dec, explain, "door '%s' belongs to no site\n", req->door);
		finish(dec, ROTAGATE_DENY, ROTAGATE_R_UNKNOWN_DOOR);
		return;
	}
	copy_str(dec->site, sizeof dec->site, site->name);
	dec->capacity = site->capacity;

	struct rg_person *person = NULL;
	switch (find_person(h, g, site, req->principal, &person, dec, explain, dry)) {
	case LK_OK: break;
	case LK_NOT_FOUND: finish(dec, ROTAGATE_DENY, ROTAGATE_R_UNKNOWN_PERSON); return;
	case LK_BAD_INPUT: finish(dec, ROTAGATE_DENY, ROTAGATE_R_BAD_INPUT); return;
	case LK_UNAVAILABLE: finish(dec, ROTAGATE_ERROR, ROTAGATE_R_DIRECTORY_UNAVAILABLE); return;
	case LK_ERROR:
	default: finish(dec, ROTAGATE_ERROR, ROTAGATE_R_INTERNAL_ERROR); return;
	}

	struct rg_groups groups = { (const char *const *)person->groups, person->ngroups };
	struct rg_eval ev;
	memset(&ev, 0, sizeof ev);
	size_t used = strnlen(dec->explain, sizeof dec->explain);
	if (rg_rules_evaluate(site, &groups, when, &ev, explain ? dec->explain + used : NULL,
			      explain ? sizeof dec->explain - used : 0) != 0) {
		/* rules explained it: an unloadable zone, or a time out of range */
		if (ev.reason == ROTAGATE_R_BAD_INPUT)
			finish(dec, ROTAGATE_DENY, ROTAGATE_R_BAD_INPUT);
		else
			finish(dec, ROTAGATE_ERROR, ROTAGATE_R_CONFIG_ERROR);
		goto out;
	}
	rg_cal_format_date(ev.ledger_day, dec->local_date, sizeof dec->local_date);
	copy_str(dec->rule, sizeof dec->rule, ev.rule);
	if (!ev.admissible) {
		*hide_rule = ev.reason == ROTAGATE_R_DENY_GROUP &&
			     g->cfg->audit.health_reasons == RG_HEALTH_NEUTRAL;
		/* the day's count, for the door display and the audit trail: a
		 * local read (no write transaction); 0 when it would cost a
		 * network round trip (ldap backend) or fails */
		struct rg_day_summary sum;
		char err[256];
		if (strcmp(rg_ledger_backend_name(g->ledger), "lmdb") == 0 && /* no round trip */
		    rg_ledger_day(g->ledger, site->name, ev.ledger_day, false, &sum, err, sizeof err) == 0) {
			dec->occupancy = sum.count;
			rg_day_summary_clear(&sum);
		}
		finish(dec, ROTAGATE_DENY, ev.reason);
		goto out;
	}

	/* the ledger keys people by a stable identity: their uid when the
	 * directory has one (a badge may be re-issued), else the principal */
	const char *identity = person->uid && *person->uid ? person->uid : req->principal;
	struct rg_reservation r = {
		.site = site->name, .day = ev.ledger_day, .person = identity, .door = req->door,
		.rule = ev.rule, .when = when, .capacity = site->capacity,
		.reserved = site->reserved, .exempt = ev.exempt, .dry_run = dry,
	};
	char err[512] = "";
	unsigned occ = 0;
	enum rg_ledger_result lr = rg_ledger_reserve(g->ledger, &r, &occ, err, sizeof err);
	dec->occupancy = occ;
	switch (lr) {
	case RG_LEDGER_ADMITTED:
	case RG_LEDGER_WOULD_ADMIT:
		explain_add(dec, explain, "ledger: %s %u/%u on %s%s\n",
			    lr == RG_LEDGER_ADMITTED ? "admitted," : "a place is free (dry run),", occ,
			    site->capacity, dec->local_date,
			    site->reserved ? (ev.exempt ? " (exempt: reserved places usable)"
							: " (reserved places not usable)")
					   : "");
		finish(dec, ROTAGATE_GRANT, ev.reason);
		break;
	case RG_LEDGER_REENTRY:
		explain_add(dec, explain, "ledger: already admitted on %s: re-entry, no place used\n",
			    dec->local_date);
		finish(dec, ROTAGATE_GRANT, ROTAGATE_R_REENTRY);
		break;
	case RG_LEDGER_FULL:
		explain_add(dec, explain, "ledger: %u/%u on %s, no place left%s\n", occ, site->capacity,
			    dec->local_date,
			    site->reserved && !ev.exempt ? " for non-exempt staff" : "");
		finish(dec, ROTAGATE_DENY, ROTAGATE_R_CAPACITY_FULL);
		break;
	case RG_LEDGER_FAILED:
	default: {
		explain_add(dec, explain, "ledger: %s\n", err);
		struct rg_kv kv[] = { { "config_sha", g->cfg->sha }, { "site", site->name },
				      { "error", err } };
		rg_audit_emit(g->audit, LOG_ERR, "ledger.error", kv, sizeof kv / sizeof kv[0]);
		finish(dec, ROTAGATE_ERROR, ROTAGATE_R_LEDGER_UNAVAILABLE);
		break;
	}
	}
out:
	rg_person_free(person);
}

RG_EXPORT enum rotagate_verdict rotagate_decide(struct rotagate *h, const struct rotagate_request *req,
						struct rotagate_decision *dec)
{
	int64_t t0 = now_monotonic_us();
	if (!dec)
		return ROTAGATE_ERROR;
	memset(dec, 0, sizeof *dec);
	finish(dec, ROTAGATE_ERROR, ROTAGATE_R_INTERNAL_ERROR);
	if (!h || !req)
		return dec->verdict;

	if (!ensure_own_process(h))
		return dec->verdict; /* ERROR internal-error: nothing usable in this process */
	maybe_reload(h);
	struct rg_generation *g = generation_get(h);
	copy_str(dec->config_sha, sizeof dec->config_sha, g->cfg->sha);
	int64_t when = req->when ? req->when : (int64_t)time(NULL);
	bool hide_rule = false;

	decide_in(h, g, req, dec, when, &hide_rule);
	if (hide_rule)
		dec->rule[0] = '\0'; /* neutral health reasons: not even the door display */

	dec->latency_us = now_monotonic_us() - t0;
	if (audit_decision(g, req, dec, when) < 0 && g->cfg->audit.spool &&
	    dec->verdict == ROTAGATE_GRANT) {
		/* neither delivered nor spooled: no entry without a record.  A
		 * place taken by this request counts as a re-entry later. */
		char aerr[256] = "";
		rg_audit_last_error(g->audit, aerr, sizeof aerr);
		explain_add(dec, req->flags & ROTAGATE_EXPLAIN, "audit: record lost (%s): refused\n", aerr);
		finish(dec, ROTAGATE_ERROR, ROTAGATE_R_INTERNAL_ERROR);
	}
	generation_put(h, g);
	return dec->verdict;
}

/* ------------------------------------------------------------------ */
/* the process-wide registry used by the PAM adapter                  */

struct registry_entry {
	char *path;
	struct rotagate *h;
	struct registry_entry *next;
};

static struct registry_entry *registry; /* under registry_lock (see fork safety) */

struct rotagate *rg_registry_get(const char *conf_path, char *err, size_t errlen)
{
	if (!conf_path)
		conf_path = ROTAGATE_DEFAULT_CONF;
	pthread_mutex_lock(&registry_lock);
	struct registry_entry *e;
	for (e = registry; e; e = e->next)
		if (strcmp(e->path, conf_path) == 0)
			break;
	struct rotagate *h = e ? e->h : NULL;
	if (!h) {
		e = calloc(1, sizeof *e);
		if (!e || !(e->path = strdup(conf_path))) {
			snprintf(err, errlen, "%s: out of memory", conf_path);
			free(e);
		} else if (rotagate_open(conf_path, &e->h, err, errlen) != 0) {
			free(e->path);
			free(e);
		} else {
			e->next = registry;
			registry = e;
			h = e->h;
		}
	}
	pthread_mutex_unlock(&registry_lock);
	return h;
}

/* ------------------------------------------------------------------ */

static const struct rotagate_plugin_v1 plugin_v1 = {
	.abi_version = ROTAGATE_ABI_VERSION,
	.decision_size = sizeof(struct rotagate_decision),
	.open = rotagate_open,
	.decide = rotagate_decide,
	.reason_name = rotagate_reason_name,
	.verdict_name = rotagate_verdict_name,
	.close = rotagate_close,
};

RG_EXPORT const struct rotagate_plugin_v1 *rotagate_plugin_v1(void)
{
	return &plugin_v1;
}
