/*
 * ledger_ldap.c - the shared capacity ledger: one LDAP entry per site-day
 * under ledger.ldap-base, so that several door controllers keep one count.
 *
 *   dn: rgSite=hq+rgDate=2026-11-23,ou=occupancy,dc=example,dc=org
 *   objectClass: rgOccupancy
 *   rgSite: hq             rgDate: 2026-11-23      rgDay: 20780
 *   rgCount: 2             rgExemptCount: 0
 *   rgAttendee: alice      rgEntry: alice|main-entrance|team-a|1795424400|0
 *   rgAttendee: bob        rgEntry: bob|side-gate|team-a|1795424460|0
 *
 * (schema: conf/schema/rotagate.schema).  The entry is created on first use;
 * an add that loses the race (alreadyExists) is fine.  A reservation is ONE
 * modify: add rgAttendee=<person> (+ its rgEntry) and increment rgCount
 * (RFC 4525), sent with a critical Assertion control (RFC 4528)
 * (rgCount<=limit-1).  The server applies the whole modify or nothing, so:
 *   success                  -> ADMITTED (count read back with post-read, RFC 4527)
 *   attributeOrValueExists   -> the person is already in: REENTRY
 *   assertionFailed          -> FULL, unless the person is already in (re-read)
 * A re-entry is found first with a read, so it writes nothing.
 *
 * IMPORTANT: the assertion is evaluated by the one server that applies the
 * modify.  All controllers must write to the same provider: with
 * multi-provider replication two servers could each accept the last place.
 *
 * Connections: opened by directory.c (rg_dir_conn_open: per-handle options,
 * TLS policy, a bounded handshake, backoff, the bind), to ledger.uri with
 * ledger.bind-dn/bind-password-file, else to the directory's FIRST URI with
 * the directory's credentials (rg_config_ledger_connection); every other
 * setting (timeout, tls*, allow-insecure-bind) is the directory's.
 * ONE SERVER ONLY: the ledger never fails over.  Controllers in different
 * backoff states would otherwise write to different servers (the capacity
 * exceeded, a re-entry missed on a lagging replica, increments lost), so
 * only URI 0 of the target is ever opened (rg_dir_conn_open(target, 1)) and
 * the ledger is unavailable while that server is; config.c refuses a
 * ledger.uri naming more than one server.  One connection is used by one
 * thread at a time (libldap handles are not shared).  A small pool under a
 * mutex hands idle sessions out; a thread that finds none opens its own.
 * Every wait for a result
 * is bounded by the timeout (ldap_result with a timeval; LDAP_OPT_TIMEOUT
 * does not bound it).  SIGPIPE is blocked around every operation, so a
 * write to a server that went away fails with an error instead of killing
 * the host process.
 */
#include <glib.h>
#include <inttypes.h>
#include <lber.h>
#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "directory.h"
#include "ledger.h"
#include "rules.h"

#define POOL_MAX 8
#define DEFAULT_TIMEOUT 5

struct ldap_ledger {
	struct rg_ledger base;
	struct rg_dir_target *target; /* URIs, TLS policy, credentials (shared by all sessions) */
	unsigned timeout;             /* seconds, each wait for a result */
	char *ldap_base;

	pthread_mutex_t mu;           /* guards the pool */
	struct rg_dir_conn *idle[POOL_MAX];
	size_t nidle;
	pid_t pid;                    /* idle sessions belong to this process */
};

static const struct rg_ledger_ops ldap_ops;

/* A checked-out session. */
struct conn {
	struct rg_dir_conn *dc;
	LDAP *ld;              /* rg_dir_conn_ld(dc) */
	bool reused;           /* came from the pool (may have gone stale) */
};

/* ---- small helpers ---- */

static void day_string(int32_t day, char *buf, size_t len)
{
	GDate d;
	int64_t julian = (int64_t)day + 719163; /* GDate: 0001-01-01 is day 1 */

	g_date_clear(&d, 1);
	if (julian < 1 || julian > G_MAXUINT32) {
		snprintf(buf, len, "day-%" PRId32, day);
		return;
	}
	g_date_set_julian(&d, (guint32)julian);
	snprintf(buf, len, "%04d-%02d-%02d", (int)g_date_get_year(&d), (int)g_date_get_month(&d),
		 (int)g_date_get_day(&d));
}

