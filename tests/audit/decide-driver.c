/*
 * decide-driver - real decisions through the public API (rotagate_open,
 * rotagate_decide, rotagate_close) from several threads, for the audit
 * integration tests: every decision must reach syslog-ng as one record.
 *
 *   decide-driver CONF N THREADS WHEN [PAUSE_US [HOLD_FILE]]
 *
 * Decision i (0 <= i < N) is taken by thread i % THREADS, for the swipe
 * time WHEN + i (so every decision has its own `at`), and asks for entry
 * 13 of the mix below (i % 13; 13 is prime, so every thread meets every
 * entry).  Against tests/fixtures/directory.ldif on a Monday, with a
 * capacity of 4 (1 reserved for exempt staff), five people on the rota and
 * one exempt, the mix yields grants (rota-day, exempt), re-entries and
 * denials (capacity-full, not-on-rota-today, deny-group, unknown-person,
 * unknown-door, bad-input).
 *
 * PAUSE_US: each thread sleeps that long after each decision (default 0).
 * HOLD_FILE: while it exists, a thread that has taken 90% of its share
 * waits; a test removes it to let the run finish, so that the run is
 * certainly still going when the test has done what it does meanwhile.
 *
 * Prints "pid PID" at once, then after the run one line per decision, in
 * the order of i, fields separated by tabs:
 *
 *   i thread user_hex door at verdict reason site rule occupancy capacity
 *   date degraded data_age latency_us config_sha call_us offcpu_us
 *
 * (user_hex: the principal's bytes in hex; at: WHEN + i as the audit record
 * writes it; call_us: the time rotagate_decide took, audit included;
 * offcpu_us: how much of it the thread spent waiting for a CPU, from
 * /proc/thread-self/schedstat, 0 if unknown), then "done N".  Exit status 0 when the handle opened and every decision ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rotagate.h"

static const struct {
	const char *user, *door;
} mix[13] = {
	{ "alice", "main-entrance" },   /* team-a: rota-day, then re-entry ... */
	{ "frank", "side-gate" },       /* ... or capacity-full once 3 are in */
	{ "grace", "main-entrance" },
	{ "judy", "side-gate" },
	{ "mallory", "main-entrance" },
	{ "carol", "side-gate" },       /* facilities: exempt (the reserved place) */
	{ "erin", "main-entrance" },    /* in no group: not-on-rota-today */
	{ "bob", "side-gate" },         /* team-b, not on Mondays: not-on-rota-today */
	{ "dave", "main-entrance" },    /* team-a but self-isolating: deny-group */
	{ "nobody", "main-entrance" },  /* unknown-person */
	{ "o'brien", "side-gate" },     /* unknown-person, a quote to sanitise */
	{ "alice", "back-door" },       /* unknown-door */
	{ "bad\001user", "main-entrance" }, /* a control byte: bad-input */
};

struct result {
	unsigned thread;
	int64_t when;
	struct rotagate_decision dec;
	int64_t call_us, offcpu_us;
};

struct job {
	struct rotagate *h;
	unsigned thread, threads, n, pause_us;
	int64_t when;
	const char *hold;
	struct result *res;
};

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* time this thread has waited for a CPU so far, us (0 if unknown) */
static int64_t runq_wait_us(int fd)
{
	char buf[128];
	long long cpu, wait;
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return sscanf(buf, "%lld %lld", &cpu, &wait) == 2 ? wait / 1000 : 0;
}

static void *run(void *arg)
{
	struct job *j = arg;
	int sfd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	unsigned share = (j->n + j->threads - 1 - j->thread) / j->threads, done = 0;
	for (unsigned i = j->thread; i < j->n; i += j->threads, done++) {
		while (j->hold && done * 10 >= share * 9 && access(j->hold, F_OK) == 0)
			usleep(1000);
		struct result *r = &j->res[i];
		struct rotagate_request req = { .principal = mix[i % 13].user,
						.door = mix[i % 13].door,
						.when = j->when + i };
		r->thread = j->thread;
		r->when = req.when;
		int64_t t0 = mono_us(), w0 = runq_wait_us(sfd);
		rotagate_decide(j->h, &req, &r->dec);
		r->call_us = mono_us() - t0;
		r->offcpu_us = runq_wait_us(sfd) - w0;
		if (j->pause_us)
			usleep(j->pause_us);
	}
	if (sfd >= 0)
		close(sfd);
	return NULL;
}

static void print_hex(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		printf("%02x", *p);
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s CONF N THREADS WHEN [PAUSE_US [HOLD_FILE]]\n", argv[0]);
		return 2;
	}
	const char *conf = argv[1];
	unsigned n = (unsigned)strtoul(argv[2], NULL, 10);
	unsigned threads = (unsigned)strtoul(argv[3], NULL, 10);
	int64_t when = strtoll(argv[4], NULL, 10);
	unsigned pause_us = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 0;
	const char *hold = argc > 6 ? argv[6] : NULL;
	if (threads == 0 || threads > 64 || when <= 0) {
		fprintf(stderr, "decide-driver: bad arguments\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	char err[512];
	struct rotagate *h = NULL;
	if (rotagate_open(conf, &h, err, sizeof err) != 0) {
		fprintf(stderr, "decide-driver: %s\n", err);
		return 2;
	}
	printf("pid %ld\n", (long)getpid());

	struct result *res = calloc(n ? n : 1, sizeof *res);
	struct job jobs[64];
	pthread_t tid[64];
	if (!res)
		return 2;
	for (unsigned t = 0; t < threads; t++) {
		jobs[t] = (struct job){ .h = h, .thread = t, .threads = threads, .n = n,
					.pause_us = pause_us, .when = when, .hold = hold, .res = res };
		if (pthread_create(&tid[t], NULL, run, &jobs[t]) != 0) {
			fprintf(stderr, "decide-driver: pthread_create failed\n");
			return 2;
		}
	}
	for (unsigned t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);

	for (unsigned i = 0; i < n; i++) {
		const struct result *r = &res[i];
		const struct rotagate_decision *d = &r->dec;
		char at[32];
		struct tm tm;
		time_t t = (time_t)r->when;
		gmtime_r(&t, &tm);
		strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%u\t%u\t", i, r->thread);
		print_hex(mix[i % 13].user);
		printf("\t%s\t%s\t%s\t%s\t%s\t%s\t%u\t%u\t%s\t%d\t%" PRId64 "\t%" PRId64 "\t%s\t%" PRId64
		       "\t%" PRId64 "\n",
		       mix[i % 13].door, at, rotagate_verdict_name(d->verdict),
		       rotagate_reason_name(d->reason), d->site, d->rule, d->occupancy, d->capacity,
		       d->local_date, d->degraded, d->data_age, d->latency_us, d->config_sha,
		       r->call_us, r->offcpu_us);
	}
	rotagate_close(h);
	free(res);
	printf("done %u\n", n);
	return 0;
}
