/*
 * audit.c - audit records: libevtlog evt_format() for the text, rotagate's
 * own non-blocking sender for delivery, a flock()ed spool for what could not
 * be delivered.
 *
 * Never libevtlog's own logging calls nor libc's syslog(3) family: they take
 * over the host process's syslog identity, and libevtlog's crash the host
 * after dlclose.
 *
 * No thread of our own (ARCHITECTURE.md: none is started inside the host):
 * delivery runs on the callers' threads, in steps that never wait.
 *
 * One mutex per sink (a->mu) covers formatting (the EVTCONTEXT is not
 * thread-safe), seq, the socket, the records in memory and this process's
 * use of the spool file.  Under it, every step is non-blocking and bounded:
 * a non-blocking sendmsg(), a pwrite() to the spool, a replay slice of at
 * most RG_AUDIT_SLICE_US.  So a decision waits at most for one other
 * caller's step, never for the target.
 *
 * Order.  What is to be delivered is, oldest first:
 *   q        records written to the socket (in full or begun) and not yet
 *            known read by the receiver, and records to be sent again on
 *            the next connection because the receiver went away;
 *   spool    records that could not be sent when they were made (and
 *            other processes' on the same spool), appended at the end and
 *            replayed from the head;
 *   backlog  records made since, not yet written nor spooled.
 * A new record joins the backlog; rg_audit_pump() then moves things
 * forward: q first, then a slice of the spool, then the backlog, and what
 * of the backlog is still there goes to the end of the spool (so that it
 * survives the process).  Everything of one process leaves in seq order.
 *
 * At-least-once.  A record written to the socket stays in q until the
 * receiver is known to have read it: SIOCOUTQ says how many bytes of what
 * this socket sent are still queued (unix: in the receiver's receive
 * queue, counted at least as large as their payload; tcp: not yet
 * acknowledged), so every record older than the newest ones whose sizes add
 * up to more than that has been read.  A sample counts only when the
 * receiver is known to be there after it (a write that succeeds, no
 * hang-up on a stream, the same datagram socket still bound to the path):
 * a receiver that closes throws its queue away, which looks the same as
 * reading it.  A record read is kept RG_AUDIT_GRACE_MS longer (the receiver
 * may have read it and not yet written it out).  When the receiver is found
 * gone, q is sent again first on the next connection.  So a receiver that
 * stops loses nothing, and what it had already written out in its last
 * moments arrives twice, byte for byte the same: (host, pid, seq) is the
 * key, and conf/syslog-ng/rotagate.conf drops such copies.
 *
 * Time stamps are computed without gmtime_r()/localtime_r() per record
 * (glibc's time-zone lock; see rg_cal_utc_tm).
 */
#define _GNU_SOURCE
#include "audit.h"
#include "calendar.h"
#include "fsutil.h"

#include <errno.h>
#include <evtlog.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define RG_AUDIT_DEVLOG "/dev/log"
#define RG_AUDIT_BACKOFF_MIN_MS 1     /* reconnect: first retry, doubling ... */
#define RG_AUDIT_BACKOFF_MAX_MS 100   /* ... up to this */
#define RG_AUDIT_GRACE_MS 100         /* a record read is kept until the receiver outlived it by this */
#define RG_AUDIT_SLICE_US 500         /* one caller's delivery step, at most */
#define RG_AUDIT_SLICE_RECORDS 128    /* ... and at most this many records replayed */
#define RG_AUDIT_QUEUE_MAX (16u * 1024 * 1024) /* q: records read, kept for the grace period */
#define RG_AUDIT_NOSPOOL_MAX (1024u * 1024)    /* backlog kept in memory (no spool, or locked) */
#define RG_AUDIT_SPOOL_LOCK_TRIES 10  /* flock(LOCK_NB) tries, 100 us apart */
#define RG_AUDIT_SPOOL_RECHECK_MS 100 /* look at a spool believed empty at most this often */
#define RG_AUDIT_SPOOL_NAME "audit.spool"
#define RG_AUDIT_SPOOL_MAGIC "RGSPOOL1"
#define RG_AUDIT_SPOOL_HDR 32         /* magic[8] head[8] replayed[8] reserved[8] */
#define RG_AUDIT_SPOOL_LINE_MAX 65536
#define RG_AUDIT_KEY_MAX 32           /* RFC 5424 PARAM-NAME */
#define RG_AUDIT_IDENT_MAX 48         /* RFC 5424 APP-NAME */

enum rg_audit_kind { RG_AUDIT_T_UNIX, RG_AUDIT_T_TCP };

/* A record in memory.  In q (oldest first): [read, kept for the grace
 * period] [q_unread: written, not known read] [q_next: the frame begun, or
 * the first to be sent again] [to be sent again].  In the backlog: not
 * written yet (flen 0). */
struct rg_audit_rec {
	struct rg_audit_rec *next;
	char *msg;          /* without framing */
	size_t mlen;
	uint64_t seq;       /* this process's; 0 for a record replayed from the spool */
	uint64_t qid;       /* place in q, increasing */
	size_t flen;        /* its frame on the current connection; 0: not begun */
	size_t off;         /* bytes of the frame written */
	size_t grew;        /* how much the socket's queue grew with its writes */
	size_t acct;        /* what it takes in the queue, at least: max(off, grew) */
	int64_t read_ms;    /* found read by the receiver (0: not known) */
	char pre[24];       /* tcp: "LEN " */
	unsigned char plen;
	bool nl;            /* unix stream: newline framing */
	uint64_t r_count, r_first, r_last; /* audit.lost: what it reports */
};

struct rg_audit {
	pthread_mutex_t mu;
	pid_t pid;          /* the process that made the sink: a fork()ed child never uses it */
	enum rg_audit_kind kind;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *host, *port;
	struct addrinfo *ai;
	int fd;
	int stype;          /* SOCK_DGRAM or SOCK_STREAM once connected */
	bool connecting;    /* tcp connect in progress */
	bool broken;        /* the receiver went away: reconnect, send q again */
	bool conn_wrote;    /* a write succeeded on this connection */
	bool no_outq;       /* SIOCOUTQ unsupported: a record written counts as read */
	int64_t retry_ms;   /* no connect before this (tcp) */
	int64_t alive_ms;   /* the receiver was last known there */
	int backoff_ms;
	dev_t peer_dev;     /* unix: the socket file connected to */
	ino_t peer_ino;
	enum rg_audit_format format;
	int facility;
	char ident[RG_AUDIT_IDENT_MAX + 1];
	char hostname[256];
	EVTCONTEXT *ctx;
	/* q (see above) */
	struct rg_audit_rec *q_head, *q_tail;
	struct rg_audit_rec *q_unread; /* first one not known read */
	struct rg_audit_rec *q_next;   /* first one not completely written */
	size_t q_bytes;
	uint64_t q_wsum;    /* acct of q_unread .. q_next (included) */
	uint64_t q_qid;
	/* the backlog */
	struct rg_audit_rec *b_head, *b_tail;
	size_t b_bytes;
	/* the record rg_audit_emit() is placing, and what became of it:
	 * 0 written, 1 spooled or waiting in memory, -1 lost */
	struct rg_audit_rec *cur;
	int cur_rc;
	/* the spool */
	char *spool_dir, *spool_path;
	size_t spool_max;
	int spool_fd;
	dev_t spool_dev;
	ino_t spool_ino;
	char *rbuf;         /* replay buffer */
	/* "The spool may hold records": set when this sink appends (and at
	 * start), cleared when a replay or a look at the file finds it empty.
	 * Other processes append to the same file, so while it is clear the
	 * file is still looked at every RG_AUDIT_SPOOL_RECHECK_MS. */
	bool spool_maybe;
	int64_t spool_checked_ms;
	uint64_t lost, lost_first, lost_last;
	char config_sha[72]; /* last one a caller passed: the sink's own records carry it too */
	char err[256];       /* why the last record not delivered at once was spooled or lost */
	char detail[256];    /* the latest delivery problem */
};

/* one counter for the whole process: all sinks, all threads */
static atomic_uint_fast64_t rg_audit_seq;

/* ------------------------------------------------------------------ */
/* sanitising                                                          */

/* Length of the well-formed UTF-8 sequence at s (2..4), 0 if there is none. */
static size_t rg_audit_utf8_len(const unsigned char *s, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		*cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		*cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		unsigned char t = s[i];
		if (t < (i == 1 ? lo : 0x80) || t > (i == 1 ? hi : 0xbf))
			return 0;
		*cp = (*cp << 6) | (t & 0x3f);
	}
	return n;
}

