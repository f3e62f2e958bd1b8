/*
 * audit.c - audit records: libevtlog evt_format() for the text, rotagate's
 * own non-blocking sender for delivery, a flock()ed spool for what could not
 * be delivered.
 *
 * Never libevtlog's own logging calls nor libc's syslog(3) family: they take
 * over the host process's syslog identity, and libevtlog's crash the host
 * after dlclose.
 *
 * The request path.  rg_audit_emit() formats the record and takes its seq
 * under the sink's mutex, and makes at most one non-blocking send attempt,
 * only when nothing is ahead of the record: the spool believed empty, no
 * frame half written, nothing waiting to be sent again.  A record that
 * cannot go whole right now is appended to the spool (in seq order: a
 * ticket taken under the mutex orders the appends) and the delivery thread
 * is woken.  The caller never polls, sleeps or replays.
 *
 * The delivery thread (one per sink, started the first time it is needed,
 * stopped and joined by rg_audit_free_wait) finishes a frame a stream took
 * only part of, (re)connects with backoff, sends again what a receiver that
 * went away may not have read, replays the spool in order (flock()ed, in
 * slices, so that several processes can share one spool) and emits
 * audit.replayed / audit.lost.  It holds the mutex only for non-blocking
 * steps, never while it waits.  rg_audit_flush() runs the same steps on the
 * caller's thread.
 *
 * At-least-once.  A record written to the socket stays in memory until the
 * receiver is known to have read it: SIOCOUTQ says how many bytes of what
 * this socket sent are still queued (unix: in the receiver's receive queue,
 * counted at least as large as their payload; tcp: not yet acknowledged),
 * so every record older than the newest ones whose sizes add up to more
 * than that has been read (a record's size: its payload, or what the queue
 * grew by when it was written, if more).  Such a sample counts only if the receiver is known to be
 * there after it (a write that succeeds, no hang-up on a stream, the same
 * datagram socket still bound to the path): a receiver that closes throws
 * its queue away, which looks the same as reading it.  A record read is
 * kept RG_AUDIT_GRACE_MS longer, until the receiver is seen alive that much
 * later (it may have read a record and not yet written it out).  When the
 * receiver is found gone, everything still kept is sent again first on the
 * next connection, before the spool (all of it is older than what the
 * spool holds).  So a receiver that stops loses nothing; the records it had
 * read (and written out) in its last RG_AUDIT_GRACE_MS or so arrive twice,
 * identical (same host, pid, seq: the record's key).
 *
 * Time stamps are computed without gmtime_r()/localtime_r() (glibc's
 * time-zone lock, see rg_audit_civil), and nothing is formatted while the
 * spool file is locked: a fork()ed child stuck on a lock it inherited must
 * not keep every process out of the spool.
 *
 * Locks, always in this order: work_mu (one worker at a time: the thread or
 * an explicit flush), spool_mu (the spool file within the process; flock()
 * between processes), mu (formatting, seq, the socket, the in-memory list).
 * The request path takes mu, then (without it) spool_mu to append.
 */
#define _GNU_SOURCE
#include "audit.h"
#include "fsutil.h"

#include <errno.h>
#include <evtlog.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
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
#define RG_AUDIT_TICK_MS 1            /* thread: retry / re-sample while records are in flight */
#define RG_AUDIT_IDLE_MS 100          /* thread: look at the spool (other processes) this often */
#define RG_AUDIT_BACKOFF_MIN_MS 1     /* reconnect: first retry, doubling ... */
#define RG_AUDIT_BACKOFF_MAX_MS 100   /* ... up to this */
#define RG_AUDIT_GRACE_MS 100         /* a record read is kept until the receiver outlived it by this */
#define RG_AUDIT_LAZY_MS 100          /* start the thread when a record stays unread this long */
#define RG_AUDIT_SLICE_US 1000        /* replay: the spool is held at most this long at a time */
#define RG_AUDIT_SLICE_RECORDS 256    /* ... and for at most this many records */
#define RG_AUDIT_QUEUE_MAX (16u * 1024 * 1024) /* records kept in memory, bytes */
#define RG_AUDIT_NOSPOOL_MAX (1024u * 1024)    /* without a spool: records waiting in memory */
#define RG_AUDIT_SPOOL_LOCK_WAIT_MS 20
#define RG_AUDIT_SPOOL_RECHECK_MS 100 /* look at a spool believed empty at most this often */
#define RG_AUDIT_SPOOL_NAME "audit.spool"
#define RG_AUDIT_SPOOL_MAGIC "RGSPOOL1"
#define RG_AUDIT_SPOOL_HDR 32         /* magic[8] head[8] replayed[8] reserved[8] */
#define RG_AUDIT_SPOOL_LINE_MAX 65536
#define RG_AUDIT_KEY_MAX 32           /* RFC 5424 PARAM-NAME */
#define RG_AUDIT_IDENT_MAX 48         /* RFC 5424 APP-NAME */

enum rg_audit_kind { RG_AUDIT_T_UNIX, RG_AUDIT_T_TCP };

/* A record in memory: written (or being written) to the socket and not yet
 * known to be read, or waiting to be sent (again).  The list is oldest
 * first: [read, kept for the grace period] [written, not known read]
 * [q_next: the frame begun, or the first not written] [not written]. */
struct rg_audit_rec {
	struct rg_audit_rec *next;
	char *msg;          /* without framing */
	size_t mlen;
	uint64_t seq;       /* this process's; 0 for a record replayed from the spool */
	uint64_t qid;       /* place in the list, increasing */
	size_t flen;        /* its frame on the current connection; 0: not begun */
	size_t off;         /* bytes of the frame written */
	size_t grew;        /* how much the socket's queue grew with its writes */
	size_t acct;        /* what it takes in the queue, at least: max(off, grew) */
	int64_t sent_ms;    /* last written to the socket (0: not yet) */
	int64_t read_ms;    /* found read by the receiver (0: not known) */
	char pre[24];       /* tcp: "LEN " */
	unsigned char plen;
	bool nl;            /* unix stream: newline framing */
};

