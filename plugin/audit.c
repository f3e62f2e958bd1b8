/*
 * audit.c - audit records: libevtlog evt_format() for the text, rotagate's
 * own non-blocking sender for delivery, a flock()ed spool for what could not
 * be delivered.
 *
 * Never the libevtlog or libc logging calls (evt_log, evt_openlog, openlog,
 * syslog): they take over the host process's syslog identity, and
 * libevtlog's crashes the host after dlclose.
 *
 * Ordering: a sink's mutex serialises formatting (the EVTCONTEXT is not
 * thread-safe), seq assignment and sending, so one process's records leave
 * in seq order.  While the spool holds records, new records are appended
 * behind them; each emit replays a slice of the spool within a small time
 * budget, so a decision is never held up for long.
 */
#define _GNU_SOURCE
#include "audit.h"
#include "calendar.h"
#include "fsutil.h"

#include <errno.h>
#include <evtlog.h>
#include <fcntl.h>
#include <limits.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define RG_AUDIT_DEVLOG "/dev/log"
#define RG_AUDIT_SEND_WAIT_MS 2       /* wait for room in the socket, per record */
#define RG_AUDIT_PARTIAL_WAIT_MS 200  /* finish a stream frame already started */
#define RG_AUDIT_CONNECT_WAIT_MS 2    /* a tcp connect may continue in the background */
#define RG_AUDIT_REPLAY_BUDGET_MS 5   /* spool replay per emit */
#define RG_AUDIT_SPOOL_LOCK_WAIT_MS 20
#define RG_AUDIT_SPOOL_RECHECK_MS 100 /* look at a spool believed empty at most this often */
#define RG_AUDIT_SPOOL_NAME "audit.spool"
#define RG_AUDIT_SPOOL_MAGIC "RGSPOOL1"
#define RG_AUDIT_SPOOL_HDR 32         /* magic[8] head[8] replayed[8] reserved[8] */
#define RG_AUDIT_SPOOL_LINE_MAX 65536
#define RG_AUDIT_KEY_MAX 32           /* RFC 5424 PARAM-NAME */
#define RG_AUDIT_IDENT_MAX 48         /* RFC 5424 APP-NAME */

enum rg_audit_kind { RG_AUDIT_T_UNIX, RG_AUDIT_T_TCP };

struct rg_audit {
	pthread_mutex_t mu;
	enum rg_audit_kind kind;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *host, *port;
	struct addrinfo *ai;
	int fd;
	int stype;          /* SOCK_DGRAM or SOCK_STREAM once connected */
	bool connecting;    /* tcp connect in progress */
	enum rg_audit_format format;
	int facility;
	char ident[RG_AUDIT_IDENT_MAX + 1];
	char hostname[256];
	EVTCONTEXT *ctx;
	char *spool_dir, *spool_path;
	size_t spool_max;
	int spool_fd;
	dev_t spool_dev;
	ino_t spool_ino;
	/* "The spool may hold records": set when this sink appends (and at
	 * start), cleared when a replay or a look at the file finds it empty.
	 * Other processes append to the same file, so while it is clear the
	 * file is still looked at every RG_AUDIT_SPOOL_RECHECK_MS. */
	bool spool_maybe;
	int64_t spool_checked_ms;
	uint64_t lost, lost_first, lost_last;
	char config_sha[72]; /* last one a caller passed: the sink's own records carry it too */
	char err[256];
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
/* transport                                                           */

static int64_t rg_audit_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 2, 3))) static void rg_audit_seterr(struct rg_audit *a,
								   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof a->err, fmt, ap);
	va_end(ap);
}

static void rg_audit_disconnect(struct rg_audit *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
	a->connecting = false;
}

static int rg_audit_connect_unix(struct rg_audit *a)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	static const int types[] = { SOCK_DGRAM, SOCK_STREAM };

	memcpy(sa.sun_path, a->unix_path, sizeof sa.sun_path);
	for (size_t i = 0; i < 2; i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rg_audit_seterr(a, "audit: socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			a->fd = fd;
			a->stype = types[i];
			return 0;
		}
		int e = errno;
		close(fd);
		if (e != EPROTOTYPE) { /* EPROTOTYPE: the peer is a stream socket */
			rg_audit_seterr(a, "audit: connect %s: %s", a->unix_path, strerror(e));
			return -1;
		}
	}
	return -1;
}

