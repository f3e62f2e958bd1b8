/*
 * ledger-stress.c - many processes and threads against one ledger.
 *
 *   ledger-stress race  [options]   P processes x T threads admit N distinct
 *                                   people against capacity C at once; exactly
 *                                   C must be admitted, and every ADMITTED a
 *                                   caller received must be in the ledger.
 *   ledger-stress crash [options]   workers admit in a loop and are killed with
 *                                   SIGKILL at random moments, round after
 *                                   round; afterwards the ledger opens, its
 *                                   count equals its stored admissions and no
 *                                   ADMITTED a caller received is missing.
 * Options:
 *   --backend lmdb|ldap  --path DIR  --uri URI  --base DN
 *   --bind-dn DN --pwfile FILE     (a second controller: --bind-dn2/--pwfile2;
 *                                   odd-numbered processes use it)
 *   --procs P --threads T --people N --capacity C --rounds R --overlap
 *   --day D --site S
 * --overlap: every process tries every person (two doors, same people), so
 * re-entries race with admissions too.
 *
 * Every worker writes each person it was told ADMITTED to a grants file with
 * one write() (O_APPEND, one line < PIPE_BUF) before it goes on: a SIGKILL can
 * lose only a grant that the caller had not yet acted on.
 * Exit status 0 when every check holds; messages on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include "harness.h"
#include "ledger.h"

struct opts {
	const char *mode;
	struct lt_backend b, b2;
	bool two;
	int procs, threads, people, capacity, rounds;
	bool overlap;
	int32_t day;
	const char *site;
	char grants[4096];
};

static struct opts O = {
	.procs = 16, .threads = 4, .people = 400, .capacity = 100, .rounds = 8,
	.day = 20780, .site = "hq",
};

struct worker {
	struct rg_ledger *l;
	int proc, thread, fd, start_fd;
	long admitted, full, reentry, failed;
	char err[512];
};

static void person_name(char *buf, size_t len, int round, int i)
{
	snprintf(buf, len, "r%d-p%04d", round, i);
}

static int record_grant(int fd, const char *person)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "%s\n", person);

	return write(fd, line, (size_t)n) == n ? 0 : -1;
}

static enum rg_ledger_result admit(struct worker *w, const char *person)
{
	unsigned occ;
	struct rg_reservation r = {
		.site = O.site, .day = O.day, .person = person, .door = "main-entrance",
		.rule = "team-a", .when = (int64_t)O.day * 86400 + 8 * 3600,
		.capacity = (unsigned)O.capacity, .reserved = 0,
	};
	enum rg_ledger_result res = rg_ledger_reserve(w->l, &r, &occ, w->err, sizeof(w->err));

	switch (res) {
	case RG_LEDGER_ADMITTED:
		w->admitted++;
		if (record_grant(w->fd, person) != 0)
			w->failed++;
		if (occ > (unsigned)O.capacity) {
			fprintf(stderr, "occupancy %u above capacity\n", occ);
			w->failed++;
		}
		break;
	case RG_LEDGER_FULL:
		w->full++;
		break;
	case RG_LEDGER_REENTRY:
		w->reentry++;
		break;
	default:
		w->failed++;
		fprintf(stderr, "proc %d thread %d: %s: %s\n", w->proc, w->thread, person, w->err);
	}
	return res;
}

/* ---- race ---- */

static void *race_thread(void *arg)
{
	struct worker *w = arg;
	int slots = O.procs * O.threads, me = w->proc * O.threads + w->thread;
	char name[64], c;

	/* wait for the starting gun (the parent closes the pipe) */
	while (read(w->start_fd, &c, 1) < 0 && errno == EINTR)
		;
	for (int i = 0; i < O.people; i++) {
		/* distinct people per worker, or everybody everywhere with --overlap */
		int k = O.overlap ? (i + me * 7) % O.people : i;

		if (!O.overlap && i % slots != me)
			continue;
		person_name(name, sizeof(name), 0, k);
		admit(w, name);
	}
	return NULL;
}

static int race_child(int proc, int fd, int start_fd)
{
	struct rg_config *cfg = lt_config(O.two && proc % 2 ? &O.b2 : &O.b);
	struct rg_ledger *l;
	struct worker *w = calloc((size_t)O.threads, sizeof(*w));
	pthread_t *t = calloc((size_t)O.threads, sizeof(*t));
	char err[512];
	long failed = 0;

	if (!cfg || !w || !t || rg_ledger_open(cfg, &l, err, sizeof(err)) != 0) {
		fprintf(stderr, "proc %d: open: %s\n", proc, cfg ? err : "no memory");
		return 1;
	}
	lt_config_free(cfg);
	for (int i = 0; i < O.threads; i++) {
		w[i] = (struct worker){ .l = l, .proc = proc, .thread = i, .fd = fd,
					.start_fd = start_fd };
		pthread_create(&t[i], NULL, race_thread, &w[i]);
	}
	long admitted = 0, reentry = 0;
	for (int i = 0; i < O.threads; i++) {
		pthread_join(t[i], NULL);
		failed += w[i].failed;
		admitted += w[i].admitted;
		reentry += w[i].reentry;
	}
	if (O.two)
		printf("  process %d, controller %s: %ld admitted, %ld re-entries\n", proc,
		       proc % 2 ? "B" : "A", admitted, reentry);
	rg_ledger_close(l);
	free(w);
	free(t);
	return failed ? 1 : 0;
}