/* Code points that are invisible or reorder text: rendered escaped so that
 * what an auditor reads is what was sent. */
static bool rg_audit_cp_hidden(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) ||       /* C1 controls */
	       cp == 0xad || cp == 0x61c ||          /* soft hyphen, arabic letter mark */
	       (cp >= 0x200b && cp <= 0x200f) ||     /* zero width, LRM, RLM */
	       (cp >= 0x2028 && cp <= 0x202e) ||     /* separators, bidi embeddings */
	       (cp >= 0x2060 && cp <= 0x206f) ||     /* word joiner, bidi isolates */
	       cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb);
}

void rg_audit_sanitize(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(in ? in : "");
	size_t o = 0;

	if (!out || len == 0)
		return;
	while (*s) {
		uint32_t cp = 0;
		size_t n = 1;
		bool esc;

		if (*s >= 0x20 && *s < 0x7f)
			esc = *s == '\'' || *s == '"' || *s == '\\';
		else if (*s >= 0x80 && (n = rg_audit_utf8_len(s, &cp)) > 0)
			esc = rg_audit_cp_hidden(cp);
		else {
			n = 1; /* control byte, DEL or a byte that is not UTF-8 */
			esc = true;
		}
		size_t need = esc ? 4 * n : n;
		if (o + need + 1 > len)
			break;
		for (size_t i = 0; i < n; i++) {
			if (esc) {
				out[o++] = '\\';
				out[o++] = 'x';
				out[o++] = hex[s[i] >> 4];
				out[o++] = hex[s[i] & 0xf];
			} else {
				out[o++] = (char)s[i];
			}
		}
		s += n;
	}
	out[o] = '\0';
}

/* keys: [A-Za-z0-9_-], at most 32; events also allow '.' */
static void rg_audit_name(const char *in, char *out, size_t len, bool dots, const char *fallback)
{
	size_t o = 0;
	for (const char *p = in ? in : ""; *p && o + 1 < len && o < RG_AUDIT_KEY_MAX; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || c == '-' || (dots && c == '.');
		out[o++] = ok ? c : '_';
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, len, "%s", fallback);
}

/* ------------------------------------------------------------------ */
/* formatting                                                          */

struct rg_audit_field {
	char key[RG_AUDIT_KEY_MAX + 1];
	const char *value; /* sanitised copy, or the sink's own text */
};

/* Room rg_audit_sanitize() needs for `v` uncut: each byte becomes at most a
 * 4-byte \xHH escape; longer values are cut at RG_AUDIT_VALUE_MAX anyway. */
static size_t rg_audit_value_room(const char *v)
{
	size_t n = v ? strnlen(v, RG_AUDIT_VALUE_MAX / 4 + 1) : 0;
	return n > RG_AUDIT_VALUE_MAX / 4 ? RG_AUDIT_VALUE_MAX + 1 : 4 * n + 1;
}

static bool rg_audit_reserved(const char *key)
{
	return strcmp(key, "event") == 0 || strcmp(key, "seq") == 0 || strcmp(key, "pid") == 0;
}

/* Growable string; on allocation failure `failed` is set and text dropped. */
struct rg_audit_buf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void rg_audit_buf_add(struct rg_audit_buf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void rg_audit_buf_printf(struct rg_audit_buf *b,
								       const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		b->failed = true;
		return;
	}
	rg_audit_buf_add(b, tmp, (size_t)n);
}

/* RFC 5424 PARAM-VALUE: escape '"', '\' and ']' */
static void rg_audit_buf_sdvalue(struct rg_audit_buf *b, const char *v)
{
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\' || *p == ']')
			rg_audit_buf_add(b, "\\", 1);
		rg_audit_buf_add(b, p, 1);
	}
}

/* The local time's offset from UTC at `t`: localtime_r() once per quarter
 * of an hour for the whole process (time-zone changes happen on such
 * boundaries), not per record; see rg_cal_utc_tm(). */
static long rg_audit_utcoff(time_t t)
{
	static _Atomic uint64_t cache; /* quarter-hour index << 32 | (offset + 2^31) */
	uint64_t c = atomic_load(&cache);
	uint64_t slot = (uint64_t)(t / 900) & 0xffffffffu;
	if (c != 0 && c >> 32 == slot)
		return (long)(int64_t)(c & 0xffffffffu) - 0x80000000L;
	struct tm tm;
	long off = localtime_r(&t, &tm) ? tm.tm_gmtoff : 0;
	atomic_store(&cache, slot << 32 | (uint64_t)(off + 0x80000000L));
	return off;
}

static void rg_audit_header_3164(struct rg_audit *a, struct rg_audit_buf *b, int pri,
				 const struct timespec *now, pid_t pid)
{
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	rg_cal_utc_tm((int64_t)now->tv_sec + rg_audit_utcoff(now->tv_sec), &tm);
	rg_audit_buf_printf(b, "<%d>%s %2d %02d:%02d:%02d ", pri, months[tm.tm_mon % 12], tm.tm_mday,
			    tm.tm_hour, tm.tm_min, tm.tm_sec);
	/* like glibc's syslog(): no HOSTNAME to a local socket; the network gets one */
	if (a->kind == RG_AUDIT_T_TCP)
		rg_audit_buf_printf(b, "%s ", a->hostname);
	rg_audit_buf_printf(b, "%s[%ld]: ", a->ident, (long)pid);
}

static void rg_audit_header_5424(struct rg_audit *a, struct rg_audit_buf *b, int pri,
				 const struct timespec *now, pid_t pid, const char *event,
				 const struct rg_audit_field *f, size_t nf)
{
	struct tm tm;
	rg_cal_utc_tm((int64_t)now->tv_sec, &tm);
	rg_audit_buf_printf(b, "<%d>1 %04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s %s %ld %s [%s", pri,
			    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			    tm.tm_sec, (long)(now->tv_nsec / 1000), a->hostname, a->ident, (long)pid,
			    event, RG_AUDIT_SD_ID);
	for (size_t i = 0; i < nf; i++) {
		rg_audit_buf_printf(b, " %s=\"", f[i].key);
		rg_audit_buf_sdvalue(b, f[i].value);
		rg_audit_buf_add(b, "\"", 1);
	}
	rg_audit_buf_add(b, "] ", 2);
}

/* The whole message (header + evt_format text), without transport framing.
 * Takes the next seq.  Caller holds a->mu.  NULL on ENOMEM. */
static char *rg_audit_build(struct rg_audit *a, int severity, const char *event_in,
			    const struct rg_kv *fields, size_t nfields, uint64_t *seq_out)
{
	char event[RG_AUDIT_KEY_MAX + 1];
	char seq[24], pid_s[24];
	struct rg_audit_buf b = { 0 };
	struct rg_audit_field *f = NULL;
	size_t nf = 0;
	char *text = NULL;
	EVTREC *rec = NULL;
	pid_t pid = getpid();
	struct timespec now;

	rg_audit_name(event_in, event, sizeof event, true, "unknown");
	/* one block: the field table, then the sanitised values back to back */
	size_t room = 0;
	for (size_t i = 0; i < nfields; i++)
		room += rg_audit_value_room(fields[i].value);
	f = malloc((nfields + 4) * sizeof *f + room);
	if (!f)
		goto out;
	char *vals = (char *)(f + nfields + 4);
	uint64_t n = atomic_fetch_add(&rg_audit_seq, 1) + 1;
	if (seq_out)
		*seq_out = n;
	snprintf(seq, sizeof seq, "%llu", (unsigned long long)n);
	snprintf(pid_s, sizeof pid_s, "%ld", (long)pid);
	snprintf(f[nf].key, sizeof f[nf].key, "event");
	f[nf++].value = event;
	snprintf(f[nf].key, sizeof f[nf].key, "seq");
	f[nf++].value = seq;
	snprintf(f[nf].key, sizeof f[nf].key, "pid");
	f[nf++].value = pid_s;
	for (size_t i = 0; i < nfields; i++) {
		rg_audit_name(fields[i].key, f[nf].key, sizeof f[nf].key, false, "field");
		if (rg_audit_reserved(f[nf].key))
			continue; /* the sink's own fields cannot be overridden */
		size_t vroom = rg_audit_value_room(fields[i].value);
		rg_audit_sanitize(fields[i].value, vals, vroom);
		size_t vlen = strlen(vals);
		if (strcmp(f[nf].key, "config_sha") == 0 && vlen < sizeof a->config_sha)
			memcpy(a->config_sha, vals, vlen + 1);
		f[nf++].value = vals;
		vals += vroom;
	}
	bool has_sha = false;
	for (size_t i = 0; i < nf; i++)
		has_sha = has_sha || strcmp(f[i].key, "config_sha") == 0;
	if (!has_sha && a->config_sha[0]) {
		snprintf(f[nf].key, sizeof f[nf].key, "config_sha");
		f[nf++].value = a->config_sha;
	}

	rec = evt_rec_init(a->ctx, severity & LOG_PRIMASK, event);
	if (!rec)
		goto out;
	for (size_t i = 0; i < nf; i++) {
		EVTTAG *t = evt_tag_str(f[i].key, f[i].value);
		if (!t)
			goto out;
		evt_rec_add_tag(rec, t);
	}
	text = evt_format(rec);
	if (!text)
		goto out;

	int pri = (a->facility & LOG_FACMASK) | (severity & LOG_PRIMASK);
	clock_gettime(CLOCK_REALTIME, &now);
	if (a->format == RG_AUDIT_RFC5424)
		rg_audit_header_5424(a, &b, pri, &now, pid, event, f, nf);
	else
		rg_audit_header_3164(a, &b, pri, &now, pid);
	rg_audit_buf_add(&b, text, strlen(text));
	if (b.failed) {
		free(b.s);
		b.s = NULL;
	}
out:
	free(text);
	if (rec)
		evt_rec_free(rec);
	free(f);
	return b.s;
}