static int rg_audit_connect_tcp(struct rg_audit *a)
{
	if (!a->connecting) {
		if (!a->ai) {
			struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
						  .ai_flags = AI_ADDRCONFIG };
			int rc = getaddrinfo(a->host, a->port, &hints, &a->ai);
			if (rc != 0) {
				a->ai = NULL;
				rg_audit_seterr(a, "audit: cannot resolve %s: %s", a->host,
						gai_strerror(rc));
				return -1;
			}
		}
		int fd = socket(a->ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rg_audit_seterr(a, "audit: socket: %s", strerror(errno));
			return -1;
		}
		if (connect(fd, a->ai->ai_addr, a->ai->ai_addrlen) == 0) {
			a->fd = fd;
			a->stype = SOCK_STREAM;
			return 0;
		}
		if (errno != EINPROGRESS) {
			rg_audit_seterr(a, "audit: connect %s:%s: %s", a->host, a->port,
					strerror(errno));
			close(fd);
			return -1;
		}
		a->fd = fd;
		a->stype = SOCK_STREAM;
		a->connecting = true;
	}
	struct pollfd p = { .fd = a->fd, .events = POLLOUT };
	if (poll(&p, 1, RG_AUDIT_CONNECT_WAIT_MS) <= 0) {
		rg_audit_seterr(a, "audit: connect %s:%s: in progress", a->host, a->port);
		return -1; /* keep connecting in the background */
	}
	int err = 0;
	socklen_t len = sizeof err;
	if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		rg_audit_seterr(a, "audit: connect %s:%s: %s", a->host, a->port, strerror(err));
		rg_audit_disconnect(a);
		return -1;
	}
	a->connecting = false;
	return 0;
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

static int rg_audit_connect(struct rg_audit *a)
{
	if (a->fd >= 0 && !a->connecting) {
		if (a->stype == SOCK_STREAM && rg_audit_peer_gone(a))
			rg_audit_disconnect(a);
		else
			return 0;
	}
	return a->kind == RG_AUDIT_T_TCP ? rg_audit_connect_tcp(a) : rg_audit_connect_unix(a);
}

/* Frame `msg` for the connected transport. */
static char *rg_audit_frame(struct rg_audit *a, const char *msg, size_t len, size_t *flen)
{
	char pre[24] = "";
	size_t plen = 0, tail = 0;

	if (a->kind == RG_AUDIT_T_TCP)
		plen = (size_t)snprintf(pre, sizeof pre, "%zu ", len); /* RFC 6587 octet counting */
	else if (a->stype == SOCK_STREAM)
		tail = 1; /* newline framing on a unix stream */
	char *f = malloc(plen + len + tail + 1);
	if (!f)
		return NULL;
	memcpy(f, pre, plen);
	memcpy(f + plen, msg, len);
	if (tail)
		f[plen + len] = '\n';
	f[plen + len + tail] = '\0';
	*flen = plen + len + tail;
	return f;
}

/* Send one frame without blocking for more than a few ms.  0 or -1. */
static int rg_audit_send_frame(struct rg_audit *a, const char *buf, size_t len)
{
	size_t off = 0;
	int64_t deadline = rg_audit_now_ms() + RG_AUDIT_SEND_WAIT_MS;

	while (off < len) {
		ssize_t n = send(a->fd, buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			if (off == 0 && n > 0 && (size_t)n < len)
				deadline = rg_audit_now_ms() + RG_AUDIT_PARTIAL_WAIT_MS;
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			int64_t left = deadline - rg_audit_now_ms();
			struct pollfd p = { .fd = a->fd, .events = POLLOUT };
			if (left > 0 && poll(&p, 1, (int)left) > 0)
				continue;
			rg_audit_seterr(a, "audit: target busy, record not sent within %d ms",
					RG_AUDIT_SEND_WAIT_MS);
		} else {
			rg_audit_seterr(a, "audit: send: %s", strerror(errno));
			rg_audit_disconnect(a);
			return -1;
		}
		if (off > 0) /* half a frame on a stream: the stream is unusable */
			rg_audit_disconnect(a);
		return -1;
	}
	return 0;
}