static GHashTable *read_grants(const char *path, long *lines, long *dups)
{
	GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	FILE *f = fopen(path, "r");
	char line[256];

	*lines = *dups = 0;
	if (!f)
		return h;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		(*lines)++;
		if (g_hash_table_contains(h, line))
			(*dups)++;
		else
			g_hash_table_add(h, g_strdup(line));
	}
	fclose(f);
	return h;
}

/* Compare the grants with the ledger: count == stored admissions, every
 * grant stored, nobody granted twice.  Returns the number of problems. */
static int verify(long *ngrants, unsigned *count)
{
	struct rg_config *cfg = lt_config(&O.b);
	struct rg_ledger *l;
	struct rg_day_summary s;
	char err[512];
	long lines, dups;
	int bad = 0;
	GHashTable *stored = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTable *granted = read_grants(O.grants, &lines, &dups);
	GHashTableIter it;
	gpointer key;

	if (rg_ledger_open(cfg, &l, err, sizeof(err)) != 0) {
		fprintf(stderr, "ledger does not open: %s\n", err);
		return 1;
	}
	lt_config_free(cfg);
	if (rg_ledger_day(l, O.site, O.day, true, &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "ledger does not read: %s\n", err);
		return 1;
	}
	for (size_t i = 0; i < s.nadmissions; i++) {
		if (g_hash_table_contains(stored, s.admissions[i].person)) {
			fprintf(stderr, "%s stored twice\n", s.admissions[i].person);
			bad++;
		}
		g_hash_table_add(stored, s.admissions[i].person);
	}
	if (s.count != s.nadmissions) {
		fprintf(stderr, "count %u but %zu admissions stored\n", s.count, s.nadmissions);
		bad++;
	}
	if (dups) {
		fprintf(stderr, "%ld people were told ADMITTED twice\n", dups);
		bad++;
	}
	g_hash_table_iter_init(&it, granted);
	while (g_hash_table_iter_next(&it, &key, NULL)) {
		if (!g_hash_table_contains(stored, key)) {
			fprintf(stderr, "granted but not in the ledger: %s\n", (char *)key);
			bad++;
		}
	}
	*ngrants = lines;
	*count = s.count;
	g_hash_table_destroy(stored);
	g_hash_table_destroy(granted);
	rg_day_summary_clear(&s);
	rg_ledger_close(l);
	return bad;
}