/* rgSite=<site>+rgDate=<date>,<base>, escaped by libldap.  malloc'd. */
static char *site_day_dn(const struct ldap_ledger *l, const char *site, int32_t day)
{
	char date[32], *rdn = NULL, *dn;
	LDAPAVA a_site, a_date;
	LDAPAVA *avas[3] = { &a_site, &a_date, NULL };
	size_t n;

	day_string(day, date, sizeof(date));
	memset(&a_site, 0, sizeof(a_site));
	memset(&a_date, 0, sizeof(a_date));
	a_site.la_attr.bv_val = "rgSite";
	a_site.la_attr.bv_len = strlen("rgSite");
	a_site.la_value.bv_val = (char *)site;
	a_site.la_value.bv_len = strlen(site);
	a_site.la_flags = LDAP_AVA_STRING;
	a_date.la_attr.bv_val = "rgDate";
	a_date.la_attr.bv_len = strlen("rgDate");
	a_date.la_value.bv_val = date;
	a_date.la_value.bv_len = strlen(date);
	a_date.la_flags = LDAP_AVA_STRING;
	if (ldap_rdn2str(avas, &rdn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !rdn)
		return NULL;
	n = strlen(rdn) + 1 + strlen(l->ldap_base) + 1;
	dn = malloc(n);
	if (dn)
		snprintf(dn, n, "%s,%s", rdn, l->ldap_base);
	ldap_memfree(rdn);
	return dn;
}

/* "(attr=value)" with the value escaped by libldap.  malloc'd. */
static char *eq_filter(const char *attr, const char *value)
{
	struct berval in = { strlen(value), (char *)value }, esc = { 0, NULL };
	char *f;
	size_t n;

	if (ldap_bv2escaped_filter_value(&in, &esc) != 0)
		return NULL;
	n = strlen(attr) + esc.bv_len + 4;
	f = malloc(n);
	if (f)
		snprintf(f, n, "(%s=%s)", attr, esc.bv_val);
	ber_memfree(esc.bv_val);
	return f;
}

/* rgEntry fields are separated by '|'; '%' and '|' inside a field are %XX. */
static void put_field(GString *s, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '%' || *p == '|')
			g_string_append_printf(s, "%%%02X", (unsigned char)*p);
		else
			g_string_append_c(s, *p);
	}
}

static char *get_field(const char *start, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (start[i] == '%' && i + 2 < len && g_ascii_isxdigit(start[i + 1]) &&
		    g_ascii_isxdigit(start[i + 2])) {
			*o++ = (char)(g_ascii_xdigit_value(start[i + 1]) * 16 +
				      g_ascii_xdigit_value(start[i + 2]));
			i += 2;
		} else {
			*o++ = start[i];
		}
	}
	*o = 0;
	return out;
}

static char *entry_value(const struct rg_reservation *r)
{
	GString *s = g_string_new(NULL);

	put_field(s, r->person);
	g_string_append_c(s, '|');
	put_field(s, r->door);
	g_string_append_c(s, '|');
	put_field(s, r->rule);
	g_string_append_printf(s, "|%" PRId64 "|%d", r->when, r->exempt ? 1 : 0);
	return g_string_free(s, FALSE);
}

static int parse_entry(const struct berval *bv, struct rg_admission *a)
{
	const char *p = bv->bv_val, *end = bv->bv_val + bv->bv_len, *f[5];
	size_t flen[5];
	int n = 0;
	char num[32];

	memset(a, 0, sizeof(*a));
	f[0] = p;
	for (const char *q = p; q <= end && n < 5; q++) {
		if (q == end || *q == '|') {
			flen[n] = (size_t)(q - f[n]);
			n++;
			if (n < 5)
				f[n] = q + 1;
		}
	}
	if (n != 5 || flen[3] == 0 || flen[3] >= sizeof(num))
		return -1;
	memcpy(num, f[3], flen[3]);
	num[flen[3]] = 0;
	a->when = strtoll(num, NULL, 10);
	a->exempt = flen[4] == 1 && f[4][0] == '1';
	a->person = get_field(f[0], flen[0]);
	a->door = get_field(f[1], flen[1]);
	a->rule = get_field(f[2], flen[2]);
	if (!a->person || !a->door || !a->rule) {
		free(a->person);
		free(a->door);
		free(a->rule);
		memset(a, 0, sizeof(*a));
		return -1;
	}
	return 0;
}

/* ---- sessions ---- */

/* The result code of a finished operation (frees res); diagnostic text and
 * response controls when asked for. */
static int finish(const struct ldap_ledger *l, LDAP *ld, int msgid, char **diag,
		  LDAPControl ***ctrls)
{
	LDAPMessage *res;
	int code = LDAP_OTHER, rc = rg_dir_wait_result(ld, msgid, l->timeout, &res);

	if (diag)
		*diag = NULL;
	if (ctrls)
		*ctrls = NULL;
	if (rc != LDAP_SUCCESS)
		return rc;
	rc = ldap_parse_result(ld, res, &code, NULL, diag, NULL, ctrls, 1);
	return rc == LDAP_SUCCESS ? code : rc;
}

