/*
 * reload-driver - one controller process, several threads deciding through
 * the public API with one shared handle, while a test script rewrites the
 * configuration file (tests/integration/reload-threads.sh).
 *
 *   reload-driver CONF WHEN THREADS CMDFIFO REPLYFIFO
 *
 * Commands, one per line on CMDFIFO; one reply line on REPLYFIFO for each:
 *
 *   round K N DOOR   every thread makes N decisions at DOOR, all threads
 *                    released together (so they all meet the changed file
 *                    at once); reply "done K ..." when all have finished
 *   start K DOOR     every thread decides at DOOR until told to stop; reply
 *                    "started K" once every thread has decided at least once
 *   until SHA        (after start) keep going until every thread has made a
 *                    decision with config_sha SHA after this command arrived
 *                    (at most 15 s), then stop; reply "done K ..."
 *   quit             close the handle and exit 0
 *
 * "done K n=N errors=E alice_grant=G alice_deny=D switches=S1,S2,..
 *  last=L1,L2,.. shas=SHA:COUNT,SHA:COUNT.." describes round K: decisions
 * made, ERROR verdicts, alice's verdicts, per thread the number of times the
 * config_sha changed between its consecutive decisions and the config_sha
 * of its last decision, and every config_sha seen with its count (in order
 * of first appearance).  The users asked for are alice, bob, carol, dave and
 * nobody in turn; `when` is fixed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rotagate.h"

#define MAX_THREADS 32
#define MAX_SHAS 200 /* < 255: a decision log entry is one byte */

static const char *const users[] = { "alice", "bob", "carol", "dave", "nobody" };

static struct rotagate *h;
static int64_t when;
static int nthreads;

/* interned config_sha values: a decision log stores small indices */
static pthread_mutex_t sha_mu = PTHREAD_MUTEX_INITIALIZER;
static char shas[MAX_SHAS][65];
static int nshas;

static int intern(const char *sha)
{
	int i;

	pthread_mutex_lock(&sha_mu);
	for (i = 0; i < nshas; i++)
		if (strcmp(shas[i], sha) == 0)
			break;
	if (i == nshas) {
		if (nshas == MAX_SHAS) {
			i = -1;
		} else {
			snprintf(shas[nshas], sizeof shas[nshas], "%s", sha);
			nshas++;
		}
	}
	pthread_mutex_unlock(&sha_mu);
	return i;
}

/* the current job, set by the main thread between the barriers */
enum mode { M_ROUND, M_RUN, M_QUIT };
static enum mode mode;
static int job_n;
static char job_door[128];
static atomic_int stop_flag;

/* progress reports in M_RUN */
static pthread_mutex_t st_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t st_cv;
static int target = -2; /* sha index every thread must reach; -2: none */

static pthread_barrier_t go, done;

struct worker {
	pthread_t t;
	int id;
	unsigned char *log; /* sha index per decision in this round */
	size_t n, cap;
	int errors, alice_grant, alice_deny;
	bool started, reached;
};
static struct worker workers[MAX_THREADS];
static atomic_int error_reports;

static void decide_one(struct worker *w, size_t k)
{
	const char *user = users[k % (sizeof users / sizeof users[0])];
	struct rotagate_request req = { .principal = user, .door = job_door, .when = when,
					.flags = ROTAGATE_EXPLAIN };
	struct rotagate_decision *dec = malloc(sizeof *dec);

	if (!dec) {
		w->errors++;
		return;
	}
	rotagate_decide(h, &req, dec);
	int idx = intern(dec->config_sha);
	if (idx < 0 || dec->config_sha[0] == '\0') {
		fprintf(stderr, "thread %d: bad config_sha '%s'\n", w->id, dec->config_sha);
		w->errors++;
		idx = MAX_SHAS;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		unsigned char *p = realloc(w->log, cap);
		if (!p) {
			fprintf(stderr, "out of memory\n");
			exit(2);
		}
		w->log = p;
		w->cap = cap;
	}
	w->log[w->n++] = (unsigned char)idx;
	if (dec->verdict == ROTAGATE_ERROR) {
		w->errors++;
		if (atomic_fetch_add(&error_reports, 1) < 5)
			fprintf(stderr, "thread %d: %s at %s: ERROR %s\n%s", w->id, user, job_door,
				rotagate_reason_name(dec->reason), dec->explain);
	}
	if (strcmp(user, "alice") == 0) {
		if (dec->verdict == ROTAGATE_GRANT)
			w->alice_grant++;
		else if (dec->verdict == ROTAGATE_DENY)
			w->alice_deny++;
	}
	if (mode == M_RUN) {
		pthread_mutex_lock(&st_mu);
		bool changed = false;
		if (!w->started)
			w->started = changed = true;
		if (idx == target && !w->reached)
			w->reached = changed = true;
		if (changed)
			pthread_cond_broadcast(&st_cv);
		pthread_mutex_unlock(&st_mu);
	}
	free(dec);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		pthread_barrier_wait(&go);
		if (mode == M_QUIT)
			return NULL;
		if (mode == M_ROUND) {
			for (int k = 0; k < job_n; k++)
				decide_one(w, (size_t)k + (size_t)w->id);
		} else {
			for (size_t k = 0; !atomic_load(&stop_flag); k++)
				decide_one(w, k + (size_t)w->id);
		}
		pthread_barrier_wait(&done);
	}
}

static void reset_workers(void)
{
	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		w->n = 0;
		w->errors = w->alice_grant = w->alice_deny = 0;
		w->started = w->reached = false;
	}
}