static int run_race(void)
{
	int fd = open(O.grants, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600), start[2];
	pid_t *pids = calloc((size_t)O.procs, sizeof(pid_t));
	int bad = 0, status;
	long ngrants;
	unsigned count;

	if (fd < 0 || !pids || pipe(start) != 0) {
		perror("setup");
		return 2;
	}
	for (int p = 0; p < O.procs; p++) {
		pids[p] = fork();
		if (pids[p] == 0) {
			close(start[1]);
			_exit(race_child(p, fd, start[0]));
		}
	}
	close(start[0]);
	usleep(200 * 1000); /* let them all open and line up */
	close(start[1]);
	for (int p = 0; p < O.procs; p++) {
		if (waitpid(pids[p], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0) {
			fprintf(stderr, "worker process %d failed (status %d)\n", p, status);
			bad++;
		}
	}
	close(fd);
	free(pids);
	bad += verify(&ngrants, &count);
	if ((int)count != O.capacity || ngrants != O.capacity) {
		fprintf(stderr, "capacity %d: %u stored, %ld granted\n", O.capacity, count, ngrants);
		bad++;
	}
	printf("race %s: %d processes x %d threads, %d people%s, capacity %d: "
	       "%u admitted, %ld grants, %s\n",
	       O.b.backend, O.procs, O.threads, O.people, O.overlap ? " (overlapping)" : "",
	       O.capacity, count, ngrants, bad ? "FAILED" : "ok");
	return bad ? 1 : 0;
}

/* ---- crash ---- */

static void *crash_thread(void *arg)
{
	struct worker *w = arg;
	char name[64];

	for (int i = 0;; i++) {
		/* round number in proc, so names never repeat across rounds */
		snprintf(name, sizeof(name), "c%d-t%d-%d", w->proc, w->thread, i);
		if (admit(w, name) == RG_LEDGER_FAILED)
			_exit(3);
	}
	return NULL;
}

/* `ready`: one byte written once the ledger is open, so that the parent's
 * random kill lands mid-admission, not during a (slow, sanitised) start. */
static void crash_child(int id, int fd, int ready)
{
	struct rg_config *cfg = lt_config(&O.b);
	struct rg_ledger *l;
	struct worker w[2];
	pthread_t t[2];
	char err[512];

	if (rg_ledger_open(cfg, &l, err, sizeof(err)) != 0) {
		fprintf(stderr, "crash worker: open: %s\n", err);
		_exit(2);
	}
	lt_config_free(cfg);
	if (write(ready, "r", 1) != 1)
		_exit(2);
	close(ready);
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){ .l = l, .proc = id, .thread = i, .fd = fd };
		pthread_create(&t[i], NULL, crash_thread, &w[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	_exit(0);
}

static int run_crash(void)
{
	int fd = open(O.grants, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	int bad = 0, status, killed = 0;
	long ngrants;
	unsigned count;

	if (fd < 0) {
		perror(O.grants);
		return 2;
	}
	srand((unsigned)getpid());
	for (int round = 0; round < O.rounds; round++) {
		pid_t pids[4];
		int ready[4][2];
		char byte;

		for (int p = 0; p < 4; p++) {
			if (pipe(ready[p]) != 0) {
				perror("pipe");
				return 2;
			}
			pids[p] = fork();
			if (pids[p] == 0) {
				close(ready[p][0]);
				crash_child(round * 4 + p, fd, ready[p][1]);
			}
			close(ready[p][1]);
		}
		/* kill them one by one at random moments mid-admission (each
		 * once it has its ledger open and is admitting) */
		for (int p = 0; p < 4; p++) {
			/* at most 2 s: a worker starved of the writer lock by its
			 * busy siblings is killed while still opening, which is a
			 * crash worth surviving too */
			struct pollfd pfd = { .fd = ready[p][0], .events = POLLIN };
			if (poll(&pfd, 1, 2000) == 1 && read(ready[p][0], &byte, 1) != 1)
				fprintf(stderr, "crash worker %d never opened its ledger\n", p);
			close(ready[p][0]);
			usleep((useconds_t)(20000 + rand() % 60000));
			kill(pids[p], SIGKILL);
		}
		for (int p = 0; p < 4; p++) {
			waitpid(pids[p], &status, 0);
			if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
				killed++;
			} else {
				fprintf(stderr, "crash worker exited by itself (status %d)\n",
					status);
				bad++;
			}
		}
	}
	close(fd);
	bad += verify(&ngrants, &count);
	if (ngrants == 0) {
		fprintf(stderr, "no admissions happened: the test proves nothing\n");
		bad++;
	}
	printf("crash %s: %d workers killed, %u admitted, %ld grants received, %s\n",
	       O.b.backend, killed, count, ngrants, bad ? "FAILED" : "ok");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "backend", 1, 0, 'b' }, { "path", 1, 0, 'P' }, { "uri", 1, 0, 'u' },
		{ "base", 1, 0, 'B' },    { "bind-dn", 1, 0, 'D' }, { "pwfile", 1, 0, 'y' },
		{ "bind-dn2", 1, 0, '2' }, { "pwfile2", 1, 0, '3' }, { "procs", 1, 0, 'p' },
		{ "threads", 1, 0, 't' }, { "people", 1, 0, 'n' }, { "capacity", 1, 0, 'c' },
		{ "rounds", 1, 0, 'r' },  { "overlap", 0, 0, 'o' }, { "day", 1, 0, 'd' },
		{ "site", 1, 0, 's' },    { 0, 0, 0, 0 }
	};
	int c;
	char *tmp;
	bool capacity_given = false;

	O.b.backend = "lmdb";
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': O.b.backend = optarg; break;
		case 'P': O.b.path = optarg; break;
		case 'u': O.b.uri = optarg; break;
		case 'B': O.b.base = optarg; break;
		case 'D': O.b.bind_dn = optarg; break;
		case 'y': O.b.pwfile = optarg; break;
		case '2': O.b2.bind_dn = optarg; O.two = true; break;
		case '3': O.b2.pwfile = optarg; break;
		case 'p': O.procs = atoi(optarg); break;
		case 't': O.threads = atoi(optarg); break;
		case 'n': O.people = atoi(optarg); break;
		case 'c': O.capacity = atoi(optarg); capacity_given = true; break;
		case 'r': O.rounds = atoi(optarg); break;
		case 'o': O.overlap = true; break;
		case 'd': O.day = atoi(optarg); break;
		case 's': O.site = optarg; break;
		default: return 2;
		}
	}
	if (optind != argc - 1 || O.procs < 1 || O.threads < 1) {
		fprintf(stderr, "usage: ledger-stress race|crash [options]\n");
		return 2;
	}
	O.mode = argv[optind];
	if (!O.b.path) {
		tmp = lt_tempdir("rg-ledger-stress");
		if (!tmp)
			return 2;
		O.b.path = tmp;
	}
	O.b2.backend = O.b.backend;
	O.b2.path = O.b.path;
	O.b2.uri = O.b.uri;
	O.b2.base = O.b.base;
	if (g_mkdir_with_parents(O.b.path, 0700) != 0) {
		perror(O.b.path);
		return 2;
	}
	snprintf(O.grants, sizeof(O.grants), "%s/grants.%s", O.b.path, O.mode);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(O.mode, "race") == 0)
		return run_race();
	if (strcmp(O.mode, "crash") == 0) {
		if (!capacity_given)
			O.capacity = 1000000; /* never full: admissions all the time */
		return run_crash();
	}
	fprintf(stderr, "unknown mode %s\n", O.mode);
	return 2;
}