/* Under l->mu, in a child after fork(): the pooled sessions are the
 * parent's.  Close this process's copies of their sockets (never unbind:
 * that would end the parent's sessions) and forget them. */
static void forget_inherited_locked(struct ldap_ledger *l)
{
	for (size_t i = 0; i < l->nidle; i++)
		rg_dir_conn_forget_after_fork(l->idle[i]);
	l->nidle = 0;
	l->pid = getpid();
}

/* A session: an idle one from the pool, else a new one to the FIRST URI
 * only (directory.c's connection: TLS policy, bounded handshake, bind). */
static int checkout(struct ldap_ledger *l, struct conn *c, bool fresh, char *err, size_t errlen)
{
	char why[512];
	enum rg_dir_status st;

	memset(c, 0, sizeof(*c));
	if (!fresh) {
		pthread_mutex_lock(&l->mu);
		if (l->pid != getpid())
			forget_inherited_locked(l);
		if (l->nidle > 0) {
			c->dc = l->idle[--l->nidle];
			c->reused = true;
		}
		pthread_mutex_unlock(&l->mu);
	}
	if (!c->dc) {
		/* the first URI only: never write to a second server */
		st = rg_dir_conn_open(l->target, 1, &c->dc, why, sizeof(why));
		if (st != RG_DIR_OK) {
			rg_ledger_err(err, errlen, "ledger ldap: %s", why);
			return st == RG_DIR_UNAVAILABLE ? LDAP_SERVER_DOWN : LDAP_OTHER;
		}
	}
	c->ld = rg_dir_conn_ld(c->dc);
	return LDAP_SUCCESS;
}

/* Give a session back after an operation that ended with rc.  A healthy
 * session goes back to the pool (all are to the first URI).  A fresh
 * session that failed marks its server for backoff. */
static void checkin(struct ldap_ledger *l, struct conn *c, int rc, const char *why)
{
	bool healthy = rc == LDAP_SUCCESS || !rg_dir_server_failure(rc); /* an answer */

	if (!c->dc)
		return;
	if (!healthy && !c->reused)
		rg_dir_target_note(l->target, 0, RG_DIR_UNAVAILABLE, why);
	if (healthy) { /* every session is to the first URI (checkout) */
		pthread_mutex_lock(&l->mu);
		if (l->pid == getpid() && l->nidle < POOL_MAX) {
			l->idle[l->nidle++] = c->dc;
			c->dc = NULL;
		}
		pthread_mutex_unlock(&l->mu);
	}
	rg_dir_conn_close(c->dc);
	c->dc = NULL;
	c->ld = NULL;
}

/* ---- reading an entry ---- */

struct day_entry {
	bool exists;        /* the site-day entry exists */
	bool matched;       /* the entry matched the filter */
	unsigned count, exempt;
	struct berval **entries; /* rgEntry values when asked for */
};

static unsigned bv_uint(const struct berval *bv)
{
	char buf[32];
	size_t n = bv->bv_len < sizeof(buf) - 1 ? bv->bv_len : sizeof(buf) - 1;
	long long v;

	memcpy(buf, bv->bv_val, n);
	buf[n] = 0;
	v = strtoll(buf, NULL, 10);
	return v < 0 ? 0 : v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
}