/* Deliver one message now.  Reconnects once if the old connection is dead. */
static int rg_audit_send(struct rg_audit *a, const char *msg)
{
	size_t mlen = strlen(msg);
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = a->fd < 0;
		if (rg_audit_connect(a) != 0)
			return -1;
		size_t flen;
		char *frame = rg_audit_frame(a, msg, mlen, &flen);
		if (!frame) {
			rg_audit_seterr(a, "audit: out of memory");
			return -1;
		}
		int rc = rg_audit_send_frame(a, frame, flen);
		free(frame);
		if (rc == 0)
			return 0;
		if (fresh || a->fd >= 0)
			return -1; /* a new connection failed, or the target is just busy */
	}
	return -1;
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

static int rg_audit_spool_lock(struct rg_audit *a)
{
	int64_t deadline = rg_audit_now_ms() + RG_AUDIT_SPOOL_LOCK_WAIT_MS;
	for (;;) {
		if (flock(a->spool_fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rg_audit_seterr(a, "audit: cannot lock spool %s: %s", a->spool_path,
					strerror(errno));
			return -1;
		}
		if (rg_audit_now_ms() >= deadline) {
			rg_audit_seterr(a, "audit: spool %s stayed locked for %d ms", a->spool_path,
					RG_AUDIT_SPOOL_LOCK_WAIT_MS);
			return -1;
		}
		usleep(200);
	}
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

/* Append one message.  Lock held.  0, or -1 (full, I/O) with a->err set. */
static int rg_audit_spool_append_locked(struct rg_audit *a, const char *msg)
{
	struct rg_audit_spool_hdr h;
	off_t size;
	size_t len = strlen(msg);

	if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
		return -1;
	if ((uint64_t)size - h.head + len + 1 > a->spool_max) {
		rg_audit_seterr(a,
				"audit: spool %s is full (%zu bytes waiting, limit %zu): record lost",
				a->spool_path, (size_t)((uint64_t)size - h.head), a->spool_max);
		return -1;
	}
	if ((uint64_t)size > 2 * (uint64_t)a->spool_max && rg_audit_spool_compact(a, &h, &size) != 0)
		return -1;
	char *line = malloc(len + 1);
	if (!line) {
		rg_audit_seterr(a, "audit: out of memory");
		return -1;
	}
	memcpy(line, msg, len);
	line[len] = '\n';
	ssize_t n = pwrite(a->spool_fd, line, len + 1, size);
	free(line);
	if (n != (ssize_t)(len + 1)) {
		rg_audit_seterr(a, "audit: writing spool %s: %s", a->spool_path,
				n < 0 ? strerror(errno) : "short write");
		if (ftruncate(a->spool_fd, size) != 0) {
			/* nothing more to do: the header still points before it */
		}
		return -1;
	}
	return 0;
}

static int rg_audit_spool_append(struct rg_audit *a, const char *msg)
{
	if (!a->spool_path) {
		return -1; /* a->err already says why it was not sent */
	}
	if (rg_audit_spool_open(a, true) != 0 || rg_audit_spool_lock(a) != 0)
		return -1;
	int rc = rg_audit_spool_append_locked(a, msg);
	rg_audit_spool_unlock(a);
	if (rc == 0)
		a->spool_maybe = true;
	return rc;
}

/* Replay from the head until empty, a send fails or the deadline passes.
 * Lock held.  Returns 1 when the spool is now empty (*replayed = records
 * replayed since it was last empty), 0 when records remain, -1 on error. */
static int rg_audit_spool_replay(struct rg_audit *a, int64_t deadline, uint64_t *replayed)
{
	struct rg_audit_spool_hdr h;
	off_t size;
	char *buf;
	int rc = 0;

	if (rg_audit_spool_hdr_read(a, &h, &size) != 0)
		return -1;
	buf = malloc(RG_AUDIT_SPOOL_LINE_MAX + 1);
	if (!buf) {
		rg_audit_seterr(a, "audit: out of memory");
		return -1;
	}
	while ((off_t)h.head < size && rg_audit_now_ms() < deadline) {
		ssize_t n = pread(a->spool_fd, buf, RG_AUDIT_SPOOL_LINE_MAX, (off_t)h.head);
		if (n <= 0) {
			rg_audit_seterr(a, "audit: reading spool %s: %s", a->spool_path,
					n < 0 ? strerror(errno) : "unexpected end");
			rc = -1;
			break;
		}
		buf[n] = '\0';
		char *nl = memchr(buf, '\n', (size_t)n);
		if (!nl) { /* torn tail (crash mid-append) or garbage: skip it */
			h.head = (uint64_t)size;
			break;
		}
		*nl = '\0';
		if (rg_audit_send(a, buf) != 0)
			break;
		h.head += (uint64_t)(nl - buf) + 1;
		h.replayed++;
	}
	free(buf);
	if (rc == 0 && (off_t)h.head >= size) {
		*replayed = h.replayed;
		h.head = RG_AUDIT_SPOOL_HDR;
		h.replayed = 0;
		if (ftruncate(a->spool_fd, RG_AUDIT_SPOOL_HDR) != 0) {
			rg_audit_seterr(a, "audit: truncating spool %s: %s", a->spool_path,
					strerror(errno));
			return -1;
		}
		return rg_audit_spool_hdr_write(a, &h) == 0 ? 1 : -1;
	}
	if (rg_audit_spool_hdr_write(a, &h) != 0)
		return -1;
	return rc;
}

/* Look at the file (no lock): does the spool hold records?  a->mu held. */
static bool rg_audit_spool_look(struct rg_audit *a)
{
	struct stat st;
	if (!a->spool_path)
		return false;
	a->spool_checked_ms = rg_audit_now_ms();
	a->spool_maybe = stat(a->spool_path, &st) == 0 && st.st_size > RG_AUDIT_SPOOL_HDR;
	return a->spool_maybe;
}

/* May the spool hold records?  Per record this costs nothing while the
 * spool is believed empty, and one stat() every RG_AUDIT_SPOOL_RECHECK_MS
 * for what other processes appended.  a->mu held. */
static bool rg_audit_spool_pending(struct rg_audit *a)
{
	if (!a->spool_path)
		return false;
	if (!a->spool_maybe && rg_audit_now_ms() - a->spool_checked_ms < RG_AUDIT_SPOOL_RECHECK_MS)
		return false;
	return rg_audit_spool_look(a);
}

/* ------------------------------------------------------------------ */
/* emitting                                                            */

static void rg_audit_count_lost(struct rg_audit *a, uint64_t seq)
{
	if (a->lost++ == 0)
		a->lost_first = seq;
	a->lost_last = seq;
}

/* Send now (spool empty), else spool.  0 delivered, 1 spooled, -1 lost.
 * a->mu held. */
static int rg_audit_deliver(struct rg_audit *a, const char *msg, uint64_t seq, bool spool_empty)
{
	if (spool_empty && rg_audit_send(a, msg) == 0)
		return 0;
	if (rg_audit_spool_append(a, msg) == 0)
		return 1;
	rg_audit_count_lost(a, seq);
	return -1;
}

/* Build and deliver a record of the sink's own (audit.replayed, audit.lost). */
static int rg_audit_internal(struct rg_audit *a, int sev, const char *event, const struct rg_kv *kv,
			     size_t n, bool spool_empty)
{
	uint64_t seq = 0;
	char *msg = rg_audit_build(a, sev, event, kv, n, &seq);
	if (!msg) {
		rg_audit_count_lost(a, atomic_load(&rg_audit_seq));
		return -1;
	}
	int rc = rg_audit_deliver(a, msg, seq, spool_empty);
	free(msg);
	return rc;
}

/* Tell the trail about records that could not be kept, once it can take it. */
static void rg_audit_report_lost(struct rg_audit *a, bool spool_empty)
{
	char count[24], first[24], last[24];
	if (a->lost == 0)
		return;
	snprintf(count, sizeof count, "%llu", (unsigned long long)a->lost);
	snprintf(first, sizeof first, "%llu", (unsigned long long)a->lost_first);
	snprintf(last, sizeof last, "%llu", (unsigned long long)a->lost_last);
	struct rg_kv kv[] = { { "count", count }, { "first_seq", first }, { "last_seq", last } };
	uint64_t lost = a->lost, first_seq = a->lost_first, last_seq = a->lost_last;
	a->lost = 0;
	if (rg_audit_internal(a, LOG_ERR, "audit.lost", kv, 3, spool_empty) < 0) {
		/* nowhere to put it either: this report is lost too, report both later */
		uint64_t also = a->lost;
		a->lost = lost + also;
		a->lost_first = first_seq;
		if (also == 0)
			a->lost_last = last_seq;
	}
}

/* Replay what the spool holds within the deadline.  a->mu held.
 * true when the spool is (now) empty, false when records still wait there. */
static bool rg_audit_drain(struct rg_audit *a, int64_t deadline)
{
	uint64_t replayed = 0;
	char count[24];

	if (!rg_audit_spool_pending(a))
		return true;
	if (rg_audit_spool_open(a, false) != 0) {
		/* gone (empty), or there but unusable: then the flag stays set and
		 * new records queue behind it (and are lost if it cannot take them) */
		rg_audit_spool_look(a);
		return true;
	}
	if (rg_audit_spool_lock(a) != 0)
		return false;
	int rc = rg_audit_spool_replay(a, deadline, &replayed);
	rg_audit_spool_unlock(a);
	if (rc != 1)
		return false;
	a->spool_maybe = false;
	if (replayed > 0) {
		snprintf(count, sizeof count, "%llu", (unsigned long long)replayed);
		struct rg_kv kv[] = { { "count", count } };
		if (rg_audit_internal(a, LOG_NOTICE, "audit.replayed", kv, 1, true) == 1)
			return false; /* the target went away again: it waits in the spool */
	}
	return true;
}

int rg_audit_emit(struct rg_audit *a, int severity, const char *event, const struct rg_kv *fields,
		  size_t nfields)
{
	int rc = -1;
	uint64_t seq = 0;

	if (!a)
		return -1;
	pthread_mutex_lock(&a->mu);
	bool empty = rg_audit_drain(a, rg_audit_now_ms() + RG_AUDIT_REPLAY_BUDGET_MS);
	rg_audit_report_lost(a, empty);
	if (a->lost)
		empty = false; /* keep the order: nothing overtakes a pending report */
	char *msg = rg_audit_build(a, severity, event, fields, nfields, &seq);
	if (msg) {
		/* the flag, not the file: only this sink could have added to the
		 * spool since rg_audit_drain() looked (an audit.lost or
		 * audit.replayed that could not be sent) */
		rc = rg_audit_deliver(a, msg, seq, empty && !a->spool_maybe);
		free(msg);
	} else {
		rg_audit_seterr(a, "audit: out of memory formatting a record");
		rg_audit_count_lost(a, atomic_load(&rg_audit_seq));
	}
	pthread_mutex_unlock(&a->mu);
	return rc;
}

int rg_audit_flush(struct rg_audit *a, int timeout_ms)
{
	if (!a)
		return -1;
	int64_t deadline = rg_audit_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int rc;
	pthread_mutex_lock(&a->mu);
	a->spool_maybe = a->spool_path != NULL; /* an explicit flush looks at the file */
	for (;;) {
		rc = rg_audit_drain(a, deadline) ? 0 : 1;
		if (rc == 0 || rg_audit_now_ms() >= deadline)
			break;
		usleep(1000); /* target busy or gone: try again shortly */
	}
	if (rc == 0)
		rg_audit_report_lost(a, true);
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
	return a;
fail:
	rg_audit_free(a);
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
	if (a->ctx && flush_ms > 0 && rg_audit_spool_look(a))
		rg_audit_flush(a, flush_ms);
	if (a->ctx && a->lost > 0) {
		/* the count of lost records dies with the sink: one last try to
		 * put the audit.lost report somewhere (target, else spool), so
		 * short-lived processes (rotagatectl) and replaced generations
		 * report it too */
		pthread_mutex_lock(&a->mu);
		rg_audit_report_lost(a, !rg_audit_spool_look(a));
		pthread_mutex_unlock(&a->mu);
	}
	rg_audit_disconnect(a);
	rg_audit_spool_close(a);
	if (a->ctx)
		evt_ctx_free(a->ctx);
	if (a->ai)
		freeaddrinfo(a->ai);
	free(a->host);
	free(a->port);
	free(a->spool_dir);
	free(a->spool_path);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