struct rg_audit {
	pthread_mutex_t mu;
	pthread_mutex_t work_mu;
	pthread_mutex_t spool_mu;
	pthread_cond_t cv;       /* wakes the delivery thread (with mu) */
	pthread_cond_t spool_cv; /* appends take turns (with spool_mu) */
	pid_t pid;               /* the process that made the sink: a fork()ed child never uses it */
	enum rg_audit_kind kind;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *host, *port;
	struct addrinfo *ai;
	int fd;
	int stype;          /* SOCK_DGRAM or SOCK_STREAM once connected */
	bool connecting;    /* tcp connect in progress */
	bool broken;        /* the receiver went away: the thread reconnects */
	bool target_down;   /* the last connect failed */
	bool conn_wrote;    /* a write succeeded on this connection */
	bool full;          /* the last write found the socket full */
	bool no_outq;       /* SIOCOUTQ unsupported: a record written counts as read */
	int64_t retry_ms;   /* no connect before this */
	int backoff_ms;
	uint64_t conn_gen;  /* connections made */
	dev_t peer_dev;     /* unix: the socket file connected to */
	ino_t peer_ino;
	enum rg_audit_format format;
	int facility;
	char ident[RG_AUDIT_IDENT_MAX + 1];
	char hostname[256];
	EVTCONTEXT *ctx;
	/* in memory, under mu */
	struct rg_audit_rec *q_head, *q_tail;
	struct rg_audit_rec *q_unread; /* first one not known read */
	struct rg_audit_rec *q_next;   /* first one not completely written */
	size_t q_bytes;
	uint64_t q_wsum;    /* acct of q_unread .. q_next (included) */
	uint64_t q_qid;
	/* the thread, under mu */
	pthread_t thread;
	bool thread_started;
	pid_t thread_pid;
	bool stopping, kick;
	/* the spool */
	char *spool_dir, *spool_path;
	size_t spool_max;   /* under spool_mu */
	int spool_fd;       /* under spool_mu */
	dev_t spool_dev;
	ino_t spool_ino;
	char *rbuf;         /* replay buffer, under spool_mu */
	char spool_err[256]; /* under spool_mu */
	uint64_t tk_turn;   /* next ticket to append, under spool_mu */
	uint64_t tk_next;   /* next ticket to hand out, under mu */
	size_t tk_pending;  /* tickets handed out, not yet appended, under mu */
	/* "The spool may hold records": set when this sink appends (and at
	 * start), cleared when a replay or a look at the file finds it empty
	 * with no append pending.  Other processes append to the same file, so
	 * while it is clear the file is still looked at every
	 * RG_AUDIT_SPOOL_RECHECK_MS.  Under mu. */
	bool spool_maybe;
	int64_t spool_checked_ms;
	uint64_t lost, lost_first, lost_last;
	char config_sha[72]; /* last one a caller passed: the sink's own records carry it too */
	char err[256];       /* why the last record was not sent: under mu */
	char detail[256];    /* the latest delivery problem: under mu */
};

/* one counter for the whole process: all sinks, all threads */
static atomic_uint_fast64_t rg_audit_seq;

/* Threads of this process waiting to lock a spool file to append: replays
 * (of every sink: a reload makes several) step aside for them, so that a
 * record being spooled never waits long for the file. */
static atomic_int rg_audit_appenders;

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

/* The calendar date and time of `t` seconds after the epoch, UTC, by
 * arithmetic (days to civil date, H. Hinnant's algorithm): no lock.
 * gmtime_r() and localtime_r() take glibc's time-zone lock, and a fork()ed
 * child that inherits it held (another thread was inside them at that
 * moment) would hang in its first record. */
static void rg_audit_civil(int64_t t, struct tm *tm)
{
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	tm->tm_hour = (int)(secs / 3600);
	tm->tm_min = (int)(secs / 60 % 60);
	tm->tm_sec = (int)(secs % 60);
	days += 719468; /* from 0000-03-01 */
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	int64_t doe = days - era * 146097;                                   /* [0, 146096] */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
	int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	tm->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->tm_mon = (int)(m - 1);
	tm->tm_year = (int)(yoe + era * 400 + (m <= 2) - 1900);
}

/* The local time's offset from UTC at `t`: localtime_r() once per quarter
 * of an hour for the whole process (time-zone changes happen on such
 * boundaries), not per record; see rg_audit_civil. */
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
	rg_audit_civil((int64_t)now->tv_sec + rg_audit_utcoff(now->tv_sec), &tm);
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
	rg_audit_civil((int64_t)now->tv_sec, &tm);
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
/* helpers                                                             */

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

/* The latest delivery problem (the thread's too).  a->mu held. */
__attribute__((format(printf, 2, 3))) static void rg_audit_seterr(struct rg_audit *a,
								   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->detail, sizeof a->detail, fmt, ap);
	va_end(ap);
}

/* Why the last record was not sent (spooled) or lost: what
 * rg_audit_last_error() tells, never overwritten by the thread's retries.
 * a->mu held. */
static void rg_audit_why(struct rg_audit *a, const char *why)
{
	snprintf(a->err, sizeof a->err, "%s", why && *why ? why : a->detail);
}

/* a->spool_mu held */
__attribute__((format(printf, 2, 3))) static void rg_audit_spool_seterr(struct rg_audit *a,
									 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->spool_err, sizeof a->spool_err, fmt, ap);
	va_end(ap);
}

/* Count a record that could not be kept (seq 0: one whose seq is not ours,
 * counted without touching the range).  a->mu held. */
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

static void rg_audit_count_lost(struct rg_audit *a, uint64_t seq)
{
	rg_audit_count_lost_range(a, 1, seq, seq);
	rg_audit_why(a, NULL);
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

static void rg_audit_rec_free(struct rg_audit_rec *r)
{
	if (r) {
		free(r->msg);
		free(r);
	}
}

/* Add r at the end.  A record written (in part) is only added when nothing
 * is ahead of it (q_next NULL). */
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
}

static void rg_audit_q_pop(struct rg_audit *a)
{
	struct rg_audit_rec *r = a->q_head;
	a->q_head = r->next;
	if (!a->q_head)
		a->q_tail = NULL;
	a->q_bytes -= r->mlen + 1;
	rg_audit_rec_free(r);
}

/* Which of the records written and not known read a sample says the
 * receiver has read (the qid of the newest, 0 for none).  `outq` is what is
 * still queued; a record takes at least its acct there (its payload, and
 * at least what the queue grew by when it was written: the receiver can
 * only have made that smaller).  A record is read when it and all newer
 * ones would take more than what is queued. */