static int read_entry(const struct ldap_ledger *l, LDAP *ld, const char *dn, const char *filter,
		      bool want_entries, struct day_entry *de, char *err, size_t errlen)
{
	char *attrs[] = { "rgCount", "rgExemptCount", want_entries ? "rgEntry" : NULL, NULL };
	struct timeval tv = { (time_t)l->timeout, 0 };
	LDAPMessage *res, *e;
	int msgid, rc, code = LDAP_OTHER;
	char *diag = NULL;

	memset(de, 0, sizeof(*de));
	rc = ldap_search_ext(ld, dn, LDAP_SCOPE_BASE, filter, attrs, 0, NULL, NULL, &tv, 1,
			     &msgid);
	if (rc == LDAP_SUCCESS)
		rc = rg_dir_wait_result(ld, msgid, l->timeout, &res);
	if (rc != LDAP_SUCCESS) {
		rg_ledger_err(err, errlen, "ledger ldap: read %s: %s", dn, ldap_err2string(rc));
		return rc;
	}
	for (e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {
		struct berval **v;

		de->matched = true;
		v = ldap_get_values_len(ld, e, "rgCount");
		if (v && v[0])
			de->count = bv_uint(v[0]);
		ldap_value_free_len(v);
		v = ldap_get_values_len(ld, e, "rgExemptCount");
		if (v && v[0])
			de->exempt = bv_uint(v[0]);
		ldap_value_free_len(v);
		if (want_entries && !de->entries)
			de->entries = ldap_get_values_len(ld, e, "rgEntry");
	}
	rc = ldap_parse_result(ld, res, &code, NULL, &diag, NULL, NULL, 1);
	if (rc == LDAP_SUCCESS)
		rc = code;
	if (rc == LDAP_SUCCESS) {
		de->exists = true;
	} else if (rc == LDAP_NO_SUCH_OBJECT) {
		rc = LDAP_SUCCESS;
	} else {
		rg_ledger_err(err, errlen, "ledger ldap: read %s: %s%s%s", dn, ldap_err2string(rc),
			      diag && *diag ? ": " : "", diag ? diag : "");
		ldap_value_free_len(de->entries);
		de->entries = NULL;
	}
	ldap_memfree(diag);
	return rc;
}

/* Is `person` an attendee of the entry, and its count. */
static int read_attendee(const struct ldap_ledger *l, LDAP *ld, const char *dn,
			 const char *person, struct day_entry *de, char *err, size_t errlen)
{
	char *f = eq_filter("rgAttendee", person);
	int rc;

	if (!f) {
		rg_ledger_err(err, errlen, "ledger ldap: out of memory");
		return LDAP_NO_MEMORY;
	}
	rc = read_entry(l, ld, dn, f, false, de, err, errlen);
	free(f);
	return rc;
}

/* ---- writing ---- */

static int create_day(const struct ldap_ledger *l, LDAP *ld, const char *dn, const char *site,
		      int32_t day, char *err, size_t errlen)
{
	char date[32], dayno[24], *diag = NULL;
	char *oc[] = { "rgOccupancy", NULL }, *sv[] = { (char *)site, NULL };
	char *dv[] = { date, NULL }, *nv[] = { dayno, NULL }, *zero[] = { "0", NULL };
	LDAPMod m_oc = { LDAP_MOD_ADD, "objectClass", { oc } };
	LDAPMod m_site = { LDAP_MOD_ADD, "rgSite", { sv } };
	LDAPMod m_date = { LDAP_MOD_ADD, "rgDate", { dv } };
	LDAPMod m_day = { LDAP_MOD_ADD, "rgDay", { nv } };
	LDAPMod m_cnt = { LDAP_MOD_ADD, "rgCount", { zero } };
	LDAPMod m_ex = { LDAP_MOD_ADD, "rgExemptCount", { zero } };
	LDAPMod *mods[] = { &m_oc, &m_site, &m_date, &m_day, &m_cnt, &m_ex, NULL };
	int msgid, rc;

	day_string(day, date, sizeof(date));
	snprintf(dayno, sizeof(dayno), "%" PRId32, day);
	rc = ldap_add_ext(ld, dn, mods, NULL, NULL, &msgid);
	if (rc == LDAP_SUCCESS)
		rc = finish(l, ld, msgid, &diag, NULL);
	if (rc == LDAP_ALREADY_EXISTS)
		rc = LDAP_SUCCESS; /* another controller was first */
	if (rc != LDAP_SUCCESS)
		rg_ledger_err(err, errlen, "ledger ldap: create %s: %s%s%s", dn,
			      ldap_err2string(rc), diag && *diag ? ": " : "", diag ? diag : "");
	ldap_memfree(diag);
	return rc;
}

/* rgCount from a post-read response control (RFC 4527); -1 if absent. */
static long long post_read_count(LDAPControl **ctrls)
{
	LDAPControl *c = ldap_control_find(LDAP_CONTROL_POST_READ, ctrls, NULL);
	BerElement *ber;
	struct berval dn, type;
	BerVarray vals = NULL;
	ber_len_t len;
	long long count = -1;

	if (!c || !c->ldctl_value.bv_val)
		return -1;
	ber = ber_init(&c->ldctl_value);
	if (!ber)
		return -1;
	if (ber_scanf(ber, "{m{" /*}}*/, &dn) == LBER_ERROR)
		goto out;
	while (ber_peek_tag(ber, &len) == LBER_SEQUENCE) {
		if (ber_scanf(ber, "{m[W]}", &type, &vals) == LBER_ERROR)
			break;
		if (type.bv_len == 7 && strncasecmp(type.bv_val, "rgCount", 7) == 0 && vals &&
		    vals[0].bv_val)
			count = bv_uint(&vals[0]);
		ber_bvarray_free(vals);
		vals = NULL;
	}
out:
	ber_free(ber, 1);
	return count;
}

static LDAPControl *post_read_control(void)
{
	char *attrs[] = { "rgCount", NULL };
	BerElement *ber = ber_alloc_t(LBER_USE_DER);
	struct berval bv;
	LDAPControl *c = NULL;

	if (!ber)
		return NULL;
	if (ber_printf(ber, "{v}", attrs) != -1 && ber_flatten2(ber, &bv, 0) != -1)
		ldap_control_create(LDAP_CONTROL_POST_READ, 0, &bv, 1, &c);
	ber_free(ber, 1);
	return c;
}

/* The reservation modify.  LDAP result code; *count after success (-1 unknown). */
static int admit_modify(const struct ldap_ledger *l, LDAP *ld, const char *dn,
			const struct rg_reservation *r, unsigned limit, long long *count,
			char *err, size_t errlen)
{
	char *ev = entry_value(r), assertion[64], *diag = NULL;
	struct berval pv = { strlen(r->person), (char *)r->person }, evb, one = { 1, "1" };
	struct berval *pvals[] = { &pv, NULL }, *evals[] = { &evb, NULL }, *ovals[] = { &one, NULL };
	LDAPMod m_att = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, "rgAttendee", { NULL } };
	LDAPMod m_ent = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, "rgEntry", { NULL } };
	LDAPMod m_cnt = { LDAP_MOD_INCREMENT | LDAP_MOD_BVALUES, "rgCount", { NULL } };
	LDAPMod m_ex = { LDAP_MOD_INCREMENT | LDAP_MOD_BVALUES, "rgExemptCount", { NULL } };
	LDAPMod *mods[] = { &m_att, &m_ent, &m_cnt, r->exempt ? &m_ex : NULL, NULL };
	LDAPControl *assert_ctrl = NULL, *pr = NULL, *ctrls[3] = { NULL, NULL, NULL }, **resp;
	int msgid, rc;

	*count = -1;
	if (!ev) {
		rg_ledger_err(err, errlen, "ledger ldap: out of memory");
		return LDAP_NO_MEMORY;
	}
	evb.bv_val = ev;
	evb.bv_len = strlen(ev);
	m_att.mod_bvalues = pvals;
	m_ent.mod_bvalues = evals;
	m_cnt.mod_bvalues = ovals;
	m_ex.mod_bvalues = ovals;
	/* only while the count leaves a place for this person */
	snprintf(assertion, sizeof(assertion), "(rgCount<=%u)", limit - 1);
	rc = ldap_create_assertion_control(ld, assertion, 1, &assert_ctrl);
	pr = post_read_control();
	if (rc != LDAP_SUCCESS || !pr) {
		rg_ledger_err(err, errlen, "ledger ldap: cannot build controls: %s",
			      ldap_err2string(rc != LDAP_SUCCESS ? rc : LDAP_NO_MEMORY));
		rc = rc != LDAP_SUCCESS ? rc : LDAP_NO_MEMORY;
		goto out;
	}
	ctrls[0] = assert_ctrl;
	ctrls[1] = pr;
	rc = ldap_modify_ext(ld, dn, mods, ctrls, NULL, &msgid);
	if (rc == LDAP_SUCCESS)
		rc = finish(l, ld, msgid, &diag, &resp);
	else
		resp = NULL;
	if (rc == LDAP_SUCCESS)
		*count = post_read_count(resp);
	ldap_controls_free(resp);
	if (rc != LDAP_SUCCESS && rc != LDAP_TYPE_OR_VALUE_EXISTS && rc != LDAP_ASSERTION_FAILED &&
	    rc != LDAP_NO_SUCH_OBJECT)
		rg_ledger_err(err, errlen, "ledger ldap: modify %s: %s%s%s", dn, ldap_err2string(rc),
			      diag && *diag ? ": " : "", diag ? diag : "");