static void reply(FILE *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(FILE *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fflush(out);
}

static void report(FILE *out, int round)
{
	size_t n = 0, count[MAX_SHAS + 1] = { 0 };
	int errors = 0, grant = 0, deny = 0, order[MAX_SHAS + 1], norder = 0;
	char switches[MAX_THREADS * 12] = "", last[MAX_THREADS * 70] = "";

	for (int i = 0; i < nthreads; i++) {
		struct worker *w = &workers[i];
		int sw = 0;

		for (size_t k = 0; k < w->n; k++) {
			int idx = w->log[k];
			if (count[idx]++ == 0)
				order[norder++] = idx;
			if (k > 0 && w->log[k] != w->log[k - 1])
				sw++;
		}
		n += w->n;
		errors += w->errors;
		grant += w->alice_grant;
		deny += w->alice_deny;
		snprintf(switches + strlen(switches), sizeof switches - strlen(switches), "%s%d",
			 i ? "," : "", sw);
		snprintf(last + strlen(last), sizeof last - strlen(last), "%s%s", i ? "," : "",
			 w->n == 0 ? "none" : w->log[w->n - 1] == MAX_SHAS ? "bad" : shas[w->log[w->n - 1]]);
	}
	fprintf(out, "done %d n=%zu errors=%d alice_grant=%d alice_deny=%d switches=%s last=%s shas=",
		round, n, errors, grant, deny, switches, last);
	for (int j = 0; j < norder; j++)
		fprintf(out, "%s%s:%zu", j ? "," : "", order[j] == MAX_SHAS ? "bad" : shas[order[j]],
			count[order[j]]);
	fputc('\n', out);
	fflush(out);
}

/* wait (at most `sec` seconds) until pred() holds; st_mu held by the caller */
static bool wait_for(bool (*pred)(void), int sec)
{
	struct timespec dl;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += sec;
	while (!pred())
		if (pthread_cond_timedwait(&st_cv, &st_mu, &dl) == ETIMEDOUT)
			return pred();
	return true;
}

static bool all_started(void)
{
	for (int i = 0; i < nthreads; i++)
		if (!workers[i].started)
			return false;
	return true;
}

static bool all_reached(void)
{
	for (int i = 0; i < nthreads; i++)
		if (!workers[i].reached)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	char err[1024], line[512];

	if (argc != 6) {
		fprintf(stderr, "usage: %s CONF WHEN THREADS CMDFIFO REPLYFIFO\n", argv[0]);
		return 2;
	}
	when = strtoll(argv[2], NULL, 10);
	nthreads = atoi(argv[3]);
	if (nthreads < 1 || nthreads > MAX_THREADS) {
		fprintf(stderr, "THREADS: 1..%d\n", MAX_THREADS);
		return 2;
	}
	FILE *in = fopen(argv[4], "r");
	FILE *out = in ? fopen(argv[5], "w") : NULL;
	if (!in || !out) {
		perror("fifo");
		return 2;
	}
	if (rotagate_open(argv[1], &h, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		reply(out, "open-failed\n");
		return 2;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
	pthread_barrier_init(&done, NULL, (unsigned)nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		workers[i].id = i;
		if (pthread_create(&workers[i].t, NULL, worker_main, &workers[i]) != 0) {
			fprintf(stderr, "pthread_create failed\n");
			return 2;
		}
	}
	reply(out, "ready\n");

	int status = 0, running = -1;
	while (fgets(line, sizeof line, in)) {
		int k, n;
		char arg[128];

		if (sscanf(line, "round %d %d %63s", &k, &n, arg) == 3 && running < 0) {
			reset_workers();
			mode = M_ROUND;
			job_n = n;
			snprintf(job_door, sizeof job_door, "%s", arg);
			pthread_barrier_wait(&go);
			pthread_barrier_wait(&done);
			report(out, k);
		} else if (sscanf(line, "start %d %63s", &k, arg) == 2 && running < 0) {
			reset_workers();
			mode = M_RUN;
			target = -2;
			atomic_store(&stop_flag, 0);
			snprintf(job_door, sizeof job_door, "%s", arg);
			pthread_barrier_wait(&go);
			pthread_mutex_lock(&st_mu);
			bool ok = wait_for(all_started, 15);
			pthread_mutex_unlock(&st_mu);
			running = k;
			reply(out, ok ? "started %d\n" : "not-started %d\n", k);
		} else if (sscanf(line, "until %127s", arg) == 1 && running >= 0) {
			int t = intern(arg);
			pthread_mutex_lock(&st_mu);
			/* the file changed before `until` was sent: every later
			 * decision must carry SHA */
			target = t;
			wait_for(all_reached, 15);
			pthread_mutex_unlock(&st_mu);
			atomic_store(&stop_flag, 1);
			pthread_barrier_wait(&done);
			report(out, running);
			running = -1;
		} else if (strcmp(line, "quit\n") == 0 && running < 0) {
			break;
		} else {
			fprintf(stderr, "reload-driver: unexpected command: %s", line);
			reply(out, "bad-command\n");
			status = 2;
			break;
		}
	}
	if (running >= 0) {
		atomic_store(&stop_flag, 1);
		pthread_barrier_wait(&done);
	}
	mode = M_QUIT;
	pthread_barrier_wait(&go);
	for (int i = 0; i < nthreads; i++) {
		pthread_join(workers[i].t, NULL);
		free(workers[i].log);
	}
	pthread_barrier_destroy(&go);
	pthread_barrier_destroy(&done);
	pthread_cond_destroy(&st_cv);
	rotagate_close(h);
	reply(out, "bye\n");
	fclose(in);
	fclose(out);
	return status;
}
