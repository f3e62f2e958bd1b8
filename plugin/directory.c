/*
 * directory.c - LDAP sessions, failover, membership resolution, escaping.
 *
 * See directory.h for the contract (connections, security, round trips).
 * Shape: one struct rg_dir = one LDAP handle at a time; every operation is
 * asynchronous with a bounded ldap_result() wait; run_op() retries an
 * operation on the next URI when a server fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <ldap.h>

#include "directory.h"

#define RG_DIR_BACKOFF_MIN_MS 1000u
#define RG_DIR_BACKOFF_MAX_MS 60000u
#define RG_DIR_PREFER_RETRY_MS 30000u
#define RG_DIR_OR_CHUNK 200
#define RG_DIR_PASSWORD_MAX 4096
#define RG_DIR_DEFAULT_FILTER "(&(objectClass=inetOrgPerson)(uid=%u))"

struct rg_dir_uri {
	char *uri;
	bool ldapi;
	bool ldaps;
	bool loopback;
	unsigned fails;           /* consecutive failures */
	int64_t retry_at;         /* monotonic ms; skipped before this */
	enum rg_dir_status last;  /* status of the last failure */
};

struct rg_dir_target {
	struct rg_directory_cfg cfg; /* deep copy; only the connection fields are used */
	struct rg_dir_uri *uris;
	size_t nuris;
	pthread_mutex_t mu;       /* guards uris[].fails/retry_at/last, backoff_*, last_err */
	unsigned backoff_min, backoff_max;
	char last_err[512];
};

struct rg_dir_conn {
	LDAP *ld;
	const struct rg_dir_target *t;
	size_t i;                 /* index into t->uris */
	unsigned timeout;         /* seconds */
	bool bounded_io;          /* connect/handshake in progress: bound every read/write */
	int64_t io_deadline;      /* monotonic ms: the whole handshake ends by then */
	ldap_conncb conncb;       /* adds the bounded I/O layer; lives as long as ld */
};

struct rg_dir {
	struct rg_directory_cfg cfg; /* deep copy */
	struct rg_dir_target *target;
	bool own_target;          /* created by rg_dir_new (else shared, not ours) */
	struct rg_dir_conn *conn;
	LDAP *ld;                 /* rg_dir_conn_ld(conn), NULL when not connected */
	size_t cur;               /* rg_dir_conn_index(conn) while connected */
	bool reused;              /* conn already served an operation */
	int64_t prefer_at;        /* monotonic ms of the next preferred-URI retry */
	unsigned prefer_retry;
	bool up;
	unsigned long nsearches;
};

/* A growable array of malloc'd strings, NULL-terminated once finished. */
struct strv {
	char **v;
	size_t n, cap;
};

enum conn_rc { CONN_OK, CONN_FAIL, CONN_REFUSED, CONN_POLICY };

/* ---- small helpers ---------------------------------------------------- */

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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *xstrdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

static void strv_free(struct strv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

static bool strv_has(const struct strv *a, const char *s)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcasecmp(a->v[i], s) == 0)
			return true;
	return false;
}

/* Append a copy of s; keeps one spare slot for the NULL terminator. */
static bool strv_add(struct strv *a, const char *s)
{
	char *c;

	if (a->n + 2 > a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 8;
		char **nv = realloc(a->v, ncap * sizeof(*nv));
		if (nv == NULL)
			return false;
		a->v = nv;
		a->cap = ncap;
	}
	if ((c = strdup(s)) == NULL)
		return false;
	a->v[a->n++] = c;
	a->v[a->n] = NULL;
	return true;
}

static bool strv_add_unique(struct strv *a, const char *s)
{
	return strv_has(a, s) || strv_add(a, s);
}

const char *rg_dir_status_name(enum rg_dir_status st)
{
	switch (st) {
	case RG_DIR_OK: return "ok";
	case RG_DIR_NOT_FOUND: return "not-found";
	case RG_DIR_UNAVAILABLE: return "unavailable";
	case RG_DIR_BAD_INPUT: return "bad-input";
	case RG_DIR_ERROR: return "error";
	case RG_DIR_AMBIGUOUS: return "ambiguous";
	}
	return "unknown";
}

/* ---- persons ---------------------------------------------------------- */

void rg_person_free(struct rg_person *p)
{
	if (p == NULL)
		return;
	free(p->principal);
	free(p->dn);
	free(p->uid);
	for (size_t i = 0; i < p->ngroups; i++)
		free(p->groups[i]);
	free(p->groups);
	free(p);
}

struct rg_person *rg_person_dup(const struct rg_person *p)
{
	struct rg_person *c;