out:
	ldap_memfree(diag);
	ldap_control_free(assert_ctrl);
	ldap_control_free(pr);
	g_free(ev);
	return rc;
}

/* The person is an attendee already.  On a retry (the first attempt's
 * session failed, perhaps after the server applied our modify and before its
 * response arrived) an rgEntry for this person with this door and this
 * `when` is the admission this very request made: ADMITTED, not a re-entry.
 * Otherwise REENTRY. */
static int attendee_found(const struct ldap_ledger *l, LDAP *ld, const char *dn,
			  const struct rg_reservation *r, bool retry, struct day_entry *de,
			  enum rg_ledger_result *result, unsigned *occupancy, char *err,
			  size_t errlen)
{
	*occupancy = de->count;
	*result = RG_LEDGER_REENTRY;
	if (retry) {
		struct day_entry full;
		int rc = read_entry(l, ld, dn, "(objectClass=*)", true, &full, err, errlen);

		if (rc != LDAP_SUCCESS) {
			*result = RG_LEDGER_FAILED;
			return rc;
		}
		*occupancy = full.count;
		for (size_t i = 0; full.entries && full.entries[i]; i++) {
			struct rg_admission a;

			if (parse_entry(full.entries[i], &a) != 0)
				continue;
			bool ours = strcmp(a.person, r->person) == 0 &&
				    strcmp(a.door, r->door ? r->door : "") == 0 && a.when == r->when;
			free(a.person);
			free(a.door);
			free(a.rule);
			if (ours) {
				*result = RG_LEDGER_ADMITTED;
				break;
			}
		}
		ldap_value_free_len(full.entries);
	}
	return LDAP_SUCCESS;
}