/* ------------------------------------------------------------------ */
/* problems and losses (a->mu held)                                    */

static int64_t rg_audit_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t rg_audit_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The latest delivery problem. */
__attribute__((format(printf, 2, 3))) static void rg_audit_seterr(struct rg_audit *a,
								   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof a->detail, fmt, ap);
	va_end(ap);
}

/* Why the record being placed was not sent at once: what
 * rg_audit_last_error() tells, not overwritten by later retries. */
static void rg_audit_why(struct rg_audit *a)
{
	snprintf(a->err, sizeof a->err, "%s", a->detail);
}

/* Count records that could not be kept (first, last: their seqs, 0 when
 * not ours, e.g. replayed from the spool). */
static void rg_audit_count_lost_range(struct rg_audit *a, uint64_t n, uint64_t first,
				      uint64_t last)
{
	if (n == 0)
		return;
	if (first && (a->lost_first == 0 || first < a->lost_first))
		a->lost_first = first;
	if (last > a->lost_last)
		a->lost_last = last;
	a->lost += n;
}

/* ------------------------------------------------------------------ */
/* records in memory (a->mu held)                                      */

static struct rg_audit_rec *rg_audit_rec_new(char *msg, uint64_t seq)
{
	struct rg_audit_rec *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->msg = msg;
	r->mlen = strlen(msg);
	r->seq = seq;
	return r;
}

static void rg_audit_rec_free(struct rg_audit *a, struct rg_audit_rec *r)
{
	if (!r)
		return;
	if (a->cur == r)
		a->cur = NULL;
	free(r->msg);
	free(r);
}

/* A record that will not be delivered (an audit.lost report: what it
 * reported is lost still, and to be reported again). */
static void rg_audit_rec_lost(struct rg_audit *a, struct rg_audit_rec *r)
{
	rg_audit_count_lost_range(a, 1, r->seq, r->seq);
	rg_audit_count_lost_range(a, r->r_count, r->r_first, r->r_last);
	if (a->cur == r) {
		a->cur_rc = -1;
		rg_audit_why(a);
	}
	rg_audit_rec_free(a, r);
}

static void rg_audit_q_mark_read(struct rg_audit *a, uint64_t cut, int64_t now);

/* Add r (written in full or in part, nothing ahead of it in q unwritten)
 * at the end of q. */
static void rg_audit_q_link(struct rg_audit *a, struct rg_audit_rec *r)
{
	r->next = NULL;
	r->qid = ++a->q_qid;
	if (a->q_tail)
		a->q_tail->next = r;
	else
		a->q_head = r;
	a->q_tail = r;
	a->q_bytes += r->mlen + 1;
	if (!a->q_unread)
		a->q_unread = r;
	a->q_wsum += r->acct;
	if (!a->q_next && (r->flen == 0 || r->off < r->flen))
		a->q_next = r;
	if (a->no_outq && r->flen > 0 && r->off == r->flen && !a->q_next)
		rg_audit_q_mark_read(a, r->qid, rg_audit_now_ms()); /* no way to know */
	if (a->cur == r)
		a->cur_rc = 0;
}

static void rg_audit_q_pop(struct rg_audit *a)
{
	struct rg_audit_rec *r = a->q_head;
	a->q_head = r->next;
	if (!a->q_head)
		a->q_tail = NULL;
	a->q_bytes -= r->mlen + 1;
	rg_audit_rec_free(a, r);
}

/* Which of the records written and not known read a sample says the
 * receiver has read (the qid of the newest, 0 for none).  `outq` is what is
 * still queued; a record takes at least its acct there (its payload, and
 * at least what the queue grew by when it was written: the receiver can
 * only have made that smaller).  A record is read, all of it, when the
 * newer ones alone take at least what is queued. */
static uint64_t rg_audit_q_read_cut(struct rg_audit *a, int outq)
{
	uint64_t rest = a->q_wsum, n = outq > 0 ? (uint64_t)outq : 0, cut = 0;
	for (struct rg_audit_rec *r = a->q_unread; r && r != a->q_next; r = r->next) {
		if (rest - r->acct < n)
			break; /* some of r may still be queued */
		cut = r->qid;
		rest -= r->acct;
	}
	return cut;
}

static void rg_audit_q_mark_read(struct rg_audit *a, uint64_t cut, int64_t now)
{
	while (a->q_unread && a->q_unread != a->q_next && a->q_unread->qid <= cut) {
		a->q_unread->read_ms = now;
		a->q_wsum -= a->q_unread->acct;
		a->q_unread = a->q_unread->next;
	}
}

/* The receiver was there at `alive_ms`: forget the records it had read at
 * least RG_AUDIT_GRACE_MS before. */
static void rg_audit_q_prune(struct rg_audit *a, int64_t alive_ms)
{
	while (a->q_head && a->q_head != a->q_unread &&
	       (a->q_head->read_ms + RG_AUDIT_GRACE_MS <= alive_ms || a->q_bytes > RG_AUDIT_QUEUE_MAX))
		rg_audit_q_pop(a);
}

/* The connection is gone: everything in q is to be sent again. */
static void rg_audit_q_requeue(struct rg_audit *a)
{
	for (struct rg_audit_rec *r = a->q_head; r; r = r->next) {
		r->flen = 0;
		r->off = r->grew = r->acct = 0;
		r->read_ms = 0;
	}
	a->q_next = a->q_unread = a->q_head;
	a->q_wsum = 0;
}

/* Take the records from `from` to the end out of q (a list, oldest first). */
static struct rg_audit_rec *rg_audit_q_cut(struct rg_audit *a, struct rg_audit_rec *from)
{
	if (!from)
		return NULL;
	struct rg_audit_rec *prev = NULL;
	for (struct rg_audit_rec *r = a->q_head; r != from; r = r->next)
		prev = r;
	bool unread_cut = false, next_cut = false;
	for (struct rg_audit_rec *r = from; r; r = r->next)
		unread_cut = unread_cut || r == a->q_unread;
	/* q_wsum counts from q_unread on (what is after q_next counts 0) */
	bool counted = a->q_unread && !unread_cut;
	for (struct rg_audit_rec *r = from; r; r = r->next) {
		a->q_bytes -= r->mlen + 1;
		counted = counted || r == a->q_unread;
		if (counted)
			a->q_wsum -= r->acct;
		next_cut = next_cut || r == a->q_next;
	}
	if (prev)
		prev->next = NULL;
	else
		a->q_head = NULL;
	a->q_tail = prev;
	if (unread_cut)
		a->q_unread = NULL;
	if (next_cut)
		a->q_next = NULL;
	return from;
}

static void rg_audit_list_free(struct rg_audit *a, struct rg_audit_rec *r)
{
	while (r) {
		struct rg_audit_rec *n = r->next;
		rg_audit_rec_free(a, r);
		r = n;
	}
}

static void rg_audit_b_add(struct rg_audit *a, struct rg_audit_rec *r)
{
	r->next = NULL;
	if (a->b_tail)
		a->b_tail->next = r;
	else
		a->b_head = r;
	a->b_tail = r;
	a->b_bytes += r->mlen + 1;
}

