/*
 * audit-driver - drives rg_audit_emit() for the integration tests.
 *
 *   audit-driver TARGET FORMAT SPOOL_DIR|- [IDENT]
 *
 * prints "pid PID", then reads commands on stdin, one per line, and answers each with one
 * line on stdout (flushed), so a shell script can pace it:
 *
 *   emit N THREADS [PAUSE_US [HOLD_FILE]]
 *                      emit N records "test.record" (fields thread, i, user;
 *                      i counts 0, 1, ... over the whole run) from THREADS
 *                      threads, each thread sleeping PAUSE_US microseconds
 *                      after each record (default 0: as fast as it can);
 *                      while HOLD_FILE exists, a thread that has emitted 90%
 *                      of its share waits (so a test knows the run is still
 *                      going until it removes the file); answers
 *                      "emitted N delivered D spooled S lost L"
 *   results FILE       write "i rc start end" for every record emitted so far
 *                      to FILE (rc: what rg_audit_emit returned; start, end:
 *                      CLOCK_MONOTONIC in microseconds around the call);
 *                      answers "results N"
 *   hostile HEX        emit one "test.hostile" record whose user is the
 *                      bytes HEX; answers "hostile RC"
 *   flush MS           replay the spool for up to MS ms; answers "flush RC"
 *   quit               free the sink; answers "bye"
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"

struct job {
	struct rg_audit *a;
	unsigned thread, count, base; /* i runs from base: unique over the run */
	unsigned pause_us;
	const char *hold;
	unsigned delivered, spooled, lost;
};

struct result {
	int rc;            /* rg_audit_emit's answer */
	long long t0, t1;  /* CLOCK_MONOTONIC us before and after */
};
static struct result *results; /* for each i */
static unsigned nresults;

static long long mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *emit_many(void *arg)
{
	struct job *j = arg;
	char thread[16], i_s[16], user[32];
	snprintf(thread, sizeof thread, "%u", j->thread);
	for (unsigned i = 0; i < j->count; i++) {
		while (j->hold && i * 10 >= j->count * 9 && access(j->hold, F_OK) == 0)
			usleep(1000);
		snprintf(i_s, sizeof i_s, "%u", j->base + i);
		snprintf(user, sizeof user, "user-%u-%u", j->thread, j->base + i);
		struct rg_kv kv[] = {
			{ "config_sha", "0123456789abcdef" },
			{ "user", user },
			{ "thread", thread },
			{ "i", i_s },
			{ "note", "a, b=c; d" }, /* separators inside a value stay inside */
		};
		long long t0 = mono_us();
		int rc = rg_audit_emit(j->a, LOG_INFO, "test.record", kv, sizeof kv / sizeof kv[0]);
		results[j->base + i] = (struct result){ rc, t0, mono_us() };
		if (rc == 0)
			j->delivered++;
		else if (rc == 1)
			j->spooled++;
		else
			j->lost++;
		if (j->pause_us)
			usleep(j->pause_us);
	}
	return NULL;
}

static int cmd_emit(struct rg_audit *a, unsigned n, unsigned threads, unsigned pause_us,
		    const char *hold)
{
	static unsigned base;
	if (threads == 0 || threads > 64)
		threads = 1;
	struct result *r = realloc(results, (base + n + 1) * sizeof *r);
	if (!r)
		return -1;
	results = r;
	nresults = base + n;
	struct job jobs[64];
	pthread_t tid[64];
	unsigned d = 0, s = 0, l = 0;
	for (unsigned t = 0; t < threads; t++) {
		jobs[t] = (struct job){ .a = a, .thread = t, .count = n / threads + (t < n % threads),
					.base = base, .pause_us = pause_us, .hold = hold };
		base += jobs[t].count;
		if (pthread_create(&tid[t], NULL, emit_many, &jobs[t]) != 0)
			return -1;
	}
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		d += jobs[t].delivered;
		s += jobs[t].spooled;
		l += jobs[t].lost;
	}
	printf("emitted %u delivered %u spooled %u lost %u\n", n, d, s, l);
	return 0;
}

static int unhex(const char *hex, char *out, size_t len)
{
	size_t n = strlen(hex);
	if (n % 2 || n / 2 >= len)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s TARGET rfc3164|rfc5424 SPOOL|- [IDENT]\n", argv[0]);
		return 2;
	}
	struct rg_audit_cfg cfg = {
		.target = argv[1],
		.format = strcmp(argv[2], "rfc5424") == 0 ? RG_AUDIT_RFC5424 : RG_AUDIT_RFC3164,
		.facility = LOG_AUTHPRIV,
		.ident = argc > 4 ? argv[4] : "rotagate",
		.spool = strcmp(argv[3], "-") == 0 ? NULL : argv[3],
	};
	char err[256];
	struct rg_audit *a = rg_audit_new(&cfg, err, sizeof err);
	if (!a) {
		fprintf(stderr, "audit-driver: %s\n", err);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid %ld\n", (long)getpid());

	char line[8192];
	while (fgets(line, sizeof line, stdin)) {
		unsigned n, t, pause_us = 0;
		int ms;
		char hex[4096], path[PATH_MAX];
		path[0] = '\0';
		if (sscanf(line, "emit %u %u %u %4095s", &n, &t, &pause_us, path) >= 2) {
			if (cmd_emit(a, n, t, pause_us, path[0] ? path : NULL) != 0)
				return 2;
		} else if (sscanf(line, "results %4095s", path) == 1) {
			FILE *f = fopen(path, "w");
			if (!f)
				return 2;
			for (unsigned i = 0; i < nresults; i++)
				fprintf(f, "%u %d %lld %lld\n", i, results[i].rc, results[i].t0,
					results[i].t1);
			if (fclose(f) != 0)
				return 2;
			printf("results %u\n", nresults);
		} else if (sscanf(line, "hostile %4095s", hex) == 1) {
			char user[2048];
			if (unhex(hex, user, sizeof user) != 0) {
				fprintf(stderr, "audit-driver: bad hex\n");
				return 2;
			}
			struct rg_kv kv[] = {
				{ "config_sha", "0123456789abcdef" },
				{ "user", user },
				{ "door", "main" },
			};
			printf("hostile %d\n", rg_audit_emit(a, LOG_NOTICE, "test.hostile", kv, 3));
		} else if (sscanf(line, "flush %d", &ms) == 1) {
			printf("flush %d\n", rg_audit_flush(a, ms));
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		} else {
			fprintf(stderr, "audit-driver: unknown command: %s", line);
			return 2;
		}
	}
	rg_audit_last_error(a, err, sizeof err);
	if (err[0])
		fprintf(stderr, "audit-driver: last error: %s\n", err);
	rg_audit_free(a);
	free(results);
	printf("bye\n");
	return 0;
}