/* One attempt at a reservation on session c (retry: a later attempt for the
 * same request after a failed session).  Returns the LDAP code of a failure
 * (result FAILED) so the caller can decide to retry. */
static int reserve_on(struct ldap_ledger *l, LDAP *ld, const char *dn,
		      const struct rg_reservation *r, bool retry, enum rg_ledger_result *result,
		      unsigned *occupancy, char *err, size_t errlen)
{
	unsigned limit = rg_rules_place_limit(r->capacity, r->reserved, r->exempt);
	struct day_entry de;
	long long count;
	int rc;

	*result = RG_LEDGER_FAILED;
	/* read first: a re-entry writes nothing */
	rc = read_attendee(l, ld, dn, r->person, &de, err, errlen);
	if (rc != LDAP_SUCCESS)
		return rc;
	if (de.matched)
		return attendee_found(l, ld, dn, r, retry && !r->dry_run, &de, result, occupancy, err,
				      errlen);
	if (r->dry_run || limit == 0) {
		if (de.exists) {
			rc = read_entry(l, ld, dn, "(objectClass=*)", false, &de, err, errlen);
			if (rc != LDAP_SUCCESS)
				return rc;
		}
		*occupancy = de.count;
		/* (limit 0: no place at all for this person, dry run or not) */
		*result = de.count < limit ? RG_LEDGER_WOULD_ADMIT : RG_LEDGER_FULL;
		return LDAP_SUCCESS;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!de.exists || attempt > 0) {
			rc = create_day(l, ld, dn, r->site, r->day, err, errlen);
			if (rc != LDAP_SUCCESS)
				return rc;
		}
		rc = admit_modify(l, ld, dn, r, limit, &count, err, errlen);
		if (rc != LDAP_NO_SUCH_OBJECT)
			break; /* (no such object: pruned meanwhile; create again) */
	}
	switch (rc) {
	case LDAP_SUCCESS:
		if (count < 0) {
			rc = read_entry(l, ld, dn, "(objectClass=*)", false, &de, err, errlen);
			if (rc != LDAP_SUCCESS) {
				/* the admission is stored; only the count is unknown */
				count = 0;
			} else {
				count = de.count;
			}
		}
		*occupancy = (unsigned)count;
		*result = RG_LEDGER_ADMITTED;
		return LDAP_SUCCESS;
	case LDAP_TYPE_OR_VALUE_EXISTS:
	case LDAP_ASSERTION_FAILED:
		/* already in (another door, same moment), or full: a full day
		 * still lets an attendee back in */
		rc = read_attendee(l, ld, dn, r->person, &de, err, errlen);
		if (rc != LDAP_SUCCESS)
			return rc;
		if (de.matched)
			return attendee_found(l, ld, dn, r, retry, &de, result, occupancy, err, errlen);
		rc = read_entry(l, ld, dn, "(objectClass=*)", false, &de, err, errlen);
		if (rc != LDAP_SUCCESS)
			return rc;
		*occupancy = de.count;
		*result = RG_LEDGER_FULL;
		return LDAP_SUCCESS;
	case LDAP_NO_SUCH_OBJECT:
		rg_ledger_err(err, errlen, "ledger ldap: %s disappeared while admitting", dn);
		return rc;
	default:
		return rc;
	}
}