static struct rg_audit_rec *rg_audit_b_take(struct rg_audit *a)
{
	struct rg_audit_rec *r = a->b_head;
	a->b_head = r->next;
	if (!a->b_head)
		a->b_tail = NULL;
	a->b_bytes -= r->mlen + 1;
	r->next = NULL;
	return r;
}

/* ------------------------------------------------------------------ */
/* transport (a->mu held)                                              */

static bool rg_audit_usable(const struct rg_audit *a)
{
	return a->fd >= 0 && !a->connecting && !a->broken;
}

/* A unix socket is tried again on the next call (connect() to a path
 * that is not there costs microseconds); a tcp target with backoff. */
static void rg_audit_backoff(struct rg_audit *a, int64_t now)
{
	if (a->kind == RG_AUDIT_T_UNIX)
		return;
	a->retry_ms = now + a->backoff_ms;
	a->backoff_ms = a->backoff_ms >= RG_AUDIT_BACKOFF_MAX_MS / 2 ? RG_AUDIT_BACKOFF_MAX_MS
								     : a->backoff_ms * 2;
}

static void rg_audit_connected(struct rg_audit *a)
{
	a->broken = false;
	a->conn_wrote = false;
}

/* Close the connection; what was in flight is sent again on the next: at
 * once (a restarted receiver is usually back at once), unless this one took
 * nothing (then with backoff, not in a loop). */
static void rg_audit_disconnect(struct rg_audit *a, int64_t now)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	a->connecting = false;
	a->broken = false;
	rg_audit_q_prune(a, a->alive_ms); /* read long enough before it was last seen */
	rg_audit_q_requeue(a);
	if (!a->conn_wrote)
		rg_audit_backoff(a, now);
	else if (a->retry_ms < now)
		a->retry_ms = now;
}

static int rg_audit_connect_unix(struct rg_audit *a, int64_t now)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };

	memcpy(sa.sun_path, a->unix_path, sizeof sa.sun_path);
	for (size_t i = 0; i < 2; i++) {
		struct stat before, after;
		int fd = socket(AF_UNIX, types[i] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rg_audit_seterr(a, "audit: socket: %s", strerror(errno));
			break;
		}
		/* the socket file before and after: the receiver connected to is
		 * the one bound to it (a datagram receiver's liveness is checked
		 * by that file later) */
		bool known = stat(a->unix_path, &before) == 0;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			if (!known || stat(a->unix_path, &after) != 0 || after.st_dev != before.st_dev ||
			    after.st_ino != before.st_ino) {
				close(fd); /* replaced meanwhile: try again shortly */
				rg_audit_seterr(a, "audit: %s changed while connecting", a->unix_path);
				break;
			}
			a->fd = fd;
			a->stype = types[i];
			a->peer_dev = after.st_dev;
			a->peer_ino = after.st_ino;
			rg_audit_connected(a);
			return 0;
		}
		int e = errno;
		close(fd);
		if (e != EPROTOTYPE) { /* EPROTOTYPE: the peer is a stream socket */
			rg_audit_seterr(a, "audit: connect %s: %s", a->unix_path,
					e == EAGAIN ? "busy" : strerror(e));
			break;
		}
	}
	rg_audit_backoff(a, now);
	return -1;
}

/* Finish a tcp connect in progress, if it is done (never waits). */
static void rg_audit_connect_check(struct rg_audit *a, int64_t now)
{
	struct pollfd p = { .fd = a->fd, .events = POLLOUT };
	if (poll(&p, 1, 0) <= 0) {
		rg_audit_seterr(a, "audit: connect %s:%s: in progress", a->host, a->port);
		return;
	}
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		rg_audit_seterr(a, "audit: connect %s:%s: %s", a->host, a->port, strerror(err));
		close(a->fd);
		a->fd = -1;
		a->connecting = false;
		rg_audit_backoff(a, now);
		return;
	}
	a->connecting = false;
	rg_audit_connected(a);
}

/* Start a tcp connect (a->ai resolved); it completes in the background. */
static int rg_audit_connect_tcp(struct rg_audit *a, int64_t now)
{
	int fd = socket(a->ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rg_audit_seterr(a, "audit: socket: %s", strerror(errno));
		rg_audit_backoff(a, now);
		return -1;
	}
	a->stype = SOCK_STREAM;
	if (connect(fd, a->ai->ai_addr, a->ai->ai_addrlen) == 0) {
		a->fd = fd;
		rg_audit_connected(a);
		return 0;
	}
	if (errno != EINPROGRESS) {
		rg_audit_seterr(a, "audit: connect %s:%s: %s", a->host, a->port, strerror(errno));
		close(fd);
		rg_audit_backoff(a, now);
		return -1;
	}
	a->fd = fd;
	a->connecting = true;
	rg_audit_connect_check(a, now); /* on loopback it is usually done already */
	return a->fd >= 0 ? 0 : -1;
}

static void rg_audit_connect(struct rg_audit *a, int64_t now)
{
	if (a->kind == RG_AUDIT_T_UNIX)
		rg_audit_connect_unix(a, now);
	else if (a->ai)
		rg_audit_connect_tcp(a, now);
	else
		rg_audit_seterr(a, "audit: %s not resolved", a->host);
}

/* A stream whose peer has gone (syslog-ng stopped or restarted) still
 * accepts a write or two into the void: look before writing. */