	if (p == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fetched = p->fetched;
	if ((p->principal && !(c->principal = strdup(p->principal))) ||
	    (p->dn && !(c->dn = strdup(p->dn))) || (p->uid && !(c->uid = strdup(p->uid))))
		goto fail;
	if (p->ngroups > 0) {
		if ((c->groups = calloc(p->ngroups + 1, sizeof(char *))) == NULL)
			goto fail;
		for (; c->ngroups < p->ngroups; c->ngroups++)
			if ((c->groups[c->ngroups] = strdup(p->groups[c->ngroups])) == NULL)
				goto fail;
	}
	return c;
fail:
	rg_person_free(c);
	return NULL;
}

bool rg_person_in_group(const struct rg_person *p, const char *group_dn)
{
	if (p == NULL || group_dn == NULL)
		return false;
	for (size_t i = 0; i < p->ngroups; i++)
		if (strcasecmp(p->groups[i], group_dn) == 0)
			return true;
	return false;
}

/* ---- pure: input checks and escaping ---------------------------------- */

bool rg_dir_principal_ok(const char *principal)
{
	size_t n;

	if (principal == NULL)
		return false;
	n = strlen(principal);
	if (n == 0 || n > RG_DIR_PRINCIPAL_MAX)
		return false;
	if (!g_utf8_validate(principal, (gssize)n, NULL))
		return false;
	for (const char *s = principal; *s; s = g_utf8_next_char(s))
		if (g_unichar_iscntrl(g_utf8_get_char(s)))
			return false;
	return true;
}

/* The filter-escaped form of a value (malloc'd), or NULL. */
static char *escape_value(const char *value)
{
	struct berval in, out = { 0, NULL };
	char *r;

	in.bv_val = (char *)value;
	in.bv_len = strlen(value);
	if (in.bv_len == 0)
		return strdup("");
	if (ldap_bv2escaped_filter_value(&in, &out) != 0 || out.bv_val == NULL)
		return NULL;
	r = strndup(out.bv_val, out.bv_len);
	ber_memfree(out.bv_val);
	return r;
}

char *rg_dir_build_filter(const char *tmpl, const char *principal)
{
	char *esc, *r, *o;
	size_t k = 0, elen, len;

	if (tmpl == NULL || principal == NULL || (esc = escape_value(principal)) == NULL)
		return NULL;
	for (const char *s = tmpl; (s = strstr(s, "%u")) != NULL; s += 2)
		k++;
	elen = strlen(esc);
	len = strlen(tmpl) - 2 * k + k * elen;
	if ((r = malloc(len + 1)) == NULL) {
		free(esc);
		return NULL;
	}
	o = r;
	for (const char *s = tmpl; *s;) {
		if (s[0] == '%' && s[1] == 'u') {
			memcpy(o, esc, elen);
			o += elen;
			s += 2;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	free(esc);
	return r;
}

/* An attribute description we are willing to put into a filter. */
static bool attr_ok(const char *a)
{
	if (a == NULL || *a == '\0' || strlen(a) > 64)
		return false;
	for (; *a; a++)
		if (!g_ascii_isalnum(*a) && *a != '-' && *a != ';' && *a != '.')
			return false;
	return true;
}

/* ---- SIGPIPE: never let a dead server kill the host process ------------ */

void rg_dir_sigpipe_block(struct rg_dir_sigpipe *g)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigemptyset(&pending);
	sigpending(&pending);
	g->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

void rg_dir_sigpipe_restore(struct rg_dir_sigpipe *g)
{
	sigset_t set;
	struct timespec zero = { 0, 0 };

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending)
		while (sigtimedwait(&set, NULL, &zero) == SIGPIPE)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- configuration copies --------------------------------------------- */

static bool copy_cfg(struct rg_directory_cfg *dst, const struct rg_directory_cfg *src)
{
	*dst = *src;
	dst->uri = xstrdup(src->uri);
	dst->base = xstrdup(src->base);
	dst->bind_dn = xstrdup(src->bind_dn);
	dst->bind_password_file = xstrdup(src->bind_password_file);
	dst->user_filter = xstrdup(src->user_filter);
	dst->badge_attribute = xstrdup(src->badge_attribute);
	dst->tls_ca_file = xstrdup(src->tls_ca_file);
	return (!src->uri || dst->uri) && (!src->base || dst->base) && (!src->bind_dn || dst->bind_dn) &&
	       (!src->bind_password_file || dst->bind_password_file) &&
	       (!src->user_filter || dst->user_filter) && (!src->badge_attribute || dst->badge_attribute) &&
	       (!src->tls_ca_file || dst->tls_ca_file);
}

static void free_cfg(struct rg_directory_cfg *c)
{
	free(c->uri);
	free(c->base);
	free(c->bind_dn);
	free(c->bind_password_file);
	free(c->user_filter);
	free(c->badge_attribute);
	free(c->tls_ca_file);
}

/* ---- targets: URIs, settings, backoff ----------------------------------- */

/* Exactly "localhost", an IPv4 address in 127.0.0.0/8 or the IPv6 address
 * ::1 (also bracketed).  A name that merely starts like an address
 * (127.evil.example) is not loopback. */
bool rg_dir_host_is_loopback(const char *h)
{
	struct in_addr a4;
	struct in6_addr a6;
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n;

	if (h == NULL || *h == '\0')
		return false;
	if (strcmp(h, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, h, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	n = strlen(h);
	if (h[0] == '[' && n >= 2 && h[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, h + 1, n - 2);
		buf[n - 2] = '\0';
		h = buf;
	}
	return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static bool parse_uris(struct rg_dir_target *t, const char *list)
{
	char *copy, *save = NULL;
	size_t cap = 0;

	if (list == NULL || (copy = strdup(list)) == NULL)
		return false;
	for (char *tok = strtok_r(copy, " \t\r\n,", &save); tok; tok = strtok_r(NULL, " \t\r\n,", &save)) {
		struct rg_dir_uri *u;
		LDAPURLDesc *lud = NULL;

		if (t->nuris == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct rg_dir_uri *nu = realloc(t->uris, ncap * sizeof(*nu));
			if (nu == NULL)
				goto fail;
			t->uris = nu;
			cap = ncap;
		}
		u = &t->uris[t->nuris];
		memset(u, 0, sizeof(*u));
		if ((u->uri = strdup(tok)) == NULL)
			goto fail;
		t->nuris++;
		if (ldap_url_parse(tok, &lud) == LDAP_URL_SUCCESS) {
			u->ldapi = strcasecmp(lud->lud_scheme, "ldapi") == 0;
			u->ldaps = strcasecmp(lud->lud_scheme, "ldaps") == 0;
			u->loopback = rg_dir_host_is_loopback(lud->lud_host);
			ldap_free_urldesc(lud);
		}
	}
	free(copy);
	return t->nuris > 0;
fail:
	free(copy);
	return false;
}

struct rg_dir_target *rg_dir_target_new(const struct rg_directory_cfg *cfg)
{
	struct rg_dir_target *t;

	if (cfg == NULL || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	pthread_mutex_init(&t->mu, NULL);
	t->backoff_min = RG_DIR_BACKOFF_MIN_MS;
	t->backoff_max = RG_DIR_BACKOFF_MAX_MS;
	if (!copy_cfg(&t->cfg, cfg) || !parse_uris(t, cfg->uri)) {
		rg_dir_target_free(t);
		return NULL;
	}
	return t;
}

void rg_dir_target_free(struct rg_dir_target *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nuris; i++)
		free(t->uris[i].uri);
	free(t->uris);
	free_cfg(&t->cfg);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

void rg_dir_target_set_backoff(struct rg_dir_target *t, unsigned min_ms, unsigned max_ms)
{
	pthread_mutex_lock(&t->mu);
	if (min_ms)
		t->backoff_min = min_ms;
	if (max_ms)
		t->backoff_max = max_ms;
	pthread_mutex_unlock(&t->mu);
}

/* Under t->mu. */
static void note_failure_locked(struct rg_dir_target *t, size_t i, enum rg_dir_status st)
{
	struct rg_dir_uri *u = &t->uris[i];
	uint64_t delay = t->backoff_min;

	for (unsigned k = 0; k < u->fails && delay < t->backoff_max; k++)
		delay *= 2;
	if (delay > t->backoff_max)
		delay = t->backoff_max;
	u->fails++;
	u->retry_at = now_ms() + (int64_t)delay;
	u->last = st;
}

void rg_dir_target_note(struct rg_dir_target *t, size_t i, enum rg_dir_status st, const char *why)
{
	if (t == NULL || i >= t->nuris)
		return;
	pthread_mutex_lock(&t->mu);
	if (st == RG_DIR_OK) {
		t->uris[i].fails = 0;
		t->uris[i].retry_at = 0;
	} else if (st == RG_DIR_UNAVAILABLE) {
		note_failure_locked(t, i, st);
		snprintf(t->last_err, sizeof(t->last_err), "%s: %s", t->uris[i].uri, why ? why : "");
	}
	pthread_mutex_unlock(&t->mu);
}

static unsigned target_timeout(const struct rg_dir_target *t)
{
	return t->cfg.timeout > 0 ? t->cfg.timeout : 1;
}

/* ---- libldap plumbing ------------------------------------------------- */

/* "Can't contact LDAP server (diagnostic)" for the handle's last error. */
static void ld_error(LDAP *ld, int rc, char *buf, size_t len)
{
	char *diag = NULL;

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	if (diag != NULL && *diag != '\0')
		snprintf(buf, len, "%s (%s)", ldap_err2string(rc), diag);
	else
		snprintf(buf, len, "%s", ldap_err2string(rc));
	if (diag != NULL)
		ldap_memfree(diag);
}

/* Codes after which another server may well do better. */
bool rg_dir_server_failure(int rc)
{
	switch (rc) {
	case LDAP_SERVER_DOWN:
	case LDAP_TIMEOUT:
	case LDAP_CONNECT_ERROR:
	case LDAP_BUSY:
	case LDAP_UNAVAILABLE:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_ADMINLIMIT_EXCEEDED:
	case LDAP_LOOP_DETECT:
		return true;
	default:
		return false;
	}
}

int rg_dir_wait_result(LDAP *ld, int msgid, unsigned timeout_s, LDAPMessage **res)
{
	struct timeval tv = { (time_t)(timeout_s > 0 ? timeout_s : 1), 0 };
	int rc, code = LDAP_SERVER_DOWN;

	*res = NULL;
	rc = ldap_result(ld, msgid, LDAP_MSG_ALL, &tv, res);
	if (rc > 0)
		return LDAP_SUCCESS;
	if (*res != NULL) {
		ldap_msgfree(*res);
		*res = NULL;
	}
	if (rc == 0) {
		ldap_abandon_ext(ld, msgid, NULL, NULL);
		return LDAP_TIMEOUT;
	}
	ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
	return code != LDAP_SUCCESS ? code : LDAP_SERVER_DOWN;
}

static int parse_result(LDAP *ld, LDAPMessage *res, char *buf, size_t len, int freeit);

/* Result code (and message) of a finished request; frees res. */
static int finish_result(LDAP *ld, LDAPMessage *res, char *buf, size_t len)
{
	return parse_result(ld, res, buf, len, 1);
}

/* Result code of the result message in chain res; frees res when freeit. */
static int parse_result(LDAP *ld, LDAPMessage *res, char *buf, size_t len, int freeit)
{
	int code = LDAP_OTHER, rc;
	char *msg = NULL;

	rc = ldap_parse_result(ld, res, &code, NULL, &msg, NULL, NULL, freeit);
	if (rc != LDAP_SUCCESS)
		code = rc;
	if (code != LDAP_SUCCESS) {
		if (msg != NULL && *msg != '\0')
			snprintf(buf, len, "%s (%s)", ldap_err2string(code), msg);
		else
			snprintf(buf, len, "%s", ldap_err2string(code));
	}
	if (msg != NULL)
		ldap_memfree(msg);
	return code;
}

/* ---- a bounded I/O layer ----------------------------------------------
 * libldap 2.5 performs the TLS handshake (ldaps:// inside ldap_connect(),
 * StartTLS inside ldap_install_tls()) with blocking reads that no option
 * bounds: a server that accepts and then says nothing would hold the door
 * forever.  A Sockbuf I/O layer between TCP and TLS waits (poll) for each
 * read or write while c->bounded_io is set, but only until ONE deadline
 * (c->io_deadline = start of the handshake + `timeout`), not `timeout` per
 * read: a server dripping a byte a second must not stretch the handshake
 * without end.  Past the deadline the read fails with ETIMEDOUT, which makes
 * the handshake fail.  Outside the handshake it passes everything through:
 * ldap_result() has its own bound. */
#define RG_DIR_IO_LEVEL (LBER_SBIOD_LEVEL_PROVIDER + 5) /* above TCP, below TLS */

static int io_setup(Sockbuf_IO_Desc *sbiod, void *arg)
{
	sbiod->sbiod_pvt = arg;
	return 0;
}

static int io_remove(Sockbuf_IO_Desc *sbiod)
{
	(void)sbiod;
	return 0;
}

static int io_ctrl(Sockbuf_IO_Desc *sbiod, int opt, void *arg)
{
	return LBER_SBIOD_CTRL_NEXT(sbiod, opt, arg);
}

static int io_wait(Sockbuf_IO_Desc *sbiod, short events)
{
	const struct rg_dir_conn *c = sbiod->sbiod_pvt;
	ber_socket_t fd = -1;
	int64_t deadline;

	if (!c->bounded_io || ber_sockbuf_ctrl(sbiod->sbiod_sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0)
		return 0;
	deadline = c->io_deadline; /* what remains of the handshake's time */
	for (;;) {
		struct pollfd p = { fd, events, 0 };
		int64_t left = deadline - now_ms();
		int rc;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		rc = poll(&p, 1, (int)left);

		if (rc > 0)
			return 0; /* ready, or an error the next layer will report */
		if (rc == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

static ber_slen_t io_read(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	return io_wait(sbiod, POLLIN) < 0 ? -1 : LBER_SBIOD_READ_NEXT(sbiod, buf, len);
}

static ber_slen_t io_write(Sockbuf_IO_Desc *sbiod, void *buf, ber_len_t len)
{
	return io_wait(sbiod, POLLOUT) < 0 ? -1 : LBER_SBIOD_WRITE_NEXT(sbiod, buf, len);
}

/* A handshake starts: every read and write until bounded_io is cleared
 * shares one deadline, `timeout` from now. */
static void bounded_begin(struct rg_dir_conn *c)
{
	c->io_deadline = now_ms() + (int64_t)c->timeout * 1000;
	c->bounded_io = true;
}

static Sockbuf_IO bounded_io = { io_setup, io_remove, io_ctrl, io_read, io_write, NULL };

static int conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)addr;
	if (srv != NULL && srv->lud_scheme != NULL && strcasecmp(srv->lud_scheme, "ldapi") == 0)
		return 0;
	return ber_sockbuf_add_io(sb, &bounded_io, RG_DIR_IO_LEVEL, ctx->lc_arg) == 0 ? 0 : -1;
}

static void conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

/* ---- opening a connection ---------------------------------------------- */

/* TLS 1.2 or later only.  libldap built with GnuTLS (Debian's) ignores
 * LDAP_OPT_X_TLS_PROTOCOL_MIN: the versions are limited with the GnuTLS
 * priority string instead, and the negotiated version is checked after every
 * handshake whatever the library. */
#define RG_DIR_GNUTLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static bool tls_package_is_gnutls(LDAP *ld)
{
	char *pkg = NULL;
	bool gnutls;

	if (ldap_get_option(ld, LDAP_OPT_X_TLS_PACKAGE, &pkg) != LDAP_OPT_SUCCESS || pkg == NULL)
		return false;
	gnutls = strcasecmp(pkg, "GnuTLS") == 0;
	ldap_memfree(pkg);
	return gnutls;
}

/* Is a libldap TLS version name ("TLSv1.2" from OpenSSL, "TLS1.2" from
 * GnuTLS, "TLSv1" = 1.0) TLS 1.2 or later?  Anything else (SSL, unknown,
 * none) is not. */
bool rg_dir_tls_version_ok(const char *v)
{
	unsigned long major, minor = 0;
	char *end;

	if (v == NULL || strncmp(v, "TLS", 3) != 0)
		return false;
	v += 3;
	if (*v == 'v')
		v++;
	if (*v < '0' || *v > '9')
		return false;
	major = strtoul(v, &end, 10);
	if (*end == '.') {
		if (end[1] < '0' || end[1] > '9')
			return false;
		minor = strtoul(end + 1, &end, 10);
	}
	if (*end != '\0')
		return false;
	return major > 1 || (major == 1 && minor >= 2);
}

/* After a handshake: refuse a session below TLS 1.2 (0 ok, -1 with a message). */
static int tls_version_check(LDAP *ld, char *buf, size_t len)
{
	char *v = NULL;
	int rc = 0;

	if (ldap_get_option(ld, LDAP_OPT_X_TLS_VERSION, &v) != LDAP_OPT_SUCCESS)
		v = NULL;
	if (!rg_dir_tls_version_ok(v)) {
		snprintf(buf, len, "the server negotiated %s; TLS 1.2 or later is required",
			 v != NULL ? v : "an unknown TLS version");
		rc = -1;
	}
	if (v != NULL)
		ldap_memfree(v);
	return rc;
}

static int set_options(struct rg_dir_conn *c, const struct rg_dir_uri *u, char *buf, size_t len)
{
	const struct rg_directory_cfg *cfg = &c->t->cfg;
	LDAP *ld = c->ld;
	int version = LDAP_VERSION3, deref = LDAP_DEREF_NEVER, limit = (int)c->timeout;
	int reqcert = cfg->tls_require_cert == RG_TLS_NEVER ? LDAP_OPT_X_TLS_NEVER : LDAP_OPT_X_TLS_DEMAND;
	int tlsmin = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, newctx = 0;
	struct timeval tv = { (time_t)c->timeout, 0 };
	const char *what;

#define SETOPT(opt, val)                                               \
	do {                                                           \
		what = #opt;                                           \
		if (ldap_set_option(ld, opt, val) != LDAP_OPT_SUCCESS) \
			goto fail;                                     \
	} while (0)
	SETOPT(LDAP_OPT_PROTOCOL_VERSION, &version);
	SETOPT(LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	SETOPT(LDAP_OPT_RESTART, LDAP_OPT_ON);
	SETOPT(LDAP_OPT_DEREF, &deref);
	SETOPT(LDAP_OPT_NETWORK_TIMEOUT, &tv);
	SETOPT(LDAP_OPT_TIMEOUT, &tv);
	SETOPT(LDAP_OPT_TIMELIMIT, &limit);
	c->conncb.lc_add = conn_add;
	c->conncb.lc_del = conn_del;
	c->conncb.lc_arg = c;
	SETOPT(LDAP_OPT_CONNECT_CB, &c->conncb);
	if (!u->ldapi) {
		SETOPT(LDAP_OPT_X_TLS_REQUIRE_CERT, &reqcert);
		/* OpenSSL honours this; GnuTLS ignores it, so there the
		 * priority string says the same (and tls_version_ok() checks
		 * what was negotiated either way) */
		SETOPT(LDAP_OPT_X_TLS_PROTOCOL_MIN, &tlsmin);
		if (tls_package_is_gnutls(ld))
			SETOPT(LDAP_OPT_X_TLS_CIPHER_SUITE, RG_DIR_GNUTLS_PRIORITY);
		if (cfg->tls_ca_file != NULL)
			SETOPT(LDAP_OPT_X_TLS_CACERTFILE, cfg->tls_ca_file);
		SETOPT(LDAP_OPT_X_TLS_NEWCTX, &newctx);
	}
#undef SETOPT
	return 0;
fail:
	snprintf(buf, len, "cannot set %s", what);
	return -1;
}

static enum conn_rc do_bind(struct rg_dir_conn *c, const struct rg_dir_uri *u, char *buf, size_t len)
{
	const struct rg_directory_cfg *cfg = &c->t->cfg;
	struct berval cred;
	LDAPMessage *res;
	char pw[RG_DIR_PASSWORD_MAX + 1];
	int msgid = -1, rc, code;

	if (cfg->bind_dn == NULL) {
		if (!u->ldapi)
			return CONN_OK; /* anonymous */
		/* an empty initial response: no authzid, completes in one step */
		cred.bv_val = "";
		cred.bv_len = 0;
		rc = ldap_sasl_bind(c->ld, NULL, "EXTERNAL", &cred, NULL, NULL, &msgid);
	} else {
		if (rg_config_read_password(cfg, pw, sizeof(pw), buf, len) != 0)
			return CONN_POLICY;
		cred.bv_val = pw;
		cred.bv_len = strlen(pw);
		rc = ldap_sasl_bind(c->ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, &msgid);
		explicit_bzero(pw, sizeof(pw));
	}
	if (rc != LDAP_SUCCESS) {
		ld_error(c->ld, rc, buf, len);
		return CONN_FAIL;
	}
	if ((rc = rg_dir_wait_result(c->ld, msgid, c->timeout, &res)) != LDAP_SUCCESS) {
		ld_error(c->ld, rc, buf, len);
		return CONN_FAIL;
	}
	code = finish_result(c->ld, res, buf, len);
	if (code == LDAP_SUCCESS)
		return CONN_OK;
	return rg_dir_server_failure(code) ? CONN_FAIL : CONN_REFUSED;
}

static enum conn_rc start_tls(struct rg_dir_conn *c, char *buf, size_t len)
{
	LDAPMessage *res;
	int msgid = -1, rc, code;

	if ((rc = ldap_start_tls(c->ld, NULL, NULL, &msgid)) != LDAP_SUCCESS ||
	    (rc = rg_dir_wait_result(c->ld, msgid, c->timeout, &res)) != LDAP_SUCCESS) {
		ld_error(c->ld, rc, buf, len);
		return CONN_FAIL;
	}
	if ((code = finish_result(c->ld, res, buf, len)) != LDAP_SUCCESS)
		return rg_dir_server_failure(code) ? CONN_FAIL : CONN_REFUSED;
	bounded_begin(c);
	rc = ldap_install_tls(c->ld);
	c->bounded_io = false;
	if (rc != LDAP_SUCCESS) {
		char why[256];
		ld_error(c->ld, rc, why, sizeof(why));
		snprintf(buf, len, "TLS handshake failed (certificate not trusted, name mismatch, TLS older than"
				   " 1.2 or no answer): %s", why);
		return CONN_FAIL;
	}
	if (tls_version_check(c->ld, buf, len) != 0)
		return CONN_FAIL;
	return CONN_OK;
}

/* Open, secure and bind a connection to URI i of t. */
static enum conn_rc connect_uri(const struct rg_dir_target *t, size_t i, struct rg_dir_conn **out, char *buf,
				size_t len)
{
	const struct rg_dir_uri *u = &t->uris[i];
	bool tls = u->ldaps || (!u->ldapi && t->cfg.tls == RG_TLS_STARTTLS);
	struct rg_dir_conn *c;
	enum conn_rc crc;
	int rc;

	*out = NULL;
	if (t->cfg.tls_require_cert == RG_TLS_NEVER && !u->ldapi && !u->loopback) {
		snprintf(buf, len, "tls-require-cert = never is only accepted for ldapi:// or loopback");
		return CONN_POLICY;
	}
	if (!u->ldapi && !tls && !t->cfg.allow_insecure_bind) {
		snprintf(buf, len, "refusing to bind without TLS (use ldaps://, tls = starttls or ldapi://;"
				   " allow-insecure-bind = true overrides)");
		return CONN_POLICY;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(buf, len, "out of memory");
		return CONN_POLICY;
	}
	c->t = t;
	c->i = i;
	c->timeout = target_timeout(t);
	if ((rc = ldap_initialize(&c->ld, u->uri)) != LDAP_SUCCESS || c->ld == NULL) {
		snprintf(buf, len, "bad URI: %s", ldap_err2string(rc));
		crc = CONN_POLICY;
		goto fail;
	}
	if (set_options(c, u, buf, len) != 0) {
		crc = CONN_POLICY;
		goto fail;
	}
	bounded_begin(c);
	rc = ldap_connect(c->ld);
	c->bounded_io = false;
	if (rc != LDAP_SUCCESS) {
		char why[256];
		ld_error(c->ld, rc, why, sizeof(why));
		snprintf(buf, len, "%s%s", u->ldaps ? "connect or TLS handshake failed (certificate not trusted,"
						   " name mismatch, TLS older than 1.2 or no answer): " : "", why);
		crc = CONN_FAIL;
		goto fail;
	}
	if (u->ldaps && tls_version_check(c->ld, buf, len) != 0) {
		crc = CONN_FAIL;
		goto fail;
	}
	if (!u->ldapi && !u->ldaps && t->cfg.tls == RG_TLS_STARTTLS) {
		if ((crc = start_tls(c, buf, len)) != CONN_OK) {
			size_t l = strlen(buf);
			if (l + 20 < len) {
				memmove(buf + 10, buf, l + 1);
				memcpy(buf, "StartTLS: ", 10);
			}
			goto fail;
		}
	}
	if ((crc = do_bind(c, u, buf, len)) != CONN_OK)
		goto fail;
	*out = c;
	return CONN_OK;
fail:
	if (c->ld != NULL)
		ldap_unbind_ext(c->ld, NULL, NULL);
	free(c);
	return crc;
}

enum rg_dir_status rg_dir_conn_open(struct rg_dir_target *t, size_t upto, struct rg_dir_conn **out,
				    char *err, size_t errlen)
{
	enum rg_dir_status worst = RG_DIR_ERROR;
	char buf[sizeof(t->last_err) - 80];
	bool any_tried = false;

	*out = NULL;
	if (upto > t->nuris)
		upto = t->nuris;
	for (size_t i = 0; i < upto; i++) {
		struct rg_dir_uri *u = &t->uris[i];
		enum conn_rc crc;

		pthread_mutex_lock(&t->mu);
		bool skip = u->retry_at > now_ms();
		if (skip && (u->last == RG_DIR_UNAVAILABLE || worst != RG_DIR_UNAVAILABLE))
			worst = u->last;
		pthread_mutex_unlock(&t->mu);
		if (skip)
			continue;
		any_tried = true;
		buf[0] = '\0';
		crc = connect_uri(t, i, out, buf, sizeof(buf));
		pthread_mutex_lock(&t->mu);
		if (crc == CONN_OK) {
			u->fails = 0;
			u->retry_at = 0;
			pthread_mutex_unlock(&t->mu);
			return RG_DIR_OK;
		}
		snprintf(t->last_err, sizeof(t->last_err), "%s: %s", u->uri, buf);
		if (crc == CONN_FAIL) {
			note_failure_locked(t, i, RG_DIR_UNAVAILABLE);
			worst = RG_DIR_UNAVAILABLE;
		} else {
			if (crc == CONN_REFUSED)
				note_failure_locked(t, i, RG_DIR_ERROR);
			if (worst != RG_DIR_UNAVAILABLE)
				worst = RG_DIR_ERROR;
		}
		pthread_mutex_unlock(&t->mu);
	}
	pthread_mutex_lock(&t->mu);
	if (!any_tried && worst == RG_DIR_UNAVAILABLE)
		seterr(err, errlen, "no LDAP server available (all failed recently; last: %s)", t->last_err);
	else
		seterr(err, errlen, "%s%s", worst == RG_DIR_UNAVAILABLE ? "no LDAP server available; last: " : "",
		       t->last_err);
	pthread_mutex_unlock(&t->mu);
	return worst;
}

LDAP *rg_dir_conn_ld(const struct rg_dir_conn *c)
{
	return c != NULL ? c->ld : NULL;
}

size_t rg_dir_conn_index(const struct rg_dir_conn *c)
{
	return c != NULL ? c->i : 0;
}

const char *rg_dir_conn_uri(const struct rg_dir_conn *c)
{
	return c != NULL ? c->t->uris[c->i].uri : "";
}

void rg_dir_conn_close(struct rg_dir_conn *c)
{
	struct rg_dir_sigpipe g;

	if (c == NULL)
		return;
	rg_dir_sigpipe_block(&g);
	ldap_unbind_ext(c->ld, NULL, NULL);
	rg_dir_sigpipe_restore(&g);
	free(c);
}

void rg_dir_conn_forget_after_fork(struct rg_dir_conn *c)
{
	ber_socket_t fd = -1;

	if (c == NULL || c->ld == NULL)
		return;
	/* no unbind, no TLS close_notify: the session is the parent's */
	if (ldap_get_option(c->ld, LDAP_OPT_DESC, &fd) == LDAP_OPT_SUCCESS && fd >= 0)
		close(fd);
	/* c and its handle are left allocated: freeing the handle would write
	 * to (and close again) a descriptor number this process may reuse */
}

/* ---- session life ----------------------------------------------------- */

struct rg_dir *rg_dir_new_shared(const struct rg_directory_cfg *cfg, struct rg_dir_target *target)
{
	struct rg_dir *d;

	if (cfg == NULL || (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->prefer_retry = RG_DIR_PREFER_RETRY_MS;
	if (!copy_cfg(&d->cfg, cfg)) {
		rg_dir_free(d);
		return NULL;
	}
	if (target != NULL) {
		d->target = target;
	} else if ((d->target = rg_dir_target_new(cfg)) != NULL) {
		d->own_target = true;
	} else {
		rg_dir_free(d);
		return NULL;
	}
	return d;
}

struct rg_dir *rg_dir_new(const struct rg_directory_cfg *cfg)
{
	return rg_dir_new_shared(cfg, NULL);
}

static void drop_connection(struct rg_dir *d)
{
	rg_dir_conn_close(d->conn);
	d->conn = NULL;
	d->ld = NULL;
	d->reused = false;
}

static void use_connection(struct rg_dir *d, struct rg_dir_conn *c)
{
	drop_connection(d);
	d->conn = c;
	d->ld = rg_dir_conn_ld(c);
	d->cur = rg_dir_conn_index(c);
}

void rg_dir_free(struct rg_dir *d)
{
	if (d == NULL)
		return;
	drop_connection(d);
	if (d->own_target)
		rg_dir_target_free(d->target);
	free_cfg(&d->cfg);
	free(d);
}

const char *rg_dir_current_uri(const struct rg_dir *d)
{
	return d != NULL && d->conn != NULL ? rg_dir_conn_uri(d->conn) : "";
}

bool rg_dir_is_up(const struct rg_dir *d)
{
	return d != NULL && d->up;
}

unsigned long rg_dir_searches(const struct rg_dir *d)
{
	return d != NULL ? d->nsearches : 0;
}

void rg_dir_set_retry(struct rg_dir *d, unsigned backoff_min_ms, unsigned backoff_max_ms,
		      unsigned prefer_retry_ms)
{
	rg_dir_target_set_backoff(d->target, backoff_min_ms, backoff_max_ms);
	if (prefer_retry_ms)
		d->prefer_retry = prefer_retry_ms;
}

static unsigned op_timeout(const struct rg_dir *d)
{
	return target_timeout(d->target);
}

static int wait_result(struct rg_dir *d, LDAP *ld, int msgid, LDAPMessage **res)
{
	return rg_dir_wait_result(ld, msgid, op_timeout(d), res);
}

/* Make sure d->ld is usable, moving back to a preferred URI when due. */
static enum rg_dir_status ensure_connected(struct rg_dir *d, char *err, size_t len)
{
	struct rg_dir_conn *c = NULL;
	enum rg_dir_status st;

	if (d->conn != NULL) {
		if (d->cur == 0 || now_ms() < d->prefer_at)
			return RG_DIR_OK;
		d->prefer_at = now_ms() + d->prefer_retry;
		if (rg_dir_conn_open(d->target, d->cur, &c, NULL, 0) == RG_DIR_OK)
			use_connection(d, c);
		return RG_DIR_OK;
	}
	if ((st = rg_dir_conn_open(d->target, SIZE_MAX, &c, err, len)) != RG_DIR_OK)
		return st;
	use_connection(d, c);
	d->prefer_at = now_ms() + d->prefer_retry;
	return RG_DIR_OK;
}

/* An operation body: runs on d->ld; returns a status and, for server
 * failures, sets *ldrc to the LDAP code so the caller can fail over. */
typedef enum rg_dir_status (*op_fn)(struct rg_dir *d, void *ctx, int *ldrc, char *err, size_t len);

static enum rg_dir_status run_op(struct rg_dir *d, op_fn fn, void *ctx, char *err, size_t len)
{
	struct rg_dir_sigpipe g;
	enum rg_dir_status st;
	bool stale_retry_done = false;

	rg_dir_sigpipe_block(&g);
	for (;;) {
		int ldrc = LDAP_SUCCESS;

		if ((st = ensure_connected(d, err, len)) != RG_DIR_OK)
			break;
		st = fn(d, ctx, &ldrc, err, len);
		if (!(st == RG_DIR_UNAVAILABLE && rg_dir_server_failure(ldrc))) {
			d->reused = true;
			rg_dir_target_note(d->target, d->cur, RG_DIR_OK, NULL);
			break;
		}
		if (d->reused && !stale_retry_done) {
			/* may just be an idle connection the server closed */
			stale_retry_done = true;
			drop_connection(d);
			continue;
		}
		rg_dir_target_note(d->target, d->cur, RG_DIR_UNAVAILABLE, err ? err : "");
		drop_connection(d);
	}
	rg_dir_sigpipe_restore(&g);
	if (st == RG_DIR_OK || st == RG_DIR_NOT_FOUND)
		d->up = true;
	else if (st == RG_DIR_UNAVAILABLE)
		d->up = false;
	return st;
}

/* One search with its complete answer in *res (caller frees with
 * ldap_msgfree).  Returns LDAP_SUCCESS or the error (message in err). */
static int search(struct rg_dir *d, const char *base, int scope, const char *filter, char **attrs,
		  int sizelimit, LDAPMessage **res, char *err, size_t len)
{
	struct timeval tv = { (time_t)op_timeout(d), 0 };
	LDAPMessage *r = NULL;
	int msgid = -1, rc;
	char buf[256];

	*res = NULL;
	d->nsearches++;
	rc = ldap_search_ext(d->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv, sizelimit, &msgid);
	if (rc == LDAP_SUCCESS)
		rc = wait_result(d, d->ld, msgid, &r);
	if (rc != LDAP_SUCCESS) {
		ld_error(d->ld, rc, buf, sizeof(buf));
		seterr(err, len, "search %.120s: %s", filter, buf);
		return rc;
	}
	buf[0] = '\0';
	rc = parse_result(d->ld, r, buf, sizeof(buf), 0);
	if (rc != LDAP_SUCCESS) {
		seterr(err, len, "search %.120s under %.120s: %s", filter, base, buf);
		ldap_msgfree(r);
		return rc;
	}
	/* referrals are not chased, so a continuation reference means part of
	 * the answer is elsewhere: an incomplete group list must never decide */
	if (ldap_count_references(d->ld, r) > 0) {
		seterr(err, len, "search %.120s under %.120s: the answer is incomplete "
				 "(continuation references are not followed)", filter, base);
		ldap_msgfree(r);
		return LDAP_REFERRAL;
	}
	*res = r;
	return LDAP_SUCCESS;
}

static enum rg_dir_status map_rc(int rc, int *ldrc)
{
	*ldrc = rc;
	return rg_dir_server_failure(rc) ? RG_DIR_UNAVAILABLE : RG_DIR_ERROR;
}

static enum rg_dir_status nomem(char *err, size_t len)
{
	seterr(err, len, "out of memory");
	return RG_DIR_ERROR;
}

/* First value of attr on entry e (malloc'd) in *out; *out = NULL if none.
 * With `prefer`, the value equal to it (ignoring ASCII case) wins. */
static bool first_value(LDAP *ld, LDAPMessage *e, const char *attr, const char *prefer, char **out)
{
	struct berval **vals = ldap_get_values_len(ld, e, attr);
	size_t pick = 0;

	*out = NULL;
	if (vals == NULL || vals[0] == NULL) {
		ldap_value_free_len(vals);
		return true;
	}
	for (size_t i = 0; prefer != NULL && vals[i] != NULL; i++)
		if (vals[i]->bv_len == strlen(prefer) && strncasecmp(vals[i]->bv_val, prefer, vals[i]->bv_len) == 0) {
			pick = i;
			break;
		}
	*out = strndup(vals[pick]->bv_val, vals[pick]->bv_len);
	ldap_value_free_len(vals);
	return *out != NULL;
}

/* All values of attr on e appended (unique) to a. */
static bool all_values(LDAP *ld, LDAPMessage *e, const char *attr, struct strv *a)
{
	struct berval **vals = ldap_get_values_len(ld, e, attr);
	bool ok = true;

	for (size_t i = 0; ok && vals != NULL && vals[i] != NULL; i++) {
		char *v = strndup(vals[i]->bv_val, vals[i]->bv_len);
		ok = v != NULL && strv_add_unique(a, v);
		free(v);
	}
	ldap_value_free_len(vals);
	return ok;
}

/* "(|(attr=v1)(attr=v2)...)" of n escaped values (just "(attr=v1)" for one). */
static char *or_filter(const char *attr, char *const *vals, size_t n)
{
	GString *f = g_string_new(n > 1 ? "(|" : "");

	for (size_t i = 0; i < n; i++) {
		char *esc = escape_value(vals[i]);
		if (esc == NULL) {
			g_string_free(f, TRUE);
			return NULL;
		}
		g_string_append_printf(f, "(%s=%s)", attr, esc);
		free(esc);
	}
	if (n > 1)
		g_string_append_c(f, ')');
	/* hand out plain malloc memory */
	char *r = strdup(f->str);
	g_string_free(f, TRUE);
	return r;
}

/* Search groups matching filter; DNs not yet in `all` are added to `all`
 * and to `fresh` (may be NULL). */
static enum rg_dir_status collect_groups(struct rg_dir *d, const char *filter, struct strv *all,
					 struct strv *fresh, int *ldrc, char *err, size_t len)
{
	char *attrs[] = { LDAP_NO_ATTRS, NULL };
	LDAPMessage *res;
	enum rg_dir_status st = RG_DIR_OK;
	int rc;

	rc = search(d, d->cfg.base, LDAP_SCOPE_SUBTREE, filter, attrs, LDAP_NO_LIMIT, &res, err, len);
	if (rc != LDAP_SUCCESS)
		return map_rc(rc, ldrc);
	for (LDAPMessage *e = ldap_first_entry(d->ld, res); e && st == RG_DIR_OK; e = ldap_next_entry(d->ld, e)) {
		char *dn = ldap_get_dn(d->ld, e);
		if (dn == NULL)
			st = nomem(err, len);
		else if (!strv_has(all, dn) && (!strv_add(all, dn) || (fresh && !strv_add(fresh, dn))))
			st = nomem(err, len);
		ldap_memfree(dn);
	}
	ldap_msgfree(res);
	return st;
}

static const char *nest_attr(const struct rg_dir *d)
{
	return d->cfg.membership == RG_MEMBER_UNIQUEMEMBER ? "uniqueMember" : "member";
}

/* Follow nesting: groups whose nest_attr names a group found so far, one
 * search per level (in chunks), to nested-groups levels, never revisiting. */
static enum rg_dir_status follow_nesting(struct rg_dir *d, struct strv *groups, int *ldrc, char *err, size_t len)
{
	struct strv frontier = { 0 };
	enum rg_dir_status st = RG_DIR_OK;

	for (size_t i = 0; i < groups->n; i++)
		if (!strv_add(&frontier, groups->v[i])) {
			strv_free(&frontier);
			return nomem(err, len);
		}
	for (unsigned level = 1; level <= d->cfg.nested_groups && frontier.n > 0 && st == RG_DIR_OK; level++) {
		struct strv next = { 0 };

		for (size_t i = 0; i < frontier.n && st == RG_DIR_OK; i += RG_DIR_OR_CHUNK) {
			size_t k = frontier.n - i < RG_DIR_OR_CHUNK ? frontier.n - i : RG_DIR_OR_CHUNK;
			char *f = or_filter(nest_attr(d), frontier.v + i, k);
			st = f ? collect_groups(d, f, groups, &next, ldrc, err, len) : nomem(err, len);
			free(f);
		}
		strv_free(&frontier);
		frontier = next;
	}
	strv_free(&frontier);
	return st;
}

struct lookup_ctx {
	const char *principal;
	struct rg_person *out;
};

static enum rg_dir_status op_lookup(struct rg_dir *d, void *vctx, int *ldrc, char *err, size_t len)
{
	struct lookup_ctx *c = vctx;
	const struct rg_directory_cfg *cfg = &d->cfg;
	bool badge = cfg->badge_attribute != NULL;
	char *attrs[3] = { "uid", NULL, NULL };
	char tmpl[128], *filter = NULL, *dn = NULL, *uid = NULL;
	struct strv groups = { 0 };
	LDAPMessage *res = NULL, *e;
	enum rg_dir_status st;
	int rc, n;

	if (cfg->membership == RG_MEMBER_MEMBEROF)
		attrs[1] = "memberOf";
	if (badge)
		snprintf(tmpl, sizeof(tmpl), "(&(objectClass=*)(%s=%%u))", cfg->badge_attribute);
	filter = rg_dir_build_filter(badge ? tmpl : (cfg->user_filter ? cfg->user_filter : RG_DIR_DEFAULT_FILTER),
				     c->principal);
	if (filter == NULL)
		return nomem(err, len);
	/* a size limit of 2 is enough to tell "one" from "more than one" */
	rc = search(d, cfg->base, LDAP_SCOPE_SUBTREE, filter, attrs, 2, &res, err, len);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		seterr(err, len, "more than one entry matches %s; refusing to pick one", filter);
		st = RG_DIR_AMBIGUOUS;
		goto out;
	}
	if (rc != LDAP_SUCCESS) {
		st = map_rc(rc, ldrc);
		goto out;
	}
	n = ldap_count_entries(d->ld, res);
	if (n == 0) {
		seterr(err, len, "no entry matches %s under %s", filter, cfg->base);
		st = RG_DIR_NOT_FOUND;
		goto out;
	}
	if (n != 1) {
		seterr(err, len, "more than one entry (%d) matches %s; refusing to pick one", n, filter);
		st = RG_DIR_AMBIGUOUS;
		goto out;
	}
	e = ldap_first_entry(d->ld, res);
	{
		char *ldn = ldap_get_dn(d->ld, e);
		dn = ldn ? strdup(ldn) : NULL;
		ldap_memfree(ldn);
	}
	if (dn == NULL || !first_value(d->ld, e, "uid", badge ? NULL : c->principal, &uid)) {
		st = nomem(err, len);
		goto out;
	}
	if (uid == NULL && badge) {
		seterr(err, len, "%s has no uid", dn);
		st = RG_DIR_ERROR;
		goto out;
	}
	if (uid == NULL && (uid = strdup(c->principal)) == NULL) {
		st = nomem(err, len);
		goto out;
	}
	if (cfg->membership == RG_MEMBER_MEMBEROF) {
		st = all_values(d->ld, e, "memberOf", &groups) ? RG_DIR_OK : nomem(err, len);
	} else {
		char *gf;
		if (cfg->membership == RG_MEMBER_MEMBERUID) {
			char *esc = escape_value(uid);
			gf = esc ? g_strdup_printf("(&(objectClass=posixGroup)(memberUid=%s))", esc) : NULL;
			free(esc);
		} else {
			gf = or_filter(nest_attr(d), &dn, 1);
		}
		st = gf ? collect_groups(d, gf, &groups, NULL, ldrc, err, len) : nomem(err, len);
		if (cfg->membership == RG_MEMBER_MEMBERUID)
			g_free(gf);
		else
			free(gf);
	}
	if (st == RG_DIR_OK)
		st = follow_nesting(d, &groups, ldrc, err, len);
	if (st != RG_DIR_OK)
		goto out;
	if ((c->out = calloc(1, sizeof(*c->out))) == NULL || (c->out->principal = strdup(c->principal)) == NULL) {
		rg_person_free(c->out);
		c->out = NULL;
		st = nomem(err, len);
		goto out;
	}
	c->out->dn = dn;
	c->out->uid = uid;
	dn = uid = NULL;
	c->out->groups = groups.v;
	c->out->ngroups = groups.n;
	groups.v = NULL;
	groups.n = 0;
	c->out->fetched = (int64_t)time(NULL);
out:
	strv_free(&groups);
	free(filter);
	free(dn);
	free(uid);
	if (res != NULL)
		ldap_msgfree(res);
	return st;
}

enum rg_dir_status rg_dir_lookup(struct rg_dir *d, const char *principal, struct rg_person **out,
				 char *err, size_t errlen)
{
	struct lookup_ctx c = { principal, NULL };
	enum rg_dir_status st;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (out != NULL)
		*out = NULL;
	if (d == NULL || out == NULL) {
		seterr(err, errlen, "rg_dir_lookup: no session");
		return RG_DIR_ERROR;
	}
	if (!rg_dir_principal_ok(principal)) {
		seterr(err, errlen, "principal refused: empty, longer than %d bytes, not UTF-8 or has control characters",
		       RG_DIR_PRINCIPAL_MAX);
		return RG_DIR_BAD_INPUT;
	}
	if (d->cfg.base == NULL) {
		seterr(err, errlen, "directory base is not set");
		return RG_DIR_ERROR;
	}
	if (d->cfg.badge_attribute != NULL && !attr_ok(d->cfg.badge_attribute)) {
		seterr(err, errlen, "badge-attribute is not an attribute name");
		return RG_DIR_ERROR;
	}
	st = run_op(d, op_lookup, &c, err, errlen);
	if (st == RG_DIR_OK)
		*out = c.out;
	else
		rg_person_free(c.out);
	return st;
}

/* ---- group members (sync) --------------------------------------------- */

struct members_ctx {
	const char *group;
	struct strv out;
};

static bool is_group_class(const char *oc)
{
	static const char *const classes[] = { "groupOfNames", "groupOfUniqueNames", "posixGroup",
					       "groupOfURLs", "group", "groupOfMembers" };
	for (size_t i = 0; i < G_N_ELEMENTS(classes); i++)
		if (strcasecmp(oc, classes[i]) == 0)
			return true;
	return false;
}

/* uniqueMember values may carry an optional "#'0101'B" UID: drop it. */
static void strip_unique_uid(char *v)
{
	char *h = strrchr(v, '#');
	size_t n;

	if (h == NULL || h == v || h[-1] == '\\' || h[1] != '\'')
		return;
	n = strlen(h);
	if (n < 4 || h[n - 1] != 'B' || h[n - 2] != '\'')
		return;
	for (char *p = h + 2; p < h + n - 2; p++)
		if (*p != '0' && *p != '1')
			return;
	*h = '\0';
}

/* The principal for a person entry e: badge value or uid; NULL if none. */
static bool principal_of(struct rg_dir *d, LDAP *ld, LDAPMessage *e, char **out)
{
	return first_value(ld, e, d->cfg.badge_attribute ? d->cfg.badge_attribute : "uid", NULL, out);
}

/* Resolve one member DN of a group: a person adds a principal, a group is
 * queued for the next level.  Dangling DNs are skipped. */
static enum rg_dir_status member_dn(struct rg_dir *d, const char *dn, struct members_ctx *c, struct strv *visited,
				    struct strv *next, int *ldrc, char *err, size_t len)
{
	char *attrs[] = { "objectClass", "uid", d->cfg.badge_attribute, NULL };
	LDAPMessage *res, *e;
	struct berval **ocs;
	bool group = false;
	char *p = NULL;
	int rc;

	rc = search(d, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, LDAP_NO_LIMIT, &res, err, len);
	if (rc == LDAP_NO_SUCH_OBJECT)
		return RG_DIR_OK;
	if (rc != LDAP_SUCCESS)
		return map_rc(rc, ldrc);
	if ((e = ldap_first_entry(d->ld, res)) == NULL) {
		ldap_msgfree(res);
		return RG_DIR_OK;
	}
	ocs = ldap_get_values_len(d->ld, e, "objectClass");
	for (size_t i = 0; ocs != NULL && ocs[i] != NULL && !group; i++) {
		char *oc = strndup(ocs[i]->bv_val, ocs[i]->bv_len);
		if (oc == NULL) {
			ldap_value_free_len(ocs);
			ldap_msgfree(res);
			return nomem(err, len);
		}
		group = is_group_class(oc);
		free(oc);
	}
	ldap_value_free_len(ocs);
	if (group) {
		ldap_msgfree(res);
		if (strv_has(visited, dn))
			return RG_DIR_OK;
		return strv_add(visited, dn) && strv_add(next, dn) ? RG_DIR_OK : nomem(err, len);
	}
	if (!principal_of(d, d->ld, e, &p)) {
		ldap_msgfree(res);
		return nomem(err, len);
	}
	ldap_msgfree(res);
	if (p != NULL && rg_dir_principal_ok(p) && !strv_add_unique(&c->out, p)) {
		free(p);
		return nomem(err, len);
	}
	free(p);
	return RG_DIR_OK;
}

/* memberUid value -> principal (the uid itself, or the badge of that uid). */
static enum rg_dir_status member_uid(struct rg_dir *d, const char *uid, struct members_ctx *c, int *ldrc,
				     char *err, size_t len)
{
	char *attrs[] = { d->cfg.badge_attribute, NULL };
	char *f, *esc, *p = NULL;
	LDAPMessage *res;
	int rc;

	if (d->cfg.badge_attribute == NULL)
		return !rg_dir_principal_ok(uid) || strv_add_unique(&c->out, uid) ? RG_DIR_OK : nomem(err, len);
	if ((esc = escape_value(uid)) == NULL)
		return nomem(err, len);
	f = g_strdup_printf("(&(objectClass=*)(uid=%s))", esc);
	free(esc);
	rc = search(d, d->cfg.base, LDAP_SCOPE_SUBTREE, f, attrs, 2, &res, err, len);
	g_free(f);
	if (rc != LDAP_SUCCESS)
		return rc == LDAP_SIZELIMIT_EXCEEDED ? RG_DIR_OK : map_rc(rc, ldrc);
	if (ldap_count_entries(d->ld, res) == 1 && !principal_of(d, d->ld, ldap_first_entry(d->ld, res), &p)) {
		ldap_msgfree(res);
		return nomem(err, len);
	}
	ldap_msgfree(res);
	if (p != NULL && rg_dir_principal_ok(p) && !strv_add_unique(&c->out, p)) {
		free(p);
		return nomem(err, len);
	}
	free(p);
	return RG_DIR_OK;
}

/* Read one group entry and resolve its members. */
static enum rg_dir_status read_group(struct rg_dir *d, const char *gdn, bool top, struct members_ctx *c,
				     struct strv *visited, struct strv *next, int *ldrc, char *err, size_t len)
{
	char *attrs[] = { (char *)nest_attr(d), "memberUid", NULL };
	struct strv dns = { 0 }, uids = { 0 };
	enum rg_dir_status st = RG_DIR_OK;
	LDAPMessage *res, *e;
	int rc;

	if (d->cfg.membership != RG_MEMBER_MEMBERUID)
		attrs[1] = NULL;
	rc = search(d, gdn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, LDAP_NO_LIMIT, &res, err, len);
	if (rc == LDAP_NO_SUCH_OBJECT) {
		if (!top)
			return RG_DIR_OK;
		seterr(err, len, "group %s does not exist", gdn);
		return RG_DIR_NOT_FOUND;
	}
	if (rc != LDAP_SUCCESS)
		return map_rc(rc, ldrc);
	if ((e = ldap_first_entry(d->ld, res)) != NULL &&
	    (!all_values(d->ld, e, attrs[0], &dns) ||
	     (attrs[1] != NULL && !all_values(d->ld, e, "memberUid", &uids))))
		st = nomem(err, len);
	ldap_msgfree(res);
	for (size_t i = 0; i < uids.n && st == RG_DIR_OK; i++)
		st = member_uid(d, uids.v[i], c, ldrc, err, len);
	for (size_t i = 0; i < dns.n && st == RG_DIR_OK; i++) {
		if (d->cfg.membership == RG_MEMBER_UNIQUEMEMBER)
			strip_unique_uid(dns.v[i]);
		st = member_dn(d, dns.v[i], c, visited, next, ldrc, err, len);
	}
	strv_free(&dns);
	strv_free(&uids);
	return st;
}

static enum rg_dir_status op_members(struct rg_dir *d, void *vctx, int *ldrc, char *err, size_t len)
{
	struct members_ctx *c = vctx;
	struct strv visited = { 0 }, frontier = { 0 };
	enum rg_dir_status st = RG_DIR_OK;

	strv_free(&c->out); /* a retry on another server starts over */
	if (!strv_add(&visited, c->group) || !strv_add(&frontier, c->group)) {
		st = nomem(err, len);
		goto out;
	}
	for (unsigned depth = 0; frontier.n > 0 && depth <= d->cfg.nested_groups && st == RG_DIR_OK; depth++) {
		struct strv next = { 0 };

		for (size_t i = 0; i < frontier.n && st == RG_DIR_OK; i++)
			st = read_group(d, frontier.v[i], depth == 0, c, &visited, &next, ldrc, err, len);
		strv_free(&frontier);
		frontier = next;
	}
out:
	strv_free(&visited);
	strv_free(&frontier);
	return st;
}

enum rg_dir_status rg_dir_group_members(struct rg_dir *d, const char *group_dn, char ***members,
					char *err, size_t errlen)
{
	struct members_ctx c = { group_dn, { 0 } };
	enum rg_dir_status st;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (members != NULL)
		*members = NULL;
	if (d == NULL || members == NULL || group_dn == NULL || *group_dn == '\0') {
		seterr(err, errlen, "rg_dir_group_members: bad arguments");
		return RG_DIR_ERROR;
	}
	if (d->cfg.badge_attribute != NULL && !attr_ok(d->cfg.badge_attribute)) {
		seterr(err, errlen, "badge-attribute is not an attribute name");
		return RG_DIR_ERROR;
	}
	st = run_op(d, op_members, &c, err, errlen);
	if (st != RG_DIR_OK) {
		strv_free(&c.out);
		return st;
	}
	if (c.out.v == NULL && (c.out.v = calloc(1, sizeof(char *))) == NULL)
		return nomem(err, errlen);
	*members = c.out.v;
	return RG_DIR_OK;
}
