/*
 * test_audit.c - unit tests of plugin/audit.c: sanitising, record layout
 * (rfc3164 and rfc5424), delivery to a socket the test reads itself, the
 * spool (order, audit.replayed, the cap), target parsing, targets that
 * stop reading (every emit returns promptly, the rest is spooled and later
 * replayed in order), and receivers that go away with records unread (sent
 * again, in order, once a new receiver is there: at-least-once).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

/* ---- sanitising: table-driven ---- */

static const struct {
	const char *in;
	const char *out;
} sanitize_cases[] = {
	{ "alice", "alice" },
	{ "", "" },
	{ "a'b", "a\\x27b" },
	{ "a\"b", "a\\x22b" },
	{ "a\\b", "a\\x5cb" },
	{ "a\\x27b", "a\\x5cx27b" }, /* a literal escape cannot pass for one */
	{ "a\nb\rc\td", "a\\x0ab\\x0dc\\x09d" },
	{ "\x1b[31m", "\\x1b[31m" },
	{ "del\x7f", "del\\x7f" },
	{ "a, b=c; d", "a, b=c; d" }, /* separators are safe inside quotes */
	{ "caf\xc3\xa9", "caf\xc3\xa9" }, /* valid UTF-8 stays readable */
	{ "\xe2\x82\xac", "\xe2\x82\xac" },
	{ "\xf0\x9f\x9a\xaa", "\xf0\x9f\x9a\xaa" },
	{ "\xff", "\\xff" },
	{ "\xc3(", "\\xc3(" },                 /* truncated sequence */
	{ "\xc0\xaf", "\\xc0\\xaf" },          /* overlong '/' */
	{ "\xed\xa0\x80", "\\xed\\xa0\\x80" }, /* surrogate */
	{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" }, /* > U+10FFFF */
	{ "\xc2\x85", "\\xc2\\x85" },          /* C1 control NEL */
	{ "ab\xe2\x80\xae" "c", "ab\\xe2\\x80\\xae" "c" }, /* RIGHT-TO-LEFT OVERRIDE */
};

START_TEST(test_sanitize_renders_unsafe_bytes_as_hex_escapes)
{
	char out[256];
	rg_audit_sanitize(sanitize_cases[_i].in, out, sizeof out);
	ck_assert_str_eq(out, sanitize_cases[_i].out);
}
END_TEST

START_TEST(test_sanitize_truncates_at_escape_and_character_boundaries)
{
	char out[8];
	rg_audit_sanitize("ab'cdef", out, sizeof out); /* "ab\x27c" is 7 bytes + NUL */
	ck_assert_str_eq(out, "ab\\x27c");
	rg_audit_sanitize("abcd'", out, 8); /* the escape does not fit whole */
	ck_assert_str_eq(out, "abcd");
	rg_audit_sanitize("abcdef\xc3\xa9", out, 8); /* nor does the 2-byte character */
	ck_assert_str_eq(out, "abcdef");
	rg_audit_sanitize(NULL, out, sizeof out);
	ck_assert_str_eq(out, "");
}
END_TEST

/* ---- record layout ---- */

static struct rg_audit *sink(const char *target, enum rg_audit_format fmt, const char *spool)
{
	struct rg_audit_cfg cfg = { .target = (char *)target, .format = fmt,
				    .facility = LOG_AUTHPRIV, .ident = (char *)"rotagate",
				    .spool = (char *)spool };
	char err[256];
	struct rg_audit *a = rg_audit_new(&cfg, err, sizeof err);
	ck_assert_msg(a != NULL, "rg_audit_new: %s", err);
	return a;
}

static const struct rg_kv decision[] = {
	{ "config_sha", "abc123" },
	{ "user", "o'brien\"\\" },
	{ "door", "main]gate" },
	{ "seq", "999" },   /* reserved: ignored */
	{ "bad key!", "x" }, /* renamed bad_key_ */
};

START_TEST(test_rfc3164_record_is_header_then_evt_format_text)
{
	struct rg_audit *a = sink("unix:/nonexistent/sock", RG_AUDIT_RFC3164, NULL);
	char *r = rg_audit_format(a, LOG_NOTICE, "access.denied", decision, 5);
	ck_assert_ptr_nonnull(r);
	/* <authpriv.notice = 85>Mmm dd hh:mm:ss rotagate[PID]: */
	ck_assert_msg(strncmp(r, "<85>", 4) == 0, "%s", r);
	char hdr[128];
	snprintf(hdr, sizeof hdr, " rotagate[%ld]: access.denied; event='access.denied', seq='",
		 (long)getpid());
	ck_assert_msg(strstr(r, hdr) != NULL, "%s", r);
	ck_assert_msg(r[7] == ' ' && r[10] == ' ' && r[13] == ':' && r[16] == ':', "%s", r);
	char want[128];
	snprintf(want, sizeof want, "', pid='%ld', config_sha='abc123', ", (long)getpid());
	ck_assert_msg(strstr(r, want) != NULL, "%s", r);
	ck_assert_msg(strstr(r, "user='o\\x27brien\\x22\\x5c', door='main]gate', bad_key_='x'"),
		      "%s", r);
	ck_assert_msg(strstr(r, "999") == NULL, "reserved field overridden: %s", r);
	free(r);
	rg_audit_free(a);
}
END_TEST

START_TEST(test_rfc5424_record_carries_fields_as_escaped_structured_data)
{
	struct rg_audit *a = sink("unix:/nonexistent/sock", RG_AUDIT_RFC5424, NULL);
	char *r = rg_audit_format(a, LOG_INFO, "access.granted", decision, 5);
	ck_assert_ptr_nonnull(r);
	/* <86>1 YYYY-MM-DDTHH:MM:SS.uuuuuuZ HOST rotagate PID access.granted [rotagate@32473 ...] MSG */
	ck_assert_msg(strncmp(r, "<86>1 ", 6) == 0, "%s", r);
	ck_assert_msg(r[10] == '-' && r[16] == 'T' && r[25] == '.' && r[32] == 'Z', "%s", r);
	char want[96];
	snprintf(want, sizeof want, " rotagate %ld access.granted [" RG_AUDIT_SD_ID " event=\"access.granted\"",
		 (long)getpid());
	ck_assert_msg(strstr(r, want) != NULL, "%s", r);
	/* sanitised value, then RFC 5424 escaping of \ and ] */
	ck_assert_msg(strstr(r, " user=\"o\\\\x27brien\\\\x22\\\\x5c\" door=\"main\\]gate\""), "%s",
		      r);
	ck_assert_msg(strstr(r, "] access.granted; event='access.granted'"), "%s", r);
	free(r);
	rg_audit_free(a);
}
END_TEST

START_TEST(test_seq_increases_across_sinks_of_one_process)
{
	struct rg_audit *a = sink("unix:/nonexistent/a", RG_AUDIT_RFC3164, NULL);
	struct rg_audit *b = sink("unix:/nonexistent/b", RG_AUDIT_RFC3164, NULL);
	unsigned long s1, s2, s3;
	char *r1 = rg_audit_format(a, LOG_INFO, "x", NULL, 0);
	char *r2 = rg_audit_format(b, LOG_INFO, "x", NULL, 0);
	char *r3 = rg_audit_format(a, LOG_INFO, "x", NULL, 0);
	ck_assert(sscanf(strstr(r1, "seq='"), "seq='%lu'", &s1) == 1);
	ck_assert(sscanf(strstr(r2, "seq='"), "seq='%lu'", &s2) == 1);
	ck_assert(sscanf(strstr(r3, "seq='"), "seq='%lu'", &s3) == 1);
	ck_assert_uint_eq(s2, s1 + 1);
	ck_assert_uint_eq(s3, s2 + 1);
	free(r1);
	free(r2);
	free(r3);
	rg_audit_free(a);
	rg_audit_free(b);
}
END_TEST

START_TEST(test_invalid_targets_are_refused)
{
	static const char *bad[] = { "udp:host:514", "unix:", "tcp:host", "tcp::514",
				     "tcp:host:port", "tcp:[::1]514", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rg_audit_cfg cfg = { .target = (char *)bad[i], .ident = (char *)"x" };
		char err[256] = "";
		ck_assert_msg(rg_audit_new(&cfg, err, sizeof err) == NULL, "accepted %s", bad[i]);
		ck_assert_msg(strstr(err, "not valid") != NULL, "%s", err);
	}
	struct rg_audit_cfg ok = { .target = (char *)"tcp:[::1]:514", .ident = (char *)"x" };
	char err[256];
	struct rg_audit *a = rg_audit_new(&ok, err, sizeof err);
	ck_assert_ptr_nonnull(a);
	rg_audit_free(a);
}
END_TEST

/* ---- delivery and spool against a socket the test owns ---- */

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rg-audit-unit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int dgram_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* next datagram as text, or NULL if none is waiting */
static char *dgram_read(int fd)
{
	static char buf[8192];
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static const char *field(const char *rec, const char *key, char *out, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof pat, " %s='", key);
	const char *p = strstr(rec, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	size_t n = strcspn(p, "'");
	snprintf(out, len, "%.*s", (int)n, p);
	return out;
}

START_TEST(test_unreachable_target_without_spool_loses_the_record)
{
	mk_tmpdir();
	char target[128];
	snprintf(target, sizeof target, "unix:%s/nobody-listens", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, NULL);
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.x", NULL, 0), -1);
	char err[256];
	rg_audit_last_error(a, err, sizeof err);
	ck_assert_msg(strstr(err, "nobody-listens") != NULL, "%s", err);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

START_TEST(test_spooled_records_are_replayed_in_order_before_new_ones)
{
	mk_tmpdir();
	char path[128], target[140], spool[128], v[64];
	snprintf(path, sizeof path, "%s/log.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool/deeper", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);

	/* nobody listening: spooled, directory created 0700 */
	for (int i = 0; i < 5; i++) {
		char n[8];
		snprintf(n, sizeof n, "%d", i);
		struct rg_kv kv[] = { { "n", n } };
		ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.down", kv, 1), 1);
	}
	struct stat st;
	ck_assert_int_eq(stat(spool, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	/* listener back: the next record's call replays the 5 first (a small
	 * spool fits in one slice), in order, then audit.replayed for them,
	 * then sends the new record itself */
	int fd = dgram_listen(path);
	struct rg_kv kv[] = { { "n", "new" } };
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.up", kv, 1), 0);
	for (int i = 0; i < 5; i++) {
		char *r = dgram_read(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(strstr(r, "test.down;") != NULL, "%s", r);
		char want[8];
		snprintf(want, sizeof want, "%d", i);
		ck_assert_str_eq(field(r, "n", v, sizeof v), want);
	}
	char *r = dgram_read(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, "audit.replayed;") != NULL, "%s", r);
	ck_assert_str_eq(field(r, "count", v, sizeof v), "5");
	r = dgram_read(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, "test.up;") != NULL, "%s", r);
	ck_assert_ptr_null(dgram_read(fd));
	close(fd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

START_TEST(test_full_spool_loses_with_a_clear_error_and_reports_the_loss)
{
	mk_tmpdir();
	char path[128], target[140], v[64];
	snprintf(path, sizeof path, "%s/log.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, tmpdir);
	rg_audit_set_spool_limit(a, 400); /* room for about two records */

	int rc, spooled = 0, lost = 0;
	for (int i = 0; i < 6; i++) {
		rc = rg_audit_emit(a, LOG_INFO, "test.down", NULL, 0);
		spooled += rc == 1;
		lost += rc == -1;
	}
	ck_assert_int_ge(spooled, 1);
	ck_assert_int_ge(lost, 1);
	ck_assert_int_eq(spooled + lost, 6);
	char err[256];
	rg_audit_last_error(a, err, sizeof err);
	ck_assert_msg(strstr(err, "spool") && strstr(err, "full"), "%s", err);

	/* once the target is back: spooled records, audit.replayed, then
	 * audit.lost (the flush replays); then a
	 * new record goes straight out */
	int fd = dgram_listen(path);
	ck_assert_int_eq(rg_audit_flush(a, 5000), 0);
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.up", NULL, 0), 0);
	char *r;
	int seen_lost = 0;
	while ((r = dgram_read(fd)) != NULL) {
		if (strstr(r, "audit.lost;")) {
			seen_lost = 1;
			/* the emits that failed, plus audit.lost reports that had no room either */
			ck_assert_int_ge(atoi(field(r, "count", v, sizeof v)), lost);
			ck_assert_ptr_nonnull(field(r, "first_seq", v, sizeof v));
		}
	}
	ck_assert_int_eq(seen_lost, 1);
	close(fd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

/* ---- a target that stops reading: emit stays prompt, the rest waits in
 *      the spool and is replayed in order once the target reads again ---- */

static int emit_q(struct rg_audit *a, int n);

/* rg_audit_emit() never waits for the target: no sleep, no poll() with a
 * timeout.  The test binary interposes the calls the sink could wait in
 * and counts those made with a wait while `watching` is set on the calling
 * thread (behaviour, not timing: a slow machine cannot make it fail, a
 * sink that waits for room always does). */
static _Thread_local bool watching;
static atomic_int waits;

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
	static int (*real)(struct pollfd *, nfds_t, int);
	if (!real)
		real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
	if (watching && timeout != 0)
		atomic_fetch_add(&waits, 1);
	return real(fds, n, timeout);
}

int usleep(useconds_t us)
{
	static int (*real)(useconds_t);
	if (!real)
		real = (int (*)(useconds_t))dlsym(RTLD_NEXT, "usleep");
	if (watching && us > 0)
		atomic_fetch_add(&waits, 1);
	return real(us);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	static int (*real)(const struct timespec *, struct timespec *);
	if (!real)
		real = (int (*)(const struct timespec *, struct timespec *))dlsym(RTLD_NEXT,
										  "nanosleep");
	if (watching)
		atomic_fetch_add(&waits, 1);
	return real(req, rem);
}

static int stream_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

static int tcp_listen(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	/* a short queue: a sink that gives up a full connection for a new one
	 * soon finds no more room there either */
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Reads everything the target receives, in a thread of its own, once it is
 * started: connections accepted from `lfd` (stream) or datagrams from `fd`.
 * Datagrams are stored one per line; streams as received. */
struct reader {
	int lfd, fd;    /* listening socket (-1 for datagrams), socket to read */
	bool dgram;
	pthread_t tid;
	pthread_mutex_t mu;
	char *buf;
	size_t len, cap;
	int conns;      /* connections accepted */
	bool stop;
};

#define RB_CONN '\001' /* between what two connections brought (never in a record) */

static void reader_add(struct reader *r, const char *p, size_t n)
{
	pthread_mutex_lock(&r->mu);
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->buf = realloc(r->buf, r->cap);
		ck_assert_ptr_nonnull(r->buf);
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = '\0';
	pthread_mutex_unlock(&r->mu);
}

/* Take a new connection, if one waits.  The sink only reconnects after it
 * closed the old one: what the old one still holds is read first. */
static void reader_accept(struct reader *r)
{
	char buf[65536];
	int c;
	while (r->lfd >= 0 && (c = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
		if (r->fd >= 0) {
			ssize_t n;
			while ((n = recv(r->fd, buf, sizeof buf, MSG_DONTWAIT)) != 0) {
				if (n > 0)
					reader_add(r, buf, (size_t)n);
				else if (errno != EAGAIN && errno != EINTR)
					break;
				else
					usleep(1000);
			}
			close(r->fd);
		}
		if (r->conns++ > 0)
			reader_add(r, "\001", 1);
		r->fd = c;
	}
}

static void *reader_run(void *arg)
{
	struct reader *r = arg;
	char buf[65536];
	for (;;) {
		pthread_mutex_lock(&r->mu);
		bool stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		reader_accept(r);
		ssize_t n = r->fd >= 0 ? recv(r->fd, buf, sizeof buf, MSG_DONTWAIT) : -1;
		if (n > 0) {
			reader_add(r, buf, (size_t)n);
			if (r->dgram)
				reader_add(r, "\n", 1);
			continue;
		}
		if (stop)
			break;
		usleep(1000);
	}
	return NULL;
}

static void reader_init(struct reader *r, int lfd, int fd, bool dgram)
{
	memset(r, 0, sizeof *r);
	r->lfd = lfd;
	r->fd = fd;
	r->dgram = dgram;
	pthread_mutex_init(&r->mu, NULL);
	if (lfd >= 0)
		ck_assert_int_eq(fcntl(lfd, F_SETFL, O_NONBLOCK), 0);
}

static void reader_start(struct reader *r)
{
	ck_assert_int_eq(pthread_create(&r->tid, NULL, reader_run, r), 0);
}

/* wait until the text received contains `needle` (or timeout_ms pass) */
static bool reader_wait_for(struct reader *r, const char *needle, int timeout_ms)
{
	int64_t end = mono_us() + (int64_t)timeout_ms * 1000;
	for (;;) {
		pthread_mutex_lock(&r->mu);
		bool found = r->buf && strstr(r->buf, needle);
		pthread_mutex_unlock(&r->mu);
		if (found)
			return true;
		if (mono_us() > end)
			return false;
		usleep(2000);
	}
}

static void reader_stop(struct reader *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->tid, NULL);
	if (r->fd >= 0 && r->fd != r->lfd)
		close(r->fd);
	pthread_mutex_destroy(&r->mu);
}

struct fill_result {
	int delivered;  /* emits that returned 0 before the first spooled one */
	int spooled;    /* emits that returned 1 */
	int total;      /* emits */
};

/* Emit test.fill records (n = 0, 1, ...; a padding field makes them about
 * 500 bytes) until the target stops taking them, then `extra` more.  No
 * call may wait (see `watching`).  Every record must be delivered or
 * spooled. */
static struct fill_result fill(struct rg_audit *a, int extra, int max_records)
{
	struct fill_result fr = { 0 };
	char pad[401], n_s[16];
	memset(pad, 'p', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (int n = 0; n < max_records; n++) {
		snprintf(n_s, sizeof n_s, "%d", n);
		struct rg_kv kv[] = { { "n", n_s }, { "pad", pad } };
		int w0 = atomic_load(&waits);
		watching = true;
		int rc = rg_audit_emit(a, LOG_INFO, "test.fill", kv, 2);
		watching = false;
		fr.total++;
		/* fail at the first wait: that is the finding */
		ck_assert_msg(atomic_load(&waits) == w0,
			      "rg_audit_emit of record %d waited (%d delivered, %d spooled before it)",
			      n, fr.delivered, fr.spooled);
		ck_assert_msg(rc == 0 || rc == 1, "record %d: rc %d", n, rc);
		/* a record sent after spooled ones is fine: a later call emptied
		 * the spool meanwhile (the order is checked at the target) */
		if (rc == 0 && fr.spooled == 0)
			fr.delivered++;
		else if (rc == 1 && ++fr.spooled > extra)
			break;
	}
	return fr;
}

/* The records `text` holds (one per line; tcp frames "LEN SP MSG" are
 * unframed first; RB_CONN separates connections): seq contiguous in order;
 * test.fill n = 0..total-1 in order; audit.replayed records wherever the
 * spool was emptied (each call replays a slice whenever the target takes
 * records again), their counts adding up to the `spooled` records (and at
 * most the audit.replayed records and test.after themselves besides); the
 * test.after record after every test.fill.  A tcp frame cut short by the
 * end of its connection is skipped, as syslog-ng drops it; a unix stream
 * line cut short is an error: syslog-ng would log the fragment as a record
 * of its own. */
static void check_replayed_stream(const char *text, bool octets, int total, int spooled)
{
	char v[64];
	unsigned long prev_seq = 0;
	int next_n = 0, seen_replayed = 0, sum_replayed = 0, seen_after = 0;
	const char *p = text;
	while (*p) {
		const char *end;
		size_t len;
		if (*p == RB_CONN) {
			p++;
			continue;
		}
		const char *conn_end = strchr(p, RB_CONN);
		size_t left = conn_end ? (size_t)(conn_end - p) : strlen(p);
		if (octets) {
			char *sp;
			unsigned long flen = strtoul(p, &sp, 10);
			ck_assert_msg(sp != p && *sp == ' ', "bad frame at %.40s", p);
			if ((size_t)(sp + 1 - p) + flen > left) {
				ck_assert_msg(conn_end != NULL, "torn frame at the end: %.60s", p);
				p = conn_end; /* the connection ended within the frame */
				continue;
			}
			p = sp + 1;
			len = flen;
			end = p + len;
		} else {
			end = memchr(p, '\n', left);
			ck_assert_msg(end != NULL, "torn record: %.60s", p);
			len = (size_t)(end - p);
			end++;
		}
		char *rec = strndup(p, len);
		ck_assert_ptr_nonnull(field(rec, "seq", v, sizeof v));
		unsigned long seq = strtoul(v, NULL, 10);
		ck_assert_msg(prev_seq == 0 || seq == prev_seq + 1, "seq %lu after %lu: %s", seq,
			      prev_seq, rec);
		prev_seq = seq;
		if (strstr(rec, ": test.fill;")) {
			ck_assert_msg(!seen_after, "test.fill after test.after: %.120s", rec);
			ck_assert_int_eq(atoi(field(rec, "n", v, sizeof v)), next_n);
			next_n++;
		} else if (strstr(rec, ": audit.replayed;")) {
			sum_replayed += atoi(field(rec, "count", v, sizeof v));
			seen_replayed++;
		} else if (strstr(rec, ": test.after;")) {
			ck_assert_msg(!seen_after, "test.after twice: %s", rec);
			seen_after = 1;
		} else {
			ck_abort_msg("unexpected record: %s", rec);
		}
		free(rec);
		p = end;
	}
	ck_assert_int_eq(next_n, total);
	ck_assert_int_ge(seen_replayed, 1);
	ck_assert_msg(sum_replayed >= spooled && sum_replayed <= spooled + seen_replayed + 1,
		      "audit.replayed counts add up to %d, %d records were spooled", sum_replayed,
		      spooled);
	ck_assert_int_eq(seen_after, 1);
}

/* Once the spool is empty (flushed), a new record goes straight out, unless
 * the target, reading again, still has its socket full at that moment (a
 * datagram receiver's queue holds 10 or so): then it is spooled, and the
 * next flush sends it. */
static void emit_after(struct rg_audit *a)
{
	int rc = rg_audit_emit(a, LOG_INFO, "test.after", NULL, 0);
	ck_assert_msg(rc == 0 || rc == 1, "test.after: rc %d", rc);
	if (rc == 1)
		ck_assert_int_eq(rg_audit_flush(a, 10000), 0);
}

/* A unix stream target that accepts and never reads: once the socket is
 * full, records go to the spool, and no emit waits for long. */
START_TEST(test_stream_target_that_stops_reading_never_holds_up_emit)
{
	mk_tmpdir();
	char path[128], target[140], spool[128], sp[160];
	snprintf(path, sizeof path, "%s/stream.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	int lfd = stream_listen(path);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);

	struct fill_result fr = fill(a, 50, 200000);
	ck_assert_msg(fr.spooled == 51, "the socket never filled up (%d delivered)", fr.delivered);
	ck_assert_int_gt(fr.delivered, 0);
	struct stat st;
	snprintf(sp, sizeof sp, "%s/audit.spool", spool);
	ck_assert_int_eq(stat(sp, &st), 0);
	ck_assert_int_gt(st.st_size, 51 * 400);

	/* the target reads again: the spool drains in order, then new records */
	struct reader r;
	reader_init(&r, lfd, -1, false);
	reader_start(&r);
	ck_assert_int_eq(rg_audit_flush(a, 10000), 0);
	emit_after(a);
	ck_assert(reader_wait_for(&r, ": test.after;", 10000));
	reader_stop(&r);
	check_replayed_stream(r.buf, false, fr.total, fr.spooled);
	free(r.buf);
	close(lfd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

/* The same over tcp (RFC 6587 octet counting), where a full socket can
 * take half a record. */
START_TEST(test_tcp_target_that_stops_reading_never_holds_up_emit)
{
	mk_tmpdir();
	char target[64], spool[128];
	int port;
	int lfd = tcp_listen(&port);
	snprintf(target, sizeof target, "tcp:127.0.0.1:%d", port);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);

	struct fill_result fr = fill(a, 50, 200000);
	ck_assert_msg(fr.spooled == 51, "the socket never filled up (%d delivered)", fr.delivered);
	ck_assert_int_gt(fr.delivered, 0);

	struct reader r;
	reader_init(&r, lfd, -1, false);
	reader_start(&r);
	ck_assert_int_eq(rg_audit_flush(a, 10000), 0);
	emit_after(a);
	ck_assert(reader_wait_for(&r, ": test.after;", 10000));
	reader_stop(&r);
	check_replayed_stream(r.buf, true, fr.total, fr.spooled);
	free(r.buf);
	close(lfd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

/* The interposition does see the sink's waits: emit to a target that is
 * not there spools without waiting, a flush waits for it to come back. */
START_TEST(test_emit_to_an_absent_target_does_not_wait_and_flush_does)
{
	mk_tmpdir();
	char target[140], spool[128];
	snprintf(target, sizeof target, "unix:%s/nobody-listens", tmpdir);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);
	int w0 = atomic_load(&waits);
	watching = true;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(emit_q(a, i), 1);
	int w1 = atomic_load(&waits);
	ck_assert_int_eq(rg_audit_flush(a, 20), 1);
	watching = false;
	ck_assert_int_eq(w1, w0);
	ck_assert_int_gt(atomic_load(&waits), w1);
	rg_audit_free_wait(a, 0);
	rm_tmpdir();
}
END_TEST

/* A datagram target whose receive queue is full (nobody reads /dev/log):
 * the same promptness, spool and order. */
START_TEST(test_datagram_target_with_a_full_queue_never_holds_up_emit)
{
	mk_tmpdir();
	char path[128], target[140], spool[128];
	snprintf(path, sizeof path, "%s/dgram.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	int fd = dgram_listen(path);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);

	struct fill_result fr = fill(a, 50, 200000);
	ck_assert_msg(fr.spooled == 51, "the queue never filled up (%d delivered)", fr.delivered);
	ck_assert_int_gt(fr.delivered, 0);

	struct reader r;
	reader_init(&r, -1, fd, true);
	reader_start(&r);
	ck_assert_int_eq(rg_audit_flush(a, 10000), 0);
	emit_after(a);
	ck_assert(reader_wait_for(&r, ": test.after;", 10000));
	reader_stop(&r);
	check_replayed_stream(r.buf, false, fr.total, fr.spooled);
	free(r.buf);
	close(fd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

/* ---- at-least-once: a receiver that goes away with records unread ---- */

static int emit_q(struct rg_audit *a, int n)
{
	char n_s[16];
	snprintf(n_s, sizeof n_s, "%d", n);
	struct rg_kv kv[] = { { "n", n_s } };
	return rg_audit_emit(a, LOG_INFO, "test.q", kv, 1);
}

/* n of a test.q record, -1 for another record */
static int rec_n(const char *rec)
{
	char v[32];
	if (!strstr(rec, ": test.q;") || !field(rec, "n", v, sizeof v))
		return -1;
	return atoi(v);
}

/* The records (one per line) a receiver got after the sink reconnected:
 * test.q n = first, first + 1, ... up to last, in order; nothing else but
 * audit.replayed. */
static void check_resent(const char *text, int first, int last)
{
	int want = first;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		ck_assert_msg(nl != NULL, "torn record: %.60s", p);
		char *rec = strndup(p, (size_t)(nl - p));
		int n = rec_n(rec);
		if (n < 0)
			ck_assert_msg(strstr(rec, ": audit.replayed;") != NULL, "unexpected: %s", rec);
		else
			ck_assert_msg(n == want, "test.q n=%d where n=%d was due: %s", n, want, rec);
		want += n >= 0;
		free(rec);
		p = nl + 1;
	}
	ck_assert_msg(want == last + 1, "records %d..%d missing", want, last);
}

/* Records 0..7 sent to a receiver that reads 0..2 and is then closed
 * (syslog-ng stopped: 3..7 thrown away unread).  The sink notices, and once
 * a new receiver is bound to the same path it sends 3..7 again, before the
 * records that came meanwhile (8..11, spooled).  0..2, known read long
 * enough ago, are not sent again.  _i = 0: a unix datagram receiver; _i = 1:
 * a unix stream receiver (newline framing) that reads three records and
 * closes the connection with five unread. */
START_TEST(test_receiver_gone_with_records_unread_gets_them_again)
{
	bool dgram = _i == 0;
	mk_tmpdir();
	char path[128], target[140], spool[128];
	snprintf(path, sizeof path, "%s/%s.sock", tmpdir, dgram ? "dgram" : "stream");
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	int lfd = dgram ? dgram_listen(path) : stream_listen(path), c = -1;
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(emit_q(a, i), 0);
	if (dgram) {
		for (int i = 0; i < 3; i++) {
			char *r = dgram_read(lfd);
			ck_assert_ptr_nonnull(r);
			ck_assert_int_eq(rec_n(r), i);
		}
	} else {
		c = accept(lfd, NULL, NULL);
		ck_assert_int_ge(c, 0);
		for (int i = 0; i < 3; i++) { /* byte by byte: nothing past the third */
			char line[4096];
			size_t len = 0;
			while (len < sizeof line - 1 && recv(c, line + len, 1, 0) == 1 &&
			       line[len] != '\n')
				len++;
			line[len] = '\0';
			ck_assert_int_eq(rec_n(line), i);
		}
	}
	/* delivered, and the sink learns what was read; the next call on the
	 * sink (a decision, here a flush) forgets it, the receiver having
	 * outlived that by the grace period */
	ck_assert_int_eq(rg_audit_flush(a, 1000), 0);
	usleep(600 * 1000);
	ck_assert_int_eq(rg_audit_flush(a, 0), 0);
	if (c >= 0)
		close(c);
	close(lfd); /* 3..7 unread */

	struct reader r; /* restarted, same path */
	if (dgram)
		reader_init(&r, -1, dgram_listen(path), true);
	else
		reader_init(&r, stream_listen(path), -1, false);
	reader_start(&r);
	for (int i = 8; i < 12; i++) {
		int rc = emit_q(a, i);
		ck_assert_msg(rc == 0 || rc == 1, "record %d: rc %d", i, rc);
	}
	ck_assert_int_eq(rg_audit_flush(a, 5000), 0);
	ck_assert(reader_wait_for(&r, "n='11'", 5000));
	reader_stop(&r); /* closes r.fd */
	check_resent(r.buf, 3, 11);
	free(r.buf);
	if (r.lfd >= 0)
		close(r.lfd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

/* A datagram receiver takes 0..2 without reading them and goes away; 3..5
 * go to the spool.  The sink, freed without waiting (as at a reload), puts
 * 0..2 back in FRONT of the spool: the next sink on it sends 0..5 in order. */
START_TEST(test_records_in_memory_go_back_in_front_of_the_spool)
{
	mk_tmpdir();
	char path[128], target[140], spool[128];
	snprintf(path, sizeof path, "%s/dgram.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool", tmpdir);
	int fd = dgram_listen(path);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(emit_q(a, i), 0);
	close(fd); /* 0..2 unread */
	for (int i = 3; i < 6; i++)
		ck_assert_int_eq(emit_q(a, i), 1);
	rg_audit_free_wait(a, 0);

	fd = dgram_listen(path);
	struct rg_audit *b = sink(target, RG_AUDIT_RFC3164, spool);
	ck_assert_int_eq(rg_audit_flush(b, 5000), 0);
	for (int i = 0; i < 6; i++) {
		char *r = dgram_read(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(rec_n(r) == i, "n=%d where %d was due: %s", rec_n(r), i, r);
	}
	char *r = dgram_read(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, ": audit.replayed;") != NULL, "%s", r);
	close(fd);
	rg_audit_free(b);
	rm_tmpdir();
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("format");
	tcase_add_loop_test(tc, test_sanitize_renders_unsafe_bytes_as_hex_escapes, 0,
			    sizeof sanitize_cases / sizeof sanitize_cases[0]);
	tcase_add_test(tc, test_sanitize_truncates_at_escape_and_character_boundaries);
	tcase_add_test(tc, test_rfc3164_record_is_header_then_evt_format_text);
	tcase_add_test(tc, test_rfc5424_record_carries_fields_as_escaped_structured_data);
	tcase_add_test(tc, test_seq_increases_across_sinks_of_one_process);
	tcase_add_test(tc, test_invalid_targets_are_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("delivery");
	tcase_add_test(tc, test_unreachable_target_without_spool_loses_the_record);
	tcase_add_test(tc, test_spooled_records_are_replayed_in_order_before_new_ones);
	tcase_add_test(tc, test_full_spool_loses_with_a_clear_error_and_reports_the_loss);
	suite_add_tcase(s, tc);
	tc = tcase_create("stalled-target");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_stream_target_that_stops_reading_never_holds_up_emit);
	tcase_add_test(tc, test_tcp_target_that_stops_reading_never_holds_up_emit);
	tcase_add_test(tc, test_datagram_target_with_a_full_queue_never_holds_up_emit);
	tcase_add_test(tc, test_emit_to_an_absent_target_does_not_wait_and_flush_does);
	suite_add_tcase(s, tc);
	tc = tcase_create("at-least-once");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_receiver_gone_with_records_unread_gets_them_again, 0, 2);
	tcase_add_test(tc, test_records_in_memory_go_back_in_front_of_the_spool);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(audit_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