static enum rg_ledger_result ldap_reserve(struct rg_ledger *base, const struct rg_reservation *r,
					  unsigned *occupancy, char *err, size_t errlen)
{
	struct ldap_ledger *l = (struct ldap_ledger *)base;
	enum rg_ledger_result result = RG_LEDGER_FAILED;
	char *dn = site_day_dn(l, r->site, r->day);
	struct rg_dir_sigpipe g;
	struct conn c;
	int rc;

	if (!dn) {
		rg_ledger_err(err, errlen, "ledger ldap: cannot build the site-day DN");
		return RG_LEDGER_FAILED;
	}
	rg_dir_sigpipe_block(&g);
	rc = checkout(l, &c, false, err, errlen);
	if (rc == LDAP_SUCCESS)
		rc = reserve_on(l, c.ld, dn, r, false, &result, occupancy, err, errlen);
	if (rc != LDAP_SUCCESS && c.reused && (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR)) {
		/* a pooled session went stale (server restarted): once more on a
		 * fresh one.  Safe: the modify is all or nothing, and if the first
		 * one was applied (its response lost), the retry finds this
		 * request's own rgEntry and reports ADMITTED, not a re-entry. */
		checkin(l, &c, rc, err);
		rc = checkout(l, &c, true, err, errlen);
		if (rc == LDAP_SUCCESS)
			rc = reserve_on(l, c.ld, dn, r, true, &result, occupancy, err, errlen);
	}
	checkin(l, &c, rc, err);
	rg_dir_sigpipe_restore(&g);
	free(dn);
	return rc == LDAP_SUCCESS ? result : RG_LEDGER_FAILED;
}

/* ---- day summary ---- */

static int summary_from(const struct day_entry *de, struct rg_day_summary *out)
{
	size_t n = 0;

	out->count = de->count;
	out->exempt_count = de->exempt;
	if (!de->entries)
		return 0;
	while (de->entries[n])
		n++;
	out->admissions = calloc(n ? n : 1, sizeof(*out->admissions));
	if (!out->admissions)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (parse_entry(de->entries[i], &out->admissions[out->nadmissions]) == 0)
			out->nadmissions++;
	}
	rg_ledger_sort_admissions(out);
	return 0;
}

static int ldap_day(struct rg_ledger *base, const char *site, int32_t day, bool with_admissions,
		    struct rg_day_summary *out, char *err, size_t errlen)
{
	struct ldap_ledger *l = (struct ldap_ledger *)base;
	char *dn = site_day_dn(l, site, day);
	struct day_entry de = { 0 };
	struct rg_dir_sigpipe g;
	struct conn c;
	int rc, ret = -1;

	if (!dn) {
		rg_ledger_err(err, errlen, "ledger ldap: cannot build the site-day DN");
		return -1;
	}
	rg_dir_sigpipe_block(&g);
	rc = checkout(l, &c, false, err, errlen);
	if (rc == LDAP_SUCCESS)
		rc = read_entry(l, c.ld, dn, "(objectClass=*)", with_admissions, &de, err, errlen);
	if (rc != LDAP_SUCCESS && c.reused && rg_dir_server_failure(rc)) {
		checkin(l, &c, rc, err);
		rc = checkout(l, &c, true, err, errlen);
		if (rc == LDAP_SUCCESS)
			rc = read_entry(l, c.ld, dn, "(objectClass=*)", with_admissions, &de, err,
					errlen);
	}
	checkin(l, &c, rc, err);
	rg_dir_sigpipe_restore(&g);
	if (rc == LDAP_SUCCESS) {
		if (summary_from(&de, out) == 0) {
			ret = 0;
		} else {
			rg_day_summary_clear(out);
			rg_ledger_err(err, errlen, "ledger ldap: out of memory");
		}
	}
	ldap_value_free_len(de.entries);
	free(dn);
	return ret;
}

/* ---- retention ---- */