static bool rg_audit_peer_gone(struct rg_audit *a)
{
	struct pollfd p = { .fd = a->fd, .events = POLLIN | POLLRDHUP };
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
		return true;
	char c;
	ssize_t n = recv(a->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Is the datagram socket bound to the path still the one we connected to,
 * and there?  1 yes, 0 no, -1 cannot tell.  Non-blocking. */
static int rg_audit_dgram_alive(struct rg_audit *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (stat(a->unix_path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (st.st_dev != a->peer_dev || st.st_ino != a->peer_ino)
		return 0; /* replaced: a restarted receiver */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(sa.sun_path, a->unix_path, sizeof sa.sun_path);
	int rc = 1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		rc = errno == ECONNREFUSED || errno == ENOENT ? 0 : -1;
	close(fd);
	return rc;
}

static void rg_audit_frame(struct rg_audit *a, struct rg_audit_rec *r)
{
	r->plen = 0;
	r->nl = false;
	if (a->kind == RG_AUDIT_T_TCP) /* RFC 6587 octet counting */
		r->plen = (unsigned char)snprintf(r->pre, sizeof r->pre, "%zu ", r->mlen);
	else if (a->stype == SOCK_STREAM)
		r->nl = true; /* newline framing on a unix stream */
	r->flen = r->plen + r->mlen + (r->nl ? 1 : 0);
	r->off = r->grew = r->acct = 0;
}

/* Write what is left of r's frame now, without waiting: r is a->q_next
 * (`linked`), or a record nothing is ahead of.  Returns the bytes written
 * (> 0), 0 when the socket takes nothing now, -1 when the connection is
 * broken.  The socket is sampled first: a write that succeeds shows the
 * receiver there, so what the sample says it has read, it has. */
static ssize_t rg_audit_write(struct rg_audit *a, struct rg_audit_rec *r, bool linked, int64_t now)
{
	static const char newline[] = "\n";
	struct iovec iov[3];
	int niov = 0;
	uint64_t cut = 0;
	int outq = 0, after = 0;
	bool sampled = false;

	if (a->stype == SOCK_STREAM && rg_audit_peer_gone(a)) {
		rg_audit_seterr(a, "audit: the receiver closed the connection");
		a->broken = true;
		return -1;
	}
	if (!a->no_outq) {
		if (ioctl(a->fd, SIOCOUTQ, &outq) == 0) {
			cut = rg_audit_q_read_cut(a, outq);
			sampled = true;
		} else if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP) {
			a->no_outq = true;
		}
	}
	if (r->flen == 0)
		rg_audit_frame(a, r);
	const struct {
		const char *p;
		size_t n;
	} part[3] = { { r->pre, r->plen }, { r->msg, r->mlen }, { newline, r->nl ? 1u : 0u } };
	size_t skip = r->off;
	for (size_t i = 0; i < 3; i++) {
		if (skip >= part[i].n) {
			skip -= part[i].n;
			continue;
		}
		iov[niov].iov_base = (void *)(part[i].p + skip);
		iov[niov++].iov_len = part[i].n - skip;
		skip = 0;
	}
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
	ssize_t w;
	do
		w = sendmsg(a->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w <= 0) {
		if (w == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			rg_audit_seterr(a, "audit: target busy (socket full)");
			return 0;
		}
		rg_audit_seterr(a, "audit: send: %s", strerror(errno));
		a->broken = true;
		return -1;
	}
	rg_audit_q_mark_read(a, cut, now);
	a->alive_ms = now;
	if (!a->conn_wrote) {
		a->conn_wrote = true;
		a->backoff_ms = RG_AUDIT_BACKOFF_MIN_MS;
	}
	size_t acct0 = r->acct;
	r->off += (size_t)w;
	if (sampled && ioctl(a->fd, SIOCOUTQ, &after) == 0 && after > outq)
		r->grew += (size_t)(after - outq);
	r->acct = r->off > r->grew ? r->off : r->grew;
	if (linked) {
		a->q_wsum += r->acct - acct0;
		if (r->off == r->flen)
			a->q_next = r->next;
	}
	if (a->no_outq) /* no way to know: what is written counts as read */
		rg_audit_q_mark_read(a, r->off == r->flen ? r->qid : 0, now);
	rg_audit_q_prune(a, now);
	return w;
}

/* Is the receiver still there?  1 yes, 0 gone, -1 cannot tell. */
static int rg_audit_alive(struct rg_audit *a)
{
	if (a->stype == SOCK_STREAM)
		return rg_audit_peer_gone(a) ? 0 : 1;
	return rg_audit_dgram_alive(a);
}

/* No write to sample with: look at the socket.  The receiver read what the
 * sample says if it is still there afterwards, and records it read long
 * enough ago are forgotten; a receiver found gone breaks the connection
 * (and q is sent again). */
static void rg_audit_watch(struct rg_audit *a, int64_t now)
{
	int outq = 0;
	uint64_t cut = 0;

	if (!a->q_head || !rg_audit_usable(a))
		return;
	if (!a->no_outq && a->q_unread != a->q_next && ioctl(a->fd, SIOCOUTQ, &outq) == 0)
		cut = rg_audit_q_read_cut(a, outq);
	bool due = a->q_head != a->q_unread && a->q_head->read_ms + RG_AUDIT_GRACE_MS <= now;
	if (cut == 0 && !due)
		return;
	if (cut == 0 && a->alive_ms >= a->q_head->read_ms + RG_AUDIT_GRACE_MS) {
		rg_audit_q_prune(a, a->alive_ms); /* a write has shown it there since */
		return;
	}
	int alive = rg_audit_alive(a);
	if (alive == 0) {
		rg_audit_seterr(a, "audit: the receiver went away");
		a->broken = true;
	} else if (alive > 0) {
		a->alive_ms = now;
		rg_audit_q_mark_read(a, cut, now);
		rg_audit_q_prune(a, now);
	}
}
/* ------------------------------------------------------------------ */
/* spool                                                               */

struct rg_audit_spool_hdr {
	uint64_t head;     /* offset of the first record not yet replayed */
	uint64_t replayed; /* records replayed since the spool was last empty */
};

static void rg_audit_spool_close(struct rg_audit *a)
{
	if (a->spool_fd >= 0)
		close(a->spool_fd);
	a->spool_fd = -1;
}

/* Open the spool file (creating it with `create`).  0, or -1 when there is
 * none (ENOENT, !create) or it cannot be opened (a->err set).  The directory
 * holds user names: each (re)open makes sure it is private, never repairs it. */
static int rg_audit_spool_open(struct rg_audit *a, bool create)
{
	struct stat st;
	char why[sizeof a->err - 32];

	if (stat(a->spool_path, &st) != 0) {
		rg_audit_spool_close(a);
		if (!create)
			return -1;
	} else if (a->spool_fd >= 0 && st.st_dev == a->spool_dev && st.st_ino == a->spool_ino) {
		return 0;
	}
	rg_audit_spool_close(a);
	if (rg_private_dir(a->spool_dir, why, sizeof why) != 0) {
		rg_audit_seterr(a, "audit: spool directory %s", why);
		return -1;
	}
	int fd = open(a->spool_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rg_audit_seterr(a, "audit: cannot open spool %s: %s", a->spool_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	a->spool_fd = fd;
	a->spool_dev = st.st_dev;
	a->spool_ino = st.st_ino;
	return 0;
}

static void rg_audit_spool_unlock(struct rg_audit *a)
{
	flock(a->spool_fd, LOCK_UN);
}

/* Read (initialising an empty file) the header.  Lock held. */
static int rg_audit_spool_hdr_read(struct rg_audit *a, struct rg_audit_spool_hdr *h, off_t *size)
{
	unsigned char raw[RG_AUDIT_SPOOL_HDR] = { 0 };
	struct stat st;

	if (fstat(a->spool_fd, &st) != 0)
		goto io;
	if (st.st_size == 0) {
		memcpy(raw, RG_AUDIT_SPOOL_MAGIC, 8);
		h->head = RG_AUDIT_SPOOL_HDR;
		h->replayed = 0;
		memcpy(raw + 8, &h->head, 8);
		memcpy(raw + 16, &h->replayed, 8);
		if (pwrite(a->spool_fd, raw, sizeof raw, 0) != (ssize_t)sizeof raw)
			goto io;
		*size = RG_AUDIT_SPOOL_HDR;
		return 0;
	}
	if (pread(a->spool_fd, raw, sizeof raw, 0) != (ssize_t)sizeof raw ||
	    memcmp(raw, RG_AUDIT_SPOOL_MAGIC, 8) != 0) {
		rg_audit_seterr(a, "audit: %s is not a rotagate spool file", a->spool_path);
		return -1;
	}
	memcpy(&h->head, raw + 8, 8);
	memcpy(&h->replayed, raw + 16, 8);
	if (h->head < RG_AUDIT_SPOOL_HDR || h->head > (uint64_t)st.st_size) {
		rg_audit_seterr(a, "audit: spool %s has a bad header", a->spool_path);
		return -1;
	}
	*size = st.st_size;
	return 0;
io:
	rg_audit_seterr(a, "audit: spool %s: %s", a->spool_path, strerror(errno));
	return -1;
}

static int rg_audit_spool_hdr_write(struct rg_audit *a, const struct rg_audit_spool_hdr *h)
{
	unsigned char raw[16];
	memcpy(raw, &h->head, 8);
	memcpy(raw + 8, &h->replayed, 8);
	if (pwrite(a->spool_fd, raw, sizeof raw, 8) != (ssize_t)sizeof raw) {
		rg_audit_seterr(a, "audit: spool %s: %s", a->spool_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Move the records still waiting to the front of the file.  Lock held. */
static int rg_audit_spool_compact(struct rg_audit *a, struct rg_audit_spool_hdr *h, off_t *size)
{
	char buf[RG_AUDIT_SPOOL_LINE_MAX];
	off_t from = (off_t)h->head, to = RG_AUDIT_SPOOL_HDR;
	while (from < *size) {
		ssize_t n = pread(a->spool_fd, buf, sizeof buf, from);
		if (n <= 0 || pwrite(a->spool_fd, buf, (size_t)n, to) != n)
			goto io;
		from += n;
		to += n;
	}
	h->head = RG_AUDIT_SPOOL_HDR;
	if (rg_audit_spool_hdr_write(a, h) != 0 || ftruncate(a->spool_fd, to) != 0)
		goto io;
	*size = to;
	return 0;
io:
	rg_audit_seterr(a, "audit: compacting spool %s: %s", a->spool_path, strerror(errno));
	return -1;
}

/* flock() the open spool, trying `tries` times 100 us apart (another
 * process replays or appends: both hold it only briefly).  0 locked, 1
 * busy, -1 error (a->detail set). */
static int rg_audit_spool_lock(struct rg_audit *a, int tries)
{
	for (int i = 0;; i++) {
		if (flock(a->spool_fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rg_audit_seterr(a, "audit: cannot lock spool %s: %s", a->spool_path,
					strerror(errno));
			return -1;
		}
		if (i + 1 >= tries) {
			rg_audit_seterr(a, "audit: spool %s is locked by another process",
					a->spool_path);
			return 1;
		}
		usleep(100);
	}
}

/* Write `len` bytes (whole lines, in iov[0..niov)) at the end, within the
 * cap.  Lock held.  0, or -1 (full, I/O) with a->detail set. */
static int rg_audit_spool_write_end(struct rg_audit *a, const struct iovec *iov, int niov,
				    size_t len)
{
	struct rg_audit_spool_hdr h;
	off_t size;

	if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
		return -1;
	if ((uint64_t)size - h.head + len > a->spool_max) {
		rg_audit_seterr(a, "audit: spool %s is full (%zu bytes waiting, limit %zu): record lost",
				a->spool_path, (size_t)((uint64_t)size - h.head), a->spool_max);
		return -1;
	}
	if ((uint64_t)size > 2 * (uint64_t)a->spool_max && rg_audit_spool_compact(a, &h, &size) != 0)
		return -1;
	ssize_t n = pwritev(a->spool_fd, iov, niov, size);
	if (n != (ssize_t)len) {
		rg_audit_seterr(a, "audit: writing spool %s: %s", a->spool_path,
				n < 0 ? strerror(errno) : "short write");
		if (ftruncate(a->spool_fd, size) != 0) {
			/* nothing more to do: the header still points before it */
		}
		return -1;
	}
	return 0;
}

/* May the spool hold records?  Per record this costs nothing while the
 * spool is believed empty, and one stat() every RG_AUDIT_SPOOL_RECHECK_MS
 * for what other processes appended. */
static bool rg_audit_spool_pending(struct rg_audit *a, int64_t now)
{
	struct stat st;
	if (!a->spool_path)
		return false;
	if (!a->spool_maybe && now - a->spool_checked_ms < RG_AUDIT_SPOOL_RECHECK_MS)
		return false;
	a->spool_checked_ms = now;
	a->spool_maybe = stat(a->spool_path, &st) == 0 && st.st_size > RG_AUDIT_SPOOL_HDR;
	return a->spool_maybe;
}

/* Put records back at the front of the spool (they are older than what it
 * holds): into the room before the head, or with what waits moved up to make
 * room.  For the records a sink is freed with.  0, or -1 (a->detail set). */
static int rg_audit_spool_save(struct rg_audit *a, const struct rg_audit_rec *from)
{
	size_t total = 0;
	for (const struct rg_audit_rec *r = from; r; r = r->next)
		total += r->mlen + 1;
	if (total == 0)
		return 0;
	if (!a->spool_path) {
		rg_audit_seterr(a, "audit: no spool to keep records in");
		return -1;
	}
	char *buf = malloc(total > 65536 ? total : 65536), *p = buf;
	if (!buf) {
		rg_audit_seterr(a, "audit: out of memory");
		return -1;
	}
	int rc = -1;
	if (rg_audit_spool_open(a, true) == 0 &&
	    rg_audit_spool_lock(a, RG_AUDIT_SPOOL_LOCK_TRIES * 10) == 0) {
		struct rg_audit_spool_hdr h;
		off_t size;
		if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
			goto unlock;
		uint64_t waiting = (uint64_t)size - h.head;
		if (waiting + total > a->spool_max) {
			rg_audit_seterr(a, "audit: spool %s is full (%zu bytes waiting, limit %zu): "
					   "records lost", a->spool_path, (size_t)waiting, a->spool_max);
			goto unlock;
		}
		if (h.head - RG_AUDIT_SPOOL_HDR < total) {
			/* move what waits up, from its end down (the ranges overlap) */
			uint64_t to = RG_AUDIT_SPOOL_HDR + total, left = waiting;
			while (left > 0) {
				size_t chunk = left > 65536 ? 65536 : (size_t)left;
				left -= chunk;
				if (pread(a->spool_fd, buf, chunk, (off_t)(h.head + left)) !=
					    (ssize_t)chunk ||
				    pwrite(a->spool_fd, buf, chunk, (off_t)(to + left)) != (ssize_t)chunk) {
					rg_audit_seterr(a, "audit: moving spool %s: %s", a->spool_path,
							strerror(errno));
					goto unlock;
				}
			}
			h.head = to;
		}
		for (const struct rg_audit_rec *r = from; r; r = r->next) {
			memcpy(p, r->msg, r->mlen);
			p += r->mlen;
			*p++ = '\n';
		}
		if (pwrite(a->spool_fd, buf, total, (off_t)(h.head - total)) != (ssize_t)total) {
			rg_audit_seterr(a, "audit: writing spool %s: %s", a->spool_path,
					strerror(errno));
			goto unlock;
		}
		h.head -= total;
		rc = rg_audit_spool_hdr_write(a, &h);
	unlock:
		rg_audit_spool_unlock(a);
	}
	free(buf);
	if (rc == 0)
		a->spool_maybe = true;
	return rc;
}

/* ------------------------------------------------------------------ */
/* delivery (a->mu held)                                               */

/* A record of the sink's own (audit.replayed, audit.lost), into the
 * backlog behind what is already waiting. */
static struct rg_audit_rec *rg_audit_internal(struct rg_audit *a, int sev, const char *event,
					      const struct rg_kv *kv, size_t n)
{
	uint64_t seq = 0;
	char *msg = rg_audit_build(a, sev, event, kv, n, &seq);
	struct rg_audit_rec *r = msg ? rg_audit_rec_new(msg, seq) : NULL;
	if (!r) {
		free(msg);
		rg_audit_seterr(a, "audit: out of memory formatting a record");
		rg_audit_count_lost_range(a, 1, seq, seq);
		return NULL;
	}
	rg_audit_b_add(a, r);
	return r;
}

/* Tell the trail about records that could not be kept: an audit.lost
 * record in the backlog, which takes over the count (and gives it back if
 * it is lost itself). */
static void rg_audit_report_lost(struct rg_audit *a)
{
	char count[24], first[24], last[24];
	if (a->lost == 0)
		return;
	uint64_t lost = a->lost, first_seq = a->lost_first, last_seq = a->lost_last;
	snprintf(count, sizeof count, "%llu", (unsigned long long)lost);
	snprintf(first, sizeof first, "%llu", (unsigned long long)first_seq);
	snprintf(last, sizeof last, "%llu", (unsigned long long)last_seq);
	struct rg_kv kv[] = { { "count", count }, { "first_seq", first }, { "last_seq", last } };
	a->lost = a->lost_first = a->lost_last = 0;
	struct rg_audit_rec *r = rg_audit_internal(a, LOG_ERR, "audit.lost", kv, 3);
	if (!r) {
		rg_audit_count_lost_range(a, lost, first_seq, last_seq);
		return;
	}
	r->r_count = lost;
	r->r_first = first_seq;
	r->r_last = last_seq;
}

/* The offset after the next newline at or after `from`, or `size`. */
static uint64_t rg_audit_spool_next_line(struct rg_audit *a, off_t from, off_t size)
{
	char buf[4096];
	while (from < size) {
		ssize_t n = pread(a->spool_fd, buf, sizeof buf, from);
		if (n <= 0)
			break;
		char *nl = memchr(buf, '\n', (size_t)n);
		if (nl)
			return (uint64_t)(from + (nl - buf) + 1);
		from += n;
	}
	return (uint64_t)size;
}

/* One slice of replay: spooled records are written to the socket (and
 * join q) from the head, until the socket is full, the slice is used up
 * or the spool is empty.  Needs the socket usable and q written.  Returns
 * true when nothing in the spool is ahead of the backlog any more (empty,
 * or unusable: then it cannot hold up delivery). */
static bool rg_audit_replay(struct rg_audit *a, int64_t now, int64_t end_us)
{
	struct rg_audit_spool_hdr h;
	off_t size;
	bool stop = false;
	unsigned count = 0;

	if (!rg_audit_spool_pending(a, now))
		return true;
	if (!a->rbuf && !(a->rbuf = malloc(RG_AUDIT_SPOOL_LINE_MAX + 1))) {
		rg_audit_seterr(a, "audit: out of memory");
		return false;
	}
	if (rg_audit_spool_open(a, false) != 0)
		return true; /* gone (empty), or unusable (a->detail says why) */
	int lk = rg_audit_spool_lock(a, 1);
	if (lk != 0)
		return lk < 0; /* another process has it: next time */
	if (rg_audit_spool_hdr_read(a, &h, &size) != 0) {
		rg_audit_spool_unlock(a);
		return true;
	}
	uint64_t head0 = h.head;
	while ((off_t)h.head < size && !stop) {
		ssize_t n = pread(a->spool_fd, a->rbuf, RG_AUDIT_SPOOL_LINE_MAX, (off_t)h.head);
		if (n <= 0) {
			rg_audit_seterr(a, "audit: reading spool %s: %s", a->spool_path,
					n < 0 ? strerror(errno) : "unexpected end");
			break;
		}
		char *p = a->rbuf, *end = a->rbuf + n, *nl = memchr(p, '\n', (size_t)n);
		if (!nl) {
			/* a torn tail (crash mid-append), or garbage longer than any
			 * record: skipped to the next line, and counted as lost */
			rg_audit_count_lost_range(a, 1, 0, 0);
			rg_audit_seterr(a, "audit: spool %s: a record without its end skipped",
					a->spool_path);
			h.head = rg_audit_spool_next_line(a, (off_t)h.head + n, size);
			continue;
		}
		for (; nl; nl = memchr(p, '\n', (size_t)(end - p))) {
			if (count >= RG_AUDIT_SLICE_RECORDS || rg_audit_now_us() >= end_us ||
			    !rg_audit_usable(a) || a->q_next) {
				stop = true;
				break;
			}
			size_t len = (size_t)(nl - p);
			if (len > 0) {
				char *msg = strndup(p, len);
				struct rg_audit_rec *r = msg ? rg_audit_rec_new(msg, 0) : NULL;
				if (!r) {
					free(msg);
					rg_audit_seterr(a, "audit: out of memory");
					stop = true;
					break;
				}
				if (rg_audit_write(a, r, false, now) <= 0) {
					rg_audit_rec_free(a, r);
					stop = true;
					break;
				}
				rg_audit_q_link(a, r); /* a frame begun is finished from q */
				h.replayed++;
			}
			h.head += len + 1;
			count++;
			p = nl + 1;
		}
	}
	uint64_t replayed = 0;
	bool emptied = false;
	if ((off_t)h.head >= size) {
		replayed = h.replayed;
		h.head = RG_AUDIT_SPOOL_HDR;
		h.replayed = 0;
		if (ftruncate(a->spool_fd, RG_AUDIT_SPOOL_HDR) != 0)
			rg_audit_seterr(a, "audit: truncating spool %s: %s", a->spool_path,
					strerror(errno));
		else
			emptied = rg_audit_spool_hdr_write(a, &h) == 0;
	} else if (h.head != head0) {
		rg_audit_spool_hdr_write(a, &h);
	}
	rg_audit_spool_unlock(a);
	if (!emptied)
		return false;
	a->spool_maybe = false;
	a->spool_checked_ms = now;
	if (replayed > 0) {
		char c[24];
		snprintf(c, sizeof c, "%llu", (unsigned long long)replayed);
		struct rg_kv kv[] = { { "count", c } };
		rg_audit_internal(a, LOG_NOTICE, "audit.replayed", kv, 1);
	}
	return true;
}

/* Write the backlog while nothing is ahead of it and the socket takes it. */
static void rg_audit_backlog_send(struct rg_audit *a, int64_t now)
{
	while (a->b_head && rg_audit_usable(a) && !a->q_next) {
		struct rg_audit_rec *r = a->b_head;
		if (rg_audit_write(a, r, false, now) <= 0) {
			r->flen = 0; /* framed again for whatever connection takes it */
			break;
		}
		rg_audit_b_take(a);
		rg_audit_q_link(a, r);
	}
}

/* What the backlog still holds goes to the end of the spool, so that it
 * survives this process.  Without a spool it waits in memory (bounded by
 * rg_audit_emit); with the spool locked by another process for longer than
 * RG_AUDIT_SPOOL_LOCK_TRIES allow, too, for the next call. */
static void rg_audit_backlog_spool(struct rg_audit *a)
{
	if (!a->b_head)
		return;
	if (!a->spool_path) {
		if (a->fd < 0) /* no spool and no target: nothing will keep them */
			while (a->b_head)
				rg_audit_rec_lost(a, rg_audit_b_take(a));
		return;
	}
	int lk = -1;
	if (rg_audit_spool_open(a, true) == 0)
		lk = rg_audit_spool_lock(a, RG_AUDIT_SPOOL_LOCK_TRIES);
	if (lk == 1 && a->b_bytes <= RG_AUDIT_NOSPOOL_MAX)
		return;
	while (a->b_head) {
		struct rg_audit_rec *r = rg_audit_b_take(a);
		struct iovec iov[2] = { { r->msg, r->mlen }, { (void *)"\n", 1 } };
		if (lk == 0 && rg_audit_spool_write_end(a, iov, 2, r->mlen + 1) == 0) {
			a->spool_maybe = true;
			if (a->cur == r)
				rg_audit_why(a);
			rg_audit_rec_free(a, r);
		} else {
			rg_audit_rec_lost(a, r);
		}
	}
	if (lk == 0)
		rg_audit_spool_unlock(a);
}

/* Move everything forward as far as it goes now, without waiting, for at
 * most until end_us (plus one write): q, a slice of the spool, the
 * backlog; what of the backlog is left is spooled. */
static void rg_audit_pump(struct rg_audit *a, int64_t end_us)
{
	int64_t now = rg_audit_now_ms();

	if (rg_audit_usable(a) && a->stype == SOCK_STREAM && rg_audit_peer_gone(a)) {
		rg_audit_seterr(a, "audit: the receiver closed the connection");
		a->broken = true;
	}
	if (a->broken)
		rg_audit_disconnect(a, now);
	if (a->fd < 0 && now >= a->retry_ms &&
	    (a->q_next || a->b_head || a->spool_maybe || a->lost > 0))
		rg_audit_connect(a, now);
	if (a->fd >= 0 && a->connecting)
		rg_audit_connect_check(a, now);
	if (rg_audit_usable(a)) {
		while (a->q_next && rg_audit_usable(a) && rg_audit_now_us() < end_us &&
		       rg_audit_write(a, a->q_next, true, now) > 0)
			;
		if (!a->q_next && rg_audit_usable(a) && rg_audit_replay(a, now, end_us))
			rg_audit_backlog_send(a, now);
		rg_audit_watch(a, now);
	}
	if (a->broken)
		rg_audit_disconnect(a, now);
	rg_audit_backlog_spool(a);
}

/* ------------------------------------------------------------------ */
/* the interface                                                       */

int rg_audit_emit(struct rg_audit *a, int severity, const char *event, const struct rg_kv *fields,
		  size_t nfields)
{
	uint64_t seq = 0;
	int rc;

	if (!a || a->pid != getpid())
		return -1; /* a fork()ed child never uses its parent's sink */
	pthread_mutex_lock(&a->mu);
	int64_t end_us = rg_audit_now_us() + RG_AUDIT_SLICE_US;
	/* what waits goes first (a replay's audit.replayed comes before this
	 * record), then what could not be kept is reported, in order */
	if (a->q_next || a->b_head || a->fd < 0 || a->broken || a->spool_maybe)
		rg_audit_pump(a, end_us);
	rg_audit_report_lost(a);
	char *msg = rg_audit_build(a, severity, event, fields, nfields, &seq);
	struct rg_audit_rec *r = msg ? rg_audit_rec_new(msg, seq) : NULL;
	if (!r) {
		free(msg);
		rg_audit_seterr(a, "audit: out of memory formatting a record");
		rg_audit_why(a);
		rg_audit_count_lost_range(a, 1, seq, seq);
		rc = -1;
	} else if (!a->spool_path && a->b_bytes + r->mlen + 1 > RG_AUDIT_NOSPOOL_MAX) {
		rg_audit_seterr(a, "audit: target unavailable and no spool: record lost (%s)",
				a->detail[0] ? a->detail : "busy");
		a->cur = r;
		rg_audit_rec_lost(a, r);
		rc = -1;
	} else {
		a->cur = r;
		a->cur_rc = 1;
		rg_audit_b_add(a, r);
		rg_audit_pump(a, end_us);
		rc = a->cur_rc;
		if (a->cur && rc == 1)
			rg_audit_why(a); /* waits in memory */
		a->cur = NULL;
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* Nothing waits: q written, spool and backlog empty, no loss unreported
 * (records written may still wait to be known read). */
static bool rg_audit_delivered(struct rg_audit *a)
{
	return !a->q_next && !a->b_head && !a->spool_maybe && a->lost == 0;
}

/* Resolve a tcp target's name (not holding the mutex meanwhile): when the
 * sink is made (configuration load; a reload runs on a decision's call) and
 * in rg_audit_flush(), never per record. */
static void rg_audit_resolve(struct rg_audit *a)
{
	if (a->kind != RG_AUDIT_T_TCP)
		return;
	pthread_mutex_lock(&a->mu);
	bool need = a->ai == NULL;
	pthread_mutex_unlock(&a->mu);
	if (!need)
		return;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(a->host, a->port, &hints, &ai); /* host, port: fixed at creation */
	pthread_mutex_lock(&a->mu);
	if (rc != 0)
		rg_audit_seterr(a, "audit: cannot resolve %s: %s", a->host, gai_strerror(rc));
	else if (a->ai)
		freeaddrinfo(ai);
	else
		a->ai = ai;
	pthread_mutex_unlock(&a->mu);
}

/* Run the pump on this thread until done(a) or the deadline.  0 done, 1 not. */
static int rg_audit_pump_until(struct rg_audit *a, int64_t deadline_ms,
			       bool (*done)(struct rg_audit *))
{
	for (;;) {
		pthread_mutex_lock(&a->mu);
		if (a->lost > 0 && !a->b_head && !a->spool_maybe && !a->q_next)
			rg_audit_report_lost(a);
		rg_audit_pump(a, rg_audit_now_us() + 4 * RG_AUDIT_SLICE_US);
		bool ok = done(a);
		pthread_mutex_unlock(&a->mu);
		if (ok)
			return 0;
		int64_t left = deadline_ms - rg_audit_now_ms();
		if (left <= 0)
			return 1;
		usleep(1000); /* target busy or away: again shortly */
	}
}

/* ... and every record written known read (the receiver is there). */
static bool rg_audit_done_reading(struct rg_audit *a)
{
	return rg_audit_delivered(a) && !a->q_unread; /* the pump has just looked (watch) */
}

int rg_audit_flush(struct rg_audit *a, int timeout_ms)
{
	if (!a || a->pid != getpid())
		return -1;
	int64_t deadline = rg_audit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	rg_audit_resolve(a);
	pthread_mutex_lock(&a->mu);
	if (a->spool_path)
		a->spool_maybe = true; /* an explicit flush looks at the file */
	if (a->fd < 0)
		a->retry_ms = 0; /* and tries the target at once */
	pthread_mutex_unlock(&a->mu);
	return rg_audit_pump_until(a, deadline, rg_audit_delivered);
}

char *rg_audit_format(struct rg_audit *a, int severity, const char *event,
		      const struct rg_kv *fields, size_t nfields)
{
	if (!a)
		return NULL;
	pthread_mutex_lock(&a->mu);
	char *msg = rg_audit_build(a, severity, event, fields, nfields, NULL);
	pthread_mutex_unlock(&a->mu);
	return msg;
}

void rg_audit_set_spool_limit(struct rg_audit *a, size_t bytes)
{
	pthread_mutex_lock(&a->mu);
	a->spool_max = bytes;
	pthread_mutex_unlock(&a->mu);
}

void rg_audit_last_error(struct rg_audit *a, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	pthread_mutex_lock(&a->mu);
	snprintf(buf, len, "%s", a->err);
	pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static int rg_audit_parse_target(struct rg_audit *a, const char *t, char *err, size_t errlen)
{
	const char *path = NULL;

	if (!t || strcmp(t, "syslog") == 0) {
		path = RG_AUDIT_DEVLOG;
	} else if (strncmp(t, "unix:", 5) == 0) {
		path = t + 5;
	} else if (strncmp(t, "tcp:", 4) == 0) {
		const char *hp = t + 4, *colon, *hs = hp, *he;
		if (*hp == '[') { /* tcp:[::1]:514 */
			he = strchr(hp, ']');
			if (!he || he[1] != ':')
				goto bad;
			hs = hp + 1;
			colon = he + 1;
		} else {
			colon = strrchr(hp, ':');
			if (!colon)
				goto bad;
			he = colon;
		}
		if (he == hs || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
			goto bad;
		a->kind = RG_AUDIT_T_TCP;
		a->host = strndup(hs, (size_t)(he - hs));
		a->port = strdup(colon + 1);
		if (!a->host || !a->port) {
			snprintf(err, errlen, "audit: out of memory");
			return -1;
		}
		return 0;
	} else {
		goto bad;
	}
	if (!*path || strlen(path) >= sizeof a->unix_path)
		goto bad;
	a->kind = RG_AUDIT_T_UNIX;
	snprintf(a->unix_path, sizeof a->unix_path, "%s", path);
	return 0;
bad:
	snprintf(err, errlen,
		 "audit: target '%s' is not valid (use syslog, unix:/path or tcp:host:port)", t);
	return -1;
}


struct rg_audit *rg_audit_new(const struct rg_audit_cfg *cfg, char *err, size_t errlen)
{
	struct rg_audit *a = calloc(1, sizeof *a);
	if (!a) {
		snprintf(err, errlen, "audit: out of memory");
		return NULL;
	}
	a->fd = -1;
	a->spool_fd = -1;
	a->spool_max = RG_AUDIT_SPOOL_MAX_DEFAULT;
	a->backoff_ms = RG_AUDIT_BACKOFF_MIN_MS;
	a->pid = getpid();
	if (pthread_mutex_init(&a->mu, NULL) != 0) {
		free(a);
		snprintf(err, errlen, "audit: cannot create a mutex");
		return NULL;
	}
	if (rg_audit_parse_target(a, cfg->target, err, errlen) != 0)
		goto fail;
	a->format = cfg->format;
	a->facility = cfg->facility & LOG_FACMASK;
	rg_audit_sanitize(cfg->ident && *cfg->ident ? cfg->ident : "rotagate", a->ident,
			  sizeof a->ident);
	for (char *p = a->ident; *p; p++)
		if (*p == ' ' || *p == ':' || *p == '[' || *p == ']' || *p == '\\')
			*p = '_';
	if (gethostname(a->hostname, sizeof a->hostname) != 0 || !a->hostname[0])
		snprintf(a->hostname, sizeof a->hostname, "-");
	a->hostname[sizeof a->hostname - 1] = '\0';
	for (char *p = a->hostname; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			*p = '_';
	if (cfg->spool && *cfg->spool) {
		a->spool_dir = strdup(cfg->spool);
		if (a->spool_dir && asprintf(&a->spool_path, "%s/%s", cfg->spool,
					     RG_AUDIT_SPOOL_NAME) < 0)
			a->spool_path = NULL;
		if (!a->spool_dir || !a->spool_path) {
			snprintf(err, errlen, "audit: out of memory");
			goto fail;
		}
		a->spool_maybe = true; /* another process may have left records */
	}
	a->ctx = evt_ctx_init(a->ident, a->facility);
	if (!a->ctx) {
		snprintf(err, errlen, "audit: evt_ctx_init failed");
		goto fail;
	}
	/* a name is resolved here (the configuration is being loaded) and in
	 * rg_audit_flush(), never per record; until it resolves, records go
	 * to the spool */
	rg_audit_resolve(a);
	return a;
fail:
	rg_audit_free_wait(a, 0);
	return NULL;
}

void rg_audit_free(struct rg_audit *a)
{
	rg_audit_free_wait(a, 1000);
}

void rg_audit_free_wait(struct rg_audit *a, int flush_ms)
{
	if (!a)
		return;
	if (a->ctx && a->pid == getpid()) {
		int64_t deadline = rg_audit_now_ms() + (flush_ms > 0 ? flush_ms : 0);
		if (flush_ms > 0 && rg_audit_flush(a, flush_ms) == 0)
			rg_audit_pump_until(a, deadline, rg_audit_done_reading);
		pthread_mutex_lock(&a->mu);
		/* the count of lost records dies with the sink: the audit.lost
		 * report goes where the rest goes (short-lived processes such as
		 * rotagatectl, replaced generations); one last step without
		 * waiting sends what goes now and spools the backlog (a receiver
		 * found gone: all of q is to be sent again) */
		rg_audit_report_lost(a);
		rg_audit_pump(a, rg_audit_now_us() + RG_AUDIT_SLICE_US);
		/* what is in memory and not safely with the receiver goes back to
		 * the spool, in front (it is older than what waits there): when
		 * the receiver is away, all of q, else what was not written whole */
		struct rg_audit_rec *back = rg_audit_q_cut(a, a->fd >= 0 ? a->q_next : a->q_head);
		bool saved = !back || rg_audit_spool_save(a, back) == 0;
		while (back) {
			struct rg_audit_rec *next = back->next;
			if (saved)
				rg_audit_rec_free(a, back);
			else
				rg_audit_rec_lost(a, back);
			back = next;
		}
		while (a->b_head) /* no spool, the target busy: nowhere to go */
			rg_audit_rec_lost(a, rg_audit_b_take(a));
		if (a->lost > 0) { /* what was lost just now: one more try to say so */
			rg_audit_report_lost(a);
			rg_audit_backlog_spool(a);
		}
		pthread_mutex_unlock(&a->mu);
	}
	if (a->fd >= 0)
		close(a->fd);
	rg_audit_spool_close(a);
	rg_audit_list_free(a, a->q_head);
	rg_audit_list_free(a, a->b_head);
	if (a->ctx)
		evt_ctx_free(a->ctx);
	if (a->ai)
		freeaddrinfo(a->ai);
	free(a->rbuf);
	free(a->host);
	free(a->port);
	free(a->spool_dir);
	free(a->spool_path);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