static uint64_t rg_audit_q_read_cut(struct rg_audit *a, int outq)
{
	uint64_t rest = a->q_wsum, n = outq > 0 ? (uint64_t)outq : 0, cut = 0;
	for (struct rg_audit_rec *r = a->q_unread; r && r != a->q_next; r = r->next) {
		if (rest <= n)
			break;
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

/* The connection is gone: everything in memory is to be sent again. */
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

static void rg_audit_q_free(struct rg_audit *a)
{
	while (a->q_head)
		rg_audit_q_pop(a);
	a->q_next = a->q_unread = NULL;
	a->q_wsum = 0;
}

/* ------------------------------------------------------------------ */
/* transport (a->mu held)                                              */

static bool rg_audit_usable(const struct rg_audit *a)
{
	return a->fd >= 0 && !a->connecting && !a->broken;
}

static void rg_audit_backoff(struct rg_audit *a, int64_t now)
{
	a->target_down = true;
	a->retry_ms = now + a->backoff_ms;
	a->backoff_ms = a->backoff_ms >= RG_AUDIT_BACKOFF_MAX_MS / 2 ? RG_AUDIT_BACKOFF_MAX_MS
								     : a->backoff_ms * 2;
}

static void rg_audit_connected(struct rg_audit *a)
{
	a->target_down = false;
	a->broken = false;
	a->conn_wrote = false;
	a->conn_gen++;
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

/* Start a tcp connect (a->ai resolved); it may complete in the background. */
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

static int rg_audit_connect(struct rg_audit *a, int64_t now)
{
	if (a->kind == RG_AUDIT_T_UNIX)
		return rg_audit_connect_unix(a, now);
	if (!a->ai) {
		rg_audit_seterr(a, "audit: %s not resolved yet", a->host);
		return -1;
	}
	return rg_audit_connect_tcp(a, now);
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

/* Is the datagram socket bound to `path` still the one we connected to
 * (dev, ino), and there?  1 yes, 0 no, -1 cannot tell.  No lock needed. */
static int rg_audit_dgram_alive(const char *path, dev_t dev, ino_t ino)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;

	if (stat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (st.st_dev != dev || st.st_ino != ino)
		return 0; /* replaced: a restarted receiver */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(sa.sun_path, path, strnlen(path, sizeof sa.sun_path - 1));
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
 * (`linked`), or a new record nothing is ahead of.  Returns the bytes
 * written (> 0), 0 when the socket takes nothing now, -1 when the
 * connection is broken.  The socket is sampled first: a write that succeeds
 * shows the receiver there, so what the sample says it has read, it has. */
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
		} else if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP)
			a->no_outq = true;
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
			a->full = true;
			return 0;
		}
		rg_audit_seterr(a, "audit: send: %s", strerror(errno));
		a->broken = true;
		return -1;
	}
	rg_audit_q_mark_read(a, cut, now);
	a->full = false;
	if (!a->conn_wrote) {
		a->conn_wrote = true;
		a->backoff_ms = RG_AUDIT_BACKOFF_MIN_MS;
	}
	size_t acct0 = r->acct;
	r->off += (size_t)w;
	if (sampled && ioctl(a->fd, SIOCOUTQ, &after) == 0 && after > outq)
		r->grew += (size_t)(after - outq);
	r->acct = r->off > r->grew ? r->off : r->grew;
	r->sent_ms = now;
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

/* Is the receiver still there?  1 yes, 0 gone, -1 cannot tell, -2 the
 * connection changed meanwhile.  a->mu held (released while a datagram
 * socket's receiver is looked at). */
static int rg_audit_alive(struct rg_audit *a)
{
	if (a->stype == SOCK_STREAM)
		return rg_audit_peer_gone(a) ? 0 : 1;
	uint64_t gen = a->conn_gen;
	dev_t dev = a->peer_dev;
	ino_t ino = a->peer_ino;
	pthread_mutex_unlock(&a->mu);
	int rc = rg_audit_dgram_alive(a->unix_path, dev, ino);
	pthread_mutex_lock(&a->mu);
	return gen == a->conn_gen && rg_audit_usable(a) ? rc : -2;
}

/* No write to sample with: look at the socket.  The receiver read what the
 * sample says if it is still there afterwards, and records it read long
 * enough ago are forgotten; a receiver found gone breaks the connection
 * (and what is in memory is sent again).  a->mu held. */
static void rg_audit_watch(struct rg_audit *a)
{
	int outq = 0;
	uint64_t cut = 0;

	if (!a->q_head || !rg_audit_usable(a))
		return;
	int64_t t1 = rg_audit_now_ms();
	if (!a->no_outq && a->q_unread != a->q_next && ioctl(a->fd, SIOCOUTQ, &outq) == 0)
		cut = rg_audit_q_read_cut(a, outq);
	bool due = a->q_head != a->q_unread && a->q_head->read_ms + RG_AUDIT_GRACE_MS <= t1;
	if (cut == 0 && !due)
		return;
	int alive = rg_audit_alive(a);
	if (alive == 0) {
		rg_audit_seterr(a, "audit: the receiver went away");
		a->broken = true;
	} else if (alive > 0) {
		rg_audit_q_mark_read(a, cut, t1);
		rg_audit_q_prune(a, t1);
	}
}

/* ------------------------------------------------------------------ */
/* spool (a->spool_mu held)                                            */

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
 * none (ENOENT, !create) or it cannot be opened (spool_err set).  The
 * directory holds user names: each (re)open makes sure it is private, never
 * repairs it. */
static int rg_audit_spool_open(struct rg_audit *a, bool create)
{
	struct stat st;
	char why[sizeof a->spool_err - 32];

	if (stat(a->spool_path, &st) != 0) {
		rg_audit_spool_close(a);
		if (!create)
			return -1;
	} else if (a->spool_fd >= 0 && st.st_dev == a->spool_dev && st.st_ino == a->spool_ino) {
		return 0;
	}
	rg_audit_spool_close(a);
	if (rg_private_dir(a->spool_dir, why, sizeof why) != 0) {
		rg_audit_spool_seterr(a, "audit: spool directory %s", why);
		return -1;
	}
	int fd = open(a->spool_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rg_audit_spool_seterr(a, "audit: cannot open spool %s: %s", a->spool_path,
				      strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	a->spool_fd = fd;
	a->spool_dev = st.st_dev;
	a->spool_ino = st.st_ino;
	return 0;
}

/* Lock the file against other processes (this one's threads are kept out
 * by spool_mu).  A replay elsewhere holds it for a slice at most. */
static int rg_audit_spool_lock(struct rg_audit *a)
{
	int64_t deadline = rg_audit_now_ms() + RG_AUDIT_SPOOL_LOCK_WAIT_MS;
	int rc = -1;
	atomic_fetch_add(&rg_audit_appenders, 1);
	for (;;) {
		if (flock(a->spool_fd, LOCK_EX | LOCK_NB) == 0) {
			rc = 0;
			break;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rg_audit_spool_seterr(a, "audit: cannot lock spool %s: %s", a->spool_path,
					      strerror(errno));
			break;
		}
		if (rg_audit_now_ms() >= deadline) {
			rg_audit_spool_seterr(a, "audit: spool %s stayed locked for %d ms",
					      a->spool_path, RG_AUDIT_SPOOL_LOCK_WAIT_MS);
			break;
		}
		usleep(100);
	}
	atomic_fetch_sub(&rg_audit_appenders, 1);
	return rc;
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
		rg_audit_spool_seterr(a, "audit: %s is not a rotagate spool file", a->spool_path);
		return -1;
	}
	memcpy(&h->head, raw + 8, 8);
	memcpy(&h->replayed, raw + 16, 8);
	if (h->head < RG_AUDIT_SPOOL_HDR || h->head > (uint64_t)st.st_size) {
		rg_audit_spool_seterr(a, "audit: spool %s has a bad header", a->spool_path);
		return -1;
	}
	*size = st.st_size;
	return 0;
io:
	rg_audit_spool_seterr(a, "audit: spool %s: %s", a->spool_path, strerror(errno));
	return -1;
}

static int rg_audit_spool_hdr_write(struct rg_audit *a, const struct rg_audit_spool_hdr *h)
{
	unsigned char raw[16];
	memcpy(raw, &h->head, 8);
	memcpy(raw + 8, &h->replayed, 8);
	if (pwrite(a->spool_fd, raw, sizeof raw, 8) != (ssize_t)sizeof raw) {
		rg_audit_spool_seterr(a, "audit: spool %s: %s", a->spool_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Move the records still waiting to the front of the file.  Lock held.
 * (Nothing is allocated while the file is locked: a fork()ed child whose
 * allocator another thread held at the fork would hang there, and keep every
 * process out of the spool.) */
static int rg_audit_spool_compact(struct rg_audit *a, struct rg_audit_spool_hdr *h, off_t *size)
{
	char buf[16384];
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
	rg_audit_spool_seterr(a, "audit: compacting spool %s: %s", a->spool_path, strerror(errno));
	return -1;
}

/* Write `len` bytes (whole lines, in iov[0..niov)) at the end, within the
 * cap.  Lock held.  0, or -1 (full, I/O) with spool_err set. */
static int rg_audit_spool_write_end(struct rg_audit *a, const struct iovec *iov, int niov,
				    size_t len)
{
	struct rg_audit_spool_hdr h;
	off_t size;

	if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
		return -1;
	if ((uint64_t)size - h.head + len > a->spool_max) {
		rg_audit_spool_seterr(
			a, "audit: spool %s is full (%zu bytes waiting, limit %zu): record lost",
			a->spool_path, (size_t)((uint64_t)size - h.head), a->spool_max);
		return -1;
	}
	if ((uint64_t)size > 2 * (uint64_t)a->spool_max && rg_audit_spool_compact(a, &h, &size) != 0)
		return -1;
	ssize_t n = pwritev(a->spool_fd, iov, niov, size);
	if (n != (ssize_t)len) {
		rg_audit_spool_seterr(a, "audit: writing spool %s: %s", a->spool_path,
				      n < 0 ? strerror(errno) : "short write");
		if (ftruncate(a->spool_fd, size) != 0) {
			/* nothing more to do: the header still points before it */
		}
		return -1;
	}
	return 0;
}

/* Append one message as a line.  Lock held. */
static int rg_audit_spool_append_locked(struct rg_audit *a, const char *msg)
{
	size_t len = strlen(msg);
	struct iovec iov[2] = { { (void *)msg, len }, { (void *)"\n", 1 } };
	return rg_audit_spool_write_end(a, iov, 2, len + 1);
}

/* Put records the sink is freed with back into the spool, in front of what
 * waits there when the room before the head allows (the records are older
 * than anything spooled), else at the end.  0, or -1 (spool_err set). */
static int rg_audit_spool_save(struct rg_audit *a, const struct rg_audit_rec *from)
{
	size_t total = 0;
	for (const struct rg_audit_rec *r = from; r; r = r->next)
		total += r->mlen + 1;
	if (total == 0)
		return 0;
	if (!a->spool_path) {
		rg_audit_spool_seterr(a, "audit: no spool");
		return -1;
	}
	char *buf = malloc(total), *p = buf;
	if (!buf) {
		rg_audit_spool_seterr(a, "audit: out of memory");
		return -1;
	}
	for (const struct rg_audit_rec *r = from; r; r = r->next) {
		memcpy(p, r->msg, r->mlen);
		p += r->mlen;
		*p++ = '\n';
	}
	int rc = -1;
	if (rg_audit_spool_open(a, true) == 0 && rg_audit_spool_lock(a) == 0) {
		struct rg_audit_spool_hdr h;
		off_t size;
		if (rg_audit_spool_hdr_read(a, &h, &size) == 0) {
			if (h.head - RG_AUDIT_SPOOL_HDR >= total &&
			    (uint64_t)size - h.head + total <= a->spool_max) {
				if (pwrite(a->spool_fd, buf, total, (off_t)(h.head - total)) ==
				    (ssize_t)total) {
					h.head -= total;
					rc = rg_audit_spool_hdr_write(a, &h);
				} else {
					rg_audit_spool_seterr(a, "audit: writing spool %s: %s",
							      a->spool_path, strerror(errno));
				}
			} else {
				struct iovec iov = { buf, total };
				rc = rg_audit_spool_write_end(a, &iov, 1, total);
			}
		}
		rg_audit_spool_unlock(a);
	}
	free(buf);
	return rc;
}

/* Append the records of one emit that took spool tickets (consecutive,
 * from o[i].ticket), after every earlier ticket: the spool gets records in
 * seq order although they are appended without a->mu. */
struct rg_audit_out {
	char *msg;
	uint64_t seq;
	uint64_t ticket;
	int rc;               /* 0 sent, 1 to the spool / spooled, 2 kept in memory, -1 lost */
	bool ticketed;
	bool report;          /* an audit.lost report: what it reports */
	uint64_t r_count, r_first, r_last;
};

static void rg_audit_spool_put(struct rg_audit *a, struct rg_audit_out *o, size_t n, char *err,
			       size_t errlen)
{
	size_t first = 0;
	while (first < n && o[first].rc != 1)
		first++;
	if (first == n)
		return;
	pthread_mutex_lock(&a->spool_mu);
	while (a->tk_turn != o[first].ticket)
		pthread_cond_wait(&a->spool_cv, &a->spool_mu);
	a->spool_err[0] = '\0';
	bool ok = rg_audit_spool_open(a, true) == 0 && rg_audit_spool_lock(a) == 0;
	for (size_t i = first; i < n; i++) {
		if (o[i].rc != 1)
			continue;
		if (!ok || rg_audit_spool_append_locked(a, o[i].msg) != 0)
			o[i].rc = -1;
		a->tk_turn++;
	}
	if (ok)
		rg_audit_spool_unlock(a);
	snprintf(err, errlen, "%s", a->spool_err);
	pthread_cond_broadcast(&a->spool_cv);
	pthread_mutex_unlock(&a->spool_mu);
}

/* May the spool hold records?  Per record this costs nothing while the
 * spool is believed empty, and one stat() every RG_AUDIT_SPOOL_RECHECK_MS
 * for what other processes appended.  Cleared only with no append of this
 * sink pending.  a->mu held. */
static bool rg_audit_spool_pending(struct rg_audit *a, int64_t now)
{
	struct stat st;
	if (!a->spool_path)
		return false;
	if (!a->spool_maybe && now - a->spool_checked_ms < RG_AUDIT_SPOOL_RECHECK_MS)
		return false;
	a->spool_checked_ms = now;
	if (stat(a->spool_path, &st) == 0 && st.st_size > RG_AUDIT_SPOOL_HDR)
		a->spool_maybe = true;
	else if (a->tk_pending == 0)
		a->spool_maybe = false;
	return a->spool_maybe;
}

/* ------------------------------------------------------------------ */
/* the worker: the delivery thread, or rg_audit_flush (a->work_mu)     */

/* A record of the sink's own (audit.replayed, audit.lost), from the worker
 * with spool_mu (if there is a spool) and mu held, the file not locked: sent when
 * nothing is ahead, kept in memory first in line when the target is only
 * busy, else spooled (without a spool: kept in memory while the target is
 * up).  0 sent, 1 spooled/kept, -1 lost (counted). */
static int rg_audit_internal(struct rg_audit *a, int sev, const char *event, const struct rg_kv *kv,
			     size_t n, int64_t now)
{
	uint64_t seq = 0;
	char *msg = rg_audit_build(a, sev, event, kv, n, &seq);
	if (!msg) {
		rg_audit_seterr(a, "audit: out of memory formatting a record");
		rg_audit_count_lost(a, atomic_load(&rg_audit_seq));
		return -1;
	}
	struct rg_audit_rec *r = rg_audit_rec_new(msg, seq);
	if (!r) {
		free(msg);
		rg_audit_count_lost(a, seq);
		return -1;
	}
	bool clear = !a->q_next && a->tk_pending == 0 && !a->spool_maybe;
	if (clear && rg_audit_usable(a) && rg_audit_write(a, r, false, now) > 0) {
		rg_audit_q_link(a, r);
		return 0;
	}
	if (clear && rg_audit_usable(a) && a->q_bytes < RG_AUDIT_NOSPOOL_MAX) {
		/* the target is there, only busy: it waits in memory, first in
		 * line (records that come meanwhile queue behind it in the spool) */
		rg_audit_q_link(a, r);
		return 1;
	}
	if (a->spool_path) {
		int rc = -1;
		if (rg_audit_spool_open(a, true) == 0 && rg_audit_spool_lock(a) == 0) {
			rc = rg_audit_spool_append_locked(a, msg);
			rg_audit_spool_unlock(a);
		}
		if (rc == 0) {
			a->spool_maybe = true;
			rg_audit_rec_free(r);
			return 1;
		}
		rg_audit_seterr(a, "%s", a->spool_err);
	} else if (!a->target_down && a->q_bytes < RG_AUDIT_NOSPOOL_MAX) {
		rg_audit_q_link(a, r);
		return 1;
	}
	rg_audit_rec_free(r);
	rg_audit_count_lost(a, seq);
	return -1;
}

/* Tell the trail about records that could not be kept.  As rg_audit_internal. */
static void rg_audit_report_lost(struct rg_audit *a, int64_t now)
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
	if (rg_audit_internal(a, LOG_ERR, "audit.lost", kv, 3, now) < 0)
		/* nowhere to put it either: this report is lost too, report both later */
		rg_audit_count_lost_range(a, lost, first_seq, last_seq);
}

/* Lock a->mu, but give up after a few ms: the worker holds the spool's
 * flock() meanwhile, which other processes wait for. */
static bool rg_audit_lock_briefly(struct rg_audit *a)
{
	for (int i = 0; i < 20; i++) {
		if (pthread_mutex_trylock(&a->mu) == 0)
			return true;
		usleep(50);
	}
	return false;
}

/* Send one spooled line, if nothing is ahead and the socket takes it now.
 * 1 written (whole or begun), 0 not now. */
static int rg_audit_replay_one(struct rg_audit *a, const char *line, size_t len, int64_t now)
{
	int rc = 0;
	if (!rg_audit_lock_briefly(a))
		return 0;
	if (rg_audit_usable(a) && !a->q_next && a->q_bytes < RG_AUDIT_QUEUE_MAX) {
		char *msg = strndup(line, len);
		struct rg_audit_rec *r = msg ? rg_audit_rec_new(msg, 0) : NULL;
		if (!r) {
			free(msg);
			rg_audit_seterr(a, "audit: out of memory");
		} else if (rg_audit_write(a, r, false, now) > 0) {
			rg_audit_q_link(a, r);
			rc = 1;
		} else {
			rg_audit_rec_free(r);
		}
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

/* One slice of replay (a->work_mu held).  0: nothing to replay now, 1: more
 * at once, 2: blocked (target busy or away, spool locked elsewhere): again
 * shortly. */
static int rg_audit_replay(struct rg_audit *a, int64_t now)
{
	struct rg_audit_spool_hdr h;
	struct stat st;
	off_t size;
	int ret = 0;
	bool emptied = false;
	uint64_t replayed = 0;

	if (!a->spool_path)
		return 0;
	pthread_mutex_lock(&a->mu);
	bool look = a->spool_maybe || now - a->spool_checked_ms >= RG_AUDIT_SPOOL_RECHECK_MS;
	pthread_mutex_unlock(&a->mu);
	if (!look)
		return 0;

	pthread_mutex_lock(&a->spool_mu);
	/* the file is looked at with appends kept out (spool_mu): empty and no
	 * ticket pending means nothing of this sink is waiting */
	bool some = stat(a->spool_path, &st) == 0 && st.st_size > RG_AUDIT_SPOOL_HDR;
	pthread_mutex_lock(&a->mu);
	a->spool_checked_ms = now;
	if (some)
		a->spool_maybe = true; /* perhaps another process's: ours queue behind them */
	else if (a->tk_pending == 0)
		a->spool_maybe = false;
	pthread_mutex_unlock(&a->mu);
	if (!some)
		goto out;
	if (!a->rbuf && !(a->rbuf = malloc(RG_AUDIT_SPOOL_LINE_MAX + 1)))
		goto out;
	if (rg_audit_spool_open(a, false) != 0)
		goto out;
	if (atomic_load(&rg_audit_appenders) > 0 || flock(a->spool_fd, LOCK_EX | LOCK_NB) != 0) {
		ret = 2; /* a record is being spooled, or another process replays */
		goto out;
	}
	if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
		goto unlock;
	uint64_t head0 = h.head;
	unsigned count = 0;
	int64_t end_us = rg_audit_now_us() + RG_AUDIT_SLICE_US;
	while ((off_t)h.head < size && ret == 0) {
		ssize_t n = pread(a->spool_fd, a->rbuf, RG_AUDIT_SPOOL_LINE_MAX, (off_t)h.head);
		if (n <= 0) {
			rg_audit_spool_seterr(a, "audit: reading spool %s: %s", a->spool_path,
					      n < 0 ? strerror(errno) : "unexpected end");
			break;
		}
		char *p = a->rbuf, *end = a->rbuf + n, *nl = memchr(p, '\n', (size_t)n);
		if (!nl) { /* torn tail (crash mid-append) or garbage: skip it */
			h.head = (uint64_t)size;
			break;
		}
		for (; nl; nl = memchr(p, '\n', (size_t)(end - p))) {
			if (atomic_load(&rg_audit_appenders) > 0) {
				ret = 2; /* let it in */
				break;
			}
			if (count >= RG_AUDIT_SLICE_RECORDS || rg_audit_now_us() >= end_us) {
				ret = 1;
				break;
			}
			size_t len = (size_t)(nl - p);
			if (len > 0 && rg_audit_replay_one(a, p, len, now) == 0) {
				ret = 2;
				break;
			}
			h.head += len + 1;
			h.replayed += len > 0;
			count++;
			p = nl + 1;
		}
	}
	if (h.head != head0 && rg_audit_spool_hdr_write(a, &h) != 0)
		goto unlock;
	if ((off_t)h.head >= size && rg_audit_lock_briefly(a)) {
		if (a->tk_pending == 0) { /* empty, and no append of ours pending */
			replayed = h.replayed;
			h.head = RG_AUDIT_SPOOL_HDR;
			h.replayed = 0;
			if (ftruncate(a->spool_fd, RG_AUDIT_SPOOL_HDR) != 0 ||
			    rg_audit_spool_hdr_write(a, &h) != 0) {
				rg_audit_spool_seterr(a, "audit: truncating spool %s: %s",
						      a->spool_path, strerror(errno));
			} else {
				a->spool_maybe = false;
				emptied = true;
			}
		}
		pthread_mutex_unlock(&a->mu);
	}
unlock:
	rg_audit_spool_unlock(a);
	if (emptied) {
		/* formatted with the file unlocked (a fork()ed child that hangs
		 * formatting must not keep other processes out of the spool);
		 * spool_mu keeps this sink's appends behind them */
		pthread_mutex_lock(&a->mu);
		if (replayed > 0) {
			char c[24];
			snprintf(c, sizeof c, "%llu", (unsigned long long)replayed);
			struct rg_kv kv[] = { { "count", c } };
			rg_audit_internal(a, LOG_NOTICE, "audit.replayed", kv, 1, now);
		}
		if (!a->spool_maybe)
			rg_audit_report_lost(a, now);
		pthread_mutex_unlock(&a->mu);
	}
out:
	if (a->spool_err[0]) {
		pthread_mutex_lock(&a->mu);
		rg_audit_seterr(a, "%s", a->spool_err);
		pthread_mutex_unlock(&a->mu);
		a->spool_err[0] = '\0';
	}
	pthread_mutex_unlock(&a->spool_mu);
	return ret;
}

/* One round of delivery work.  Returns how long to wait (ms) before the
 * next: 0 at once, RG_AUDIT_TICK_MS while records are in flight or the
 * target is busy, until the next reconnect, or RG_AUDIT_IDLE_MS. */
static int rg_audit_work(struct rg_audit *a)
{
	int64_t now = rg_audit_now_ms();

	pthread_mutex_lock(&a->mu);
	if (rg_audit_usable(a) && a->stype == SOCK_STREAM && rg_audit_peer_gone(a)) {
		rg_audit_seterr(a, "audit: the receiver closed the connection");
		a->broken = true;
	}
	if (a->broken)
		rg_audit_disconnect(a, now);
	bool want = a->q_next || a->spool_maybe || a->lost > 0;
	if (a->fd < 0 && want && now >= a->retry_ms) {
		if (a->kind == RG_AUDIT_T_TCP && !a->ai) {
			/* a name: resolved here, never on a caller's thread */
			struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
			struct addrinfo *ai = NULL;
			pthread_mutex_unlock(&a->mu);
			int rc = getaddrinfo(a->host, a->port, &hints, &ai);
			pthread_mutex_lock(&a->mu);
			if (rc != 0) {
				rg_audit_seterr(a, "audit: cannot resolve %s: %s", a->host,
						gai_strerror(rc));
				rg_audit_backoff(a, now);
			} else if (a->ai) {
				freeaddrinfo(ai);
			} else {
				a->ai = ai;
			}
		}
		if (a->fd < 0 && (a->kind == RG_AUDIT_T_UNIX || a->ai) && now >= a->retry_ms)
			rg_audit_connect(a, now);
	}
	if (a->fd >= 0 && a->connecting)
		rg_audit_connect_check(a, now);
	/* the frame begun, then what is to be sent again: one record per hold
	 * of the mutex, so that callers never wait for more than one write */
	while (rg_audit_usable(a) && a->q_next && rg_audit_write(a, a->q_next, true, now) > 0) {
		pthread_mutex_unlock(&a->mu);
		pthread_mutex_lock(&a->mu);
	}
	rg_audit_watch(a);
	pthread_mutex_unlock(&a->mu);

	int sp = rg_audit_replay(a, now);

	if (a->spool_path)
		pthread_mutex_lock(&a->spool_mu);
	pthread_mutex_lock(&a->mu);
	if (a->lost > 0 && !a->spool_maybe && a->tk_pending == 0 && !a->q_next && rg_audit_usable(a))
		rg_audit_report_lost(a, now);
	if (a->spool_path) {
		if (a->spool_err[0])
			rg_audit_seterr(a, "%s", a->spool_err);
		a->spool_err[0] = '\0';
	}
	int wait = RG_AUDIT_IDLE_MS;
	now = rg_audit_now_ms();
	if (a->broken || sp == 1)
		wait = 0;
	else if (a->fd < 0 && (a->q_next || a->spool_maybe || a->lost > 0))
		wait = a->retry_ms > now ? (int)(a->retry_ms - now) : RG_AUDIT_TICK_MS;
	else if (a->q_head || a->connecting || sp == 2)
		wait = RG_AUDIT_TICK_MS;
	pthread_mutex_unlock(&a->mu);
	if (a->spool_path)
		pthread_mutex_unlock(&a->spool_mu);
	return wait;
}

static void rg_audit_wait(struct rg_audit *a, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&a->cv, &a->mu, &ts);
}

/* The delivery thread.  Its signals are blocked (set here, not around
 * pthread_create: a caller must never be left with its signals blocked):
 * the host's signals are the host's. */
static void *rg_audit_thread(void *arg)
{
	struct rg_audit *a = arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&a->mu);
	while (!a->stopping) {
		a->kick = false;
		pthread_mutex_unlock(&a->mu);
		pthread_mutex_lock(&a->work_mu);
		int wait = rg_audit_work(a);
		pthread_mutex_unlock(&a->work_mu);
		pthread_mutex_lock(&a->mu);
		if (a->stopping || a->kick || wait <= 0)
			continue;
		if (a->full && rg_audit_usable(a)) {
			/* the socket is full: on again as soon as it takes more (only
			 * the worker closes it, and a flush that does makes this
			 * return early at worst) */
			struct pollfd p = { .fd = a->fd, .events = POLLOUT };
			pthread_mutex_unlock(&a->mu);
			poll(&p, 1, wait < RG_AUDIT_TICK_MS ? wait : RG_AUDIT_TICK_MS);
			pthread_mutex_lock(&a->mu);
		} else {
			rg_audit_wait(a, wait);
		}
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* Start the delivery thread if it is not running yet, else wake it.
 * a->mu held. */
static void rg_audit_wake(struct rg_audit *a)
{
	if (a->stopping)
		return;
	if (!a->thread_started) {
		int rc = pthread_create(&a->thread, NULL, rg_audit_thread, a);
		if (rc != 0) {
			rg_audit_seterr(a, "audit: cannot start the delivery thread: %s", strerror(rc));
			return; /* the next record tries again; the spool keeps them meanwhile */
		}
		a->thread_started = true;
		a->thread_pid = getpid();
		return;
	}
	a->kick = true;
	pthread_cond_signal(&a->cv);
}

/* ------------------------------------------------------------------ */
/* emitting                                                            */

/* Send o's record now if nothing is ahead of it and the socket takes it
 * (a frame begun counts: the thread finishes it), else hand it a spool
 * ticket (without a spool: keep it in memory while the target is up).
 * a->mu held.  Sets o->rc: 0 sent, 1 to be appended, 2 kept, -1 lost. */
static void rg_audit_route(struct rg_audit *a, struct rg_audit_out *o, int64_t now)
{
	bool clear = !a->q_next && a->tk_pending == 0 && a->q_bytes < RG_AUDIT_QUEUE_MAX &&
		     !rg_audit_spool_pending(a, now);
	if (clear && a->fd < 0 && !a->thread_started && now >= a->retry_ms)
		rg_audit_connect(a, now); /* non-blocking: unix, or tcp to an address */
	if (clear && a->fd >= 0 && a->connecting)
		rg_audit_connect_check(a, now);
	if (clear && rg_audit_usable(a)) {
		struct rg_audit_rec *r = rg_audit_rec_new(o->msg, o->seq);
		if (r) {
			if (rg_audit_write(a, r, false, now) > 0) {
				rg_audit_q_link(a, r);
				o->msg = NULL;
				o->rc = 0;
				return;
			}
			r->msg = NULL;
			rg_audit_rec_free(r);
		}
	}
	if (a->spool_path) {
		o->ticket = a->tk_next++;
		a->tk_pending++;
		a->spool_maybe = true;
		o->rc = 1;
		return;
	}
	if (!a->target_down && a->q_bytes < RG_AUDIT_NOSPOOL_MAX) {
		struct rg_audit_rec *r = rg_audit_rec_new(o->msg, o->seq);
		if (r) {
			rg_audit_q_link(a, r);
			o->msg = NULL;
			o->rc = 2;
			return;
		}
	}
	o->rc = -1;
}

int rg_audit_emit(struct rg_audit *a, int severity, const char *event, const struct rg_kv *fields,
		  size_t nfields)
{
	struct rg_audit_out out[2];
	size_t nout = 0;
	char err[sizeof a->spool_err] = "";

	if (!a || a->pid != getpid())
		return -1; /* a fork()ed child never uses its parent's sink */
	memset(out, 0, sizeof out);
	pthread_mutex_lock(&a->mu);
	int64_t now = rg_audit_now_ms();
	if (a->lost > 0) {
		/* what could not be kept is reported first, in order */
		char count[24], first[24], last[24];
		struct rg_audit_out *o = &out[0];
		o->report = true;
		o->r_count = a->lost;
		o->r_first = a->lost_first;
		o->r_last = a->lost_last;
		snprintf(count, sizeof count, "%llu", (unsigned long long)o->r_count);
		snprintf(first, sizeof first, "%llu", (unsigned long long)o->r_first);
		snprintf(last, sizeof last, "%llu", (unsigned long long)o->r_last);
		struct rg_kv kv[] = { { "count", count }, { "first_seq", first }, { "last_seq", last } };
		o->msg = rg_audit_build(a, LOG_ERR, "audit.lost", kv, 3, &o->seq);
		if (o->msg) {
			a->lost = a->lost_first = a->lost_last = 0;
			nout++;
		}
	}
	struct rg_audit_out *rec = &out[nout];
	rec->msg = rg_audit_build(a, severity, event, fields, nfields, &rec->seq);
	bool built = rec->msg != NULL;
	if (built) {
		nout++;
	} else {
		rg_audit_seterr(a, "audit: out of memory formatting a record");
		rg_audit_count_lost(a, atomic_load(&rg_audit_seq));
	}
	bool spooling = false;
	for (size_t i = 0; i < nout; i++) {
		rg_audit_route(a, &out[i], now);
		if (out[i].rc == 1) {
			out[i].ticketed = true;
			spooling = true;
		}
	}
	if (spooling) {
		/* appended without a->mu: other threads format and send meanwhile */
		pthread_mutex_unlock(&a->mu);
		rg_audit_spool_put(a, out, nout, err, sizeof err);
		pthread_mutex_lock(&a->mu);
		for (size_t i = 0; i < nout; i++)
			if (out[i].ticketed)
				a->tk_pending--;
	}
	if (built && rec->rc != 0)
		rg_audit_why(a, rec->rc < 0 && rec->ticketed ? err : NULL);
	for (size_t i = 0; i < nout; i++) {
		if (out[i].rc >= 0)
			continue;
		if (out[i].ticketed && err[0])
			rg_audit_seterr(a, "%s", err);
		if (out[i].report) /* the report is lost too: report both later */
			rg_audit_count_lost_range(a, out[i].r_count, out[i].r_first, out[i].r_last);
		rg_audit_count_lost(a, out[i].seq);
	}
	/* the thread is needed when something waits, the connection broke, or
	 * the receiver has not read a record for longer than a short-lived
	 * process (rotagatectl) lives */
	if (spooling || a->q_next || a->broken || a->lost > 0 ||
	    (a->q_unread && now - a->q_unread->sent_ms >= RG_AUDIT_LAZY_MS))
		rg_audit_wake(a);
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < nout; i++)
		free(out[i].msg);
	if (!built)
		return -1;
	return rec->rc == 0 ? 0 : rec->rc > 0 ? 1 : -1;
}

/* Delivered: the spool empty, nothing in memory waiting to be written,
 * nothing lost unreported (records written may still wait to be known
 * read).  a->mu held. */
static bool rg_audit_delivered(const struct rg_audit *a)
{
	return !a->spool_maybe && a->tk_pending == 0 && !a->q_next && a->lost == 0;
}

/* Every record written is known read.  a->mu held. */
static bool rg_audit_all_read(const struct rg_audit *a)
{
	return rg_audit_delivered(a) && !a->q_unread;
}

/* Run the worker on this thread until done(a) or the deadline.  0 done, 1 not. */
static int rg_audit_work_until(struct rg_audit *a, int64_t deadline,
			       bool (*done)(const struct rg_audit *))
{
	for (;;) {
		pthread_mutex_lock(&a->work_mu);
		int wait = rg_audit_work(a);
		pthread_mutex_unlock(&a->work_mu);
		pthread_mutex_lock(&a->mu);
		bool ok = done(a);
		pthread_mutex_unlock(&a->mu);
		if (ok)
			return 0;
		int64_t left = deadline - rg_audit_now_ms();
		if (left <= 0)
			return 1;
		if (wait > 0) /* target busy or away: again shortly */
			usleep((useconds_t)(left < RG_AUDIT_TICK_MS ? left : RG_AUDIT_TICK_MS) * 1000);
	}
}

static int rg_audit_flush_until(struct rg_audit *a, int64_t deadline)
{
	pthread_mutex_lock(&a->mu);
	if (a->spool_path)
		a->spool_maybe = true; /* an explicit flush looks at the file */
	pthread_mutex_unlock(&a->mu);
	return rg_audit_work_until(a, deadline, rg_audit_delivered);
}

int rg_audit_flush(struct rg_audit *a, int timeout_ms)
{
	if (!a || a->pid != getpid())
		return -1;
	int rc = rg_audit_flush_until(a, rg_audit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0));
	pthread_mutex_lock(&a->mu);
	if (a->q_head)
		rg_audit_wake(a); /* records not yet known read: the thread watches them */
	pthread_mutex_unlock(&a->mu);
	return rc;
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
	pthread_mutex_lock(&a->spool_mu);
	a->spool_max = bytes;
	pthread_mutex_unlock(&a->spool_mu);
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
		/* an address is resolved now (no lookup); a name by the delivery
		 * thread, never on a caller's thread */
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
					  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
		if (getaddrinfo(a->host, a->port, &hints, &a->ai) != 0)
			a->ai = NULL;
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
	pthread_condattr_t ca;
	if (!a) {
		snprintf(err, errlen, "audit: out of memory");
		return NULL;
	}
	a->fd = -1;
	a->spool_fd = -1;
	a->spool_max = RG_AUDIT_SPOOL_MAX_DEFAULT;
	a->backoff_ms = RG_AUDIT_BACKOFF_MIN_MS;
	a->pid = getpid();
	if (pthread_condattr_init(&ca) != 0) {
		free(a);
		snprintf(err, errlen, "audit: cannot create a condition variable");
		return NULL;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	bool ok = pthread_mutex_init(&a->mu, NULL) == 0;
	ok = pthread_mutex_init(&a->work_mu, NULL) == 0 && ok;
	ok = pthread_mutex_init(&a->spool_mu, NULL) == 0 && ok;
	ok = pthread_cond_init(&a->cv, &ca) == 0 && ok;
	ok = pthread_cond_init(&a->spool_cv, NULL) == 0 && ok;
	pthread_condattr_destroy(&ca);
	if (!ok) {
		free(a); /* (on Linux these allocate nothing) */
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
	return a;
fail:
	rg_audit_free_wait(a, 0);
	return NULL;
}

/* The sink goes: what is still in memory.  Records the receiver has (whole)
 * stay with it when it is still there; otherwise, and for what was not
 * written whole, they go to the spool (in front of what waits there when
 * there is room before its head, else behind it: then they arrive after
 * newer ones).  Then one last try to report lost records.  No other thread
 * uses the sink any more. */
static void rg_audit_finish(struct rg_audit *a)
{
	int64_t now = rg_audit_now_ms();
	pthread_mutex_lock(&a->spool_mu);
	pthread_mutex_lock(&a->mu);
	if (a->q_head) {
		const struct rg_audit_rec *from = a->q_head;
		if (rg_audit_usable(a) && rg_audit_alive(a) > 0)
			from = a->q_next;
		if (from && rg_audit_spool_save(a, from) != 0) {
			rg_audit_seterr(a, "%s", a->spool_err);
			for (const struct rg_audit_rec *r = from; r; r = r->next)
				rg_audit_count_lost(a, r->seq);
		} else if (from) {
			a->spool_maybe = true;
		}
		rg_audit_q_free(a);
	}
	if (a->lost > 0) {
		/* the count of lost records dies with the sink: one last try to
		 * put the audit.lost report somewhere (target, else spool), so
		 * short-lived processes (rotagatectl) and replaced generations
		 * report it too */
		rg_audit_spool_pending(a, now);
		rg_audit_report_lost(a, now);
		/* a frame the socket took only part of: kept whole in the spool */
		if (a->q_next && a->q_next->off > 0 && rg_audit_spool_save(a, a->q_next) != 0)
			rg_audit_seterr(a, "%s", a->spool_err);
		rg_audit_q_free(a);
	}
	pthread_mutex_unlock(&a->mu);
	pthread_mutex_unlock(&a->spool_mu);
}

void rg_audit_free(struct rg_audit *a)
{
	rg_audit_free_wait(a, 1000);
}

void rg_audit_free_wait(struct rg_audit *a, int flush_ms)
{
	if (!a)
		return;
	if (a->pid != getpid())
		return; /* inherited through fork(): the parent's, with a thread that is
			 * not here; the child leaves it alone */
	int64_t deadline = rg_audit_now_ms() + (flush_ms > 0 ? flush_ms : 0);
	bool pending = false;
	if (a->ctx) {
		pthread_mutex_lock(&a->mu);
		pending = a->spool_maybe || a->tk_pending > 0 || a->q_head;
		pthread_mutex_unlock(&a->mu);
		if (flush_ms > 0 && pending)
			rg_audit_flush_until(a, deadline);
	}
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	bool join = a->thread_started && a->thread_pid == getpid();
	pthread_cond_signal(&a->cv);
	pthread_mutex_unlock(&a->mu);
	if (join)
		pthread_join(a->thread, NULL);
	/* records written: until the receiver is known to have read them (not
	 * the grace period after that: a process that ends does not wait for it) */
	if (a->ctx && flush_ms > 0 && pending)
		rg_audit_work_until(a, deadline, rg_audit_all_read);
	if (a->ctx)
		rg_audit_finish(a);
	rg_audit_q_free(a);
	if (a->fd >= 0)
		close(a->fd);
	rg_audit_spool_close(a);
	if (a->ctx)
		evt_ctx_free(a->ctx);
	if (a->ai)
		freeaddrinfo(a->ai);
	free(a->rbuf);
	free(a->host);
	free(a->port);
	free(a->spool_dir);
	free(a->spool_path);
	pthread_cond_destroy(&a->cv);
	pthread_cond_destroy(&a->spool_cv);
	pthread_mutex_destroy(&a->mu);
	pthread_mutex_destroy(&a->work_mu);
	pthread_mutex_destroy(&a->spool_mu);
	free(a);
}