static long prune_on(struct ldap_ledger *l, LDAP *ld, int64_t cutoff, int *rcp, char *err,
		     size_t errlen)
{
	char filter[96], *attrs[] = { LDAP_NO_ATTRS, NULL }, *diag = NULL;
	struct timeval tv = { (time_t)l->timeout, 0 };
	LDAPMessage *res, *e;
	char **dns = NULL;
	size_t ndns = 0;
	int msgid, rc, code = LDAP_OTHER;
	long removed = 0;

	snprintf(filter, sizeof(filter), "(&(objectClass=rgOccupancy)(rgDay<=%" PRId64 "))",
		 cutoff - 1);
	rc = ldap_search_ext(ld, l->ldap_base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL, NULL,
			     &tv, 0, &msgid);
	if (rc == LDAP_SUCCESS)
		rc = rg_dir_wait_result(ld, msgid, l->timeout, &res);
	if (rc != LDAP_SUCCESS)
		goto fail;
	for (e = ldap_first_entry(ld, res); e; e = ldap_next_entry(ld, e)) {
		char *dn = ldap_get_dn(ld, e), **nd;

		if (!dn)
			continue;
		nd = realloc(dns, (ndns + 1) * sizeof(*nd));
		if (!nd) {
			ldap_memfree(dn);
			break;
		}
		dns = nd;
		dns[ndns++] = dn;
	}
	rc = ldap_parse_result(ld, res, &code, NULL, &diag, NULL, NULL, 1);
	if (rc == LDAP_SUCCESS)
		rc = code;
	ldap_memfree(diag);
	/* a size limit only means that the next prune removes the rest */
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
		goto fail;
	rc = LDAP_SUCCESS;
	for (size_t i = 0; i < ndns && rc == LDAP_SUCCESS; i++) {
		rc = ldap_delete_ext(ld, dns[i], NULL, NULL, &msgid);
		if (rc == LDAP_SUCCESS)
			rc = finish(l, ld, msgid, NULL, NULL);
		if (rc == LDAP_SUCCESS)
			removed++;
		else if (rc == LDAP_NO_SUCH_OBJECT)
			rc = LDAP_SUCCESS; /* pruned by another controller */
	}
	if (rc != LDAP_SUCCESS)
		goto fail;
	for (size_t i = 0; i < ndns; i++)
		ldap_memfree(dns[i]);
	free(dns);
	*rcp = LDAP_SUCCESS;
	return removed;
fail:
	for (size_t i = 0; i < ndns; i++)
		ldap_memfree(dns[i]);
	free(dns);
	rg_ledger_err(err, errlen, "ledger ldap: prune under %s: %s", l->ldap_base,
		      ldap_err2string(rc));
	*rcp = rc;
	return -1;
}

static long ldap_prune(struct rg_ledger *base, int32_t today, unsigned retain_days, char *err,
		       size_t errlen)
{
	struct ldap_ledger *l = (struct ldap_ledger *)base;
	struct rg_dir_sigpipe g;
	struct conn c;
	int rc;
	long n = -1;

	rg_dir_sigpipe_block(&g);
	rc = checkout(l, &c, false, err, errlen);
	if (rc == LDAP_SUCCESS)
		n = prune_on(l, c.ld, (int64_t)today - retain_days, &rc, err, errlen);
	checkin(l, &c, rc, err);
	rg_dir_sigpipe_restore(&g);
	return rc == LDAP_SUCCESS ? n : -1;
}

/* ---- open / close ---- */

static void ldap_close(struct rg_ledger *base)
{
	struct ldap_ledger *l = (struct ldap_ledger *)base;

	if (l->pid == getpid()) {
		for (size_t i = 0; i < l->nidle; i++)
			rg_dir_conn_close(l->idle[i]);
	} else {
		forget_inherited_locked(l); /* (no other thread may use l now) */
	}
	pthread_mutex_destroy(&l->mu);
	rg_dir_target_free(l->target);
	free(l->ldap_base);
	free(l);
}

int rg_ledger_ldap_open(const struct rg_config *cfg, struct rg_ledger **out, char *err,
			size_t errlen)
{
	struct rg_directory_cfg conn;
	struct ldap_ledger *l;

	*out = NULL;
	if (!cfg->ledger.ldap_base || !*cfg->ledger.ldap_base) {
		rg_ledger_err(err, errlen, "ledger: backend ldap needs ledger.ldap-base");
		return -1;
	}
	rg_config_ledger_connection(cfg, &conn);
	if (!conn.uri || !*conn.uri) {
		rg_ledger_err(err, errlen, "ledger: backend ldap needs ledger.uri or directory.uri");
		return -1;
	}
	if (conn.bind_dn && !conn.bind_password_file) {
		rg_ledger_err(err, errlen, "ledger: bind-dn needs bind-password-file");
		return -1;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		rg_ledger_err(err, errlen, "ledger: out of memory");
		return -1;
	}
	pthread_mutex_init(&l->mu, NULL);
	l->base.ops = &ldap_ops;
	l->pid = getpid();
	if (conn.timeout == 0)
		conn.timeout = DEFAULT_TIMEOUT;
	l->timeout = conn.timeout;
	l->target = rg_dir_target_new(&conn);
	l->ldap_base = strdup(cfg->ledger.ldap_base);
	if (!l->target || !l->ldap_base) {
		if (!l->ldap_base)
			rg_ledger_err(err, errlen, "ledger: out of memory");
		else
			rg_ledger_err(err, errlen, "ledger: uri lists no URI (or out of memory)");
		ldap_close(&l->base);
		return -1;
	}
	*out = &l->base;
	return 0;
}

static const struct rg_ledger_ops ldap_ops = {
	.name = "ldap",
	.reserve = ldap_reserve,
	.day = ldap_day,
	.prune = ldap_prune,
	.close = ldap_close,
};
