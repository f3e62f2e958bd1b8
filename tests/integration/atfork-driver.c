/*
 * atfork-driver - fork() while other threads are inside rotagate.
 *
 *   atfork-driver CONF WHEN FORKS
 *
 * Three threads decide without pause, a fourth keeps rewriting CONF (a
 * comment changes, so every few decisions one of them reloads it: the reload
 * lock and the config parser's lock are held often and for a while), and
 * the main thread forks FORKS children at those moments.  Each child makes
 * one decision with the inherited handle, under a 10 s alarm.  A child that
 * inherited a lock held by a thread it does not have would hang there
 * forever; the alarm turns that into a failure.  Exit 0 when every child
 * answered alice GRANT and the parent's threads answered right throughout.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rotagate.h"

static struct rotagate *handle;
static int64_t when;
static const char *conf;
static char *conf_text;
static atomic_bool stop;
static atomic_int wrong, decided, rewrites;

static bool decide_ok(const char *user)
{
	struct rotagate_request req = { .principal = user, .door = "main-entrance", .when = when,
					.flags = ROTAGATE_EXPLAIN };
	struct rotagate_decision dec;
	bool ok;

	rotagate_decide(handle, &req, &dec);
	if (strcmp(user, "alice") == 0)
		ok = dec.verdict == ROTAGATE_GRANT;
	else if (strcmp(user, "dave") == 0)
		ok = dec.verdict == ROTAGATE_DENY && dec.reason == ROTAGATE_R_DENY_GROUP;
	else
		ok = dec.verdict == ROTAGATE_DENY && dec.reason == ROTAGATE_R_UNKNOWN_PERSON;
	if (!ok)
		fprintf(stderr, "%d: %s got %s %s\n%s", (int)getpid(), user,
			rotagate_verdict_name(dec.verdict), rotagate_reason_name(dec.reason), dec.explain);
	return ok;
}

static void *decider(void *arg)
{
	static const char *const users[] = { "alice", "dave", "nobody" };
	unsigned i = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		const char *u = users[i++ % 3];
		if (!decide_ok(u)) {
			fprintf(stderr, "parent thread: wrong answer for %s\n", u);
			atomic_fetch_add(&wrong, 1);
		}
		atomic_fetch_add(&decided, 1);
	}
	return NULL;
}

/* Rewrite CONF with a new trailing comment: same rules, a new file each
 * time (rename), so every decision's cheap check sees a change. */
static void *rewriter(void *arg)
{
	char tmp[4096];
	unsigned n = 0;

	(void)arg;
	snprintf(tmp, sizeof tmp, "%s.new", conf);
	while (!atomic_load(&stop)) {
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%s# rewrite %u\n", conf_text, n++) < 0 || fclose(f) != 0 ||
		    rename(tmp, conf) != 0) {
			perror(tmp);
			atomic_fetch_add(&wrong, 1);
			return NULL;
		}
		atomic_fetch_add(&rewrites, 1);
		usleep(2000);
	}
	return NULL;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = (cap + 4096) * 2;
			char *b = realloc(buf, cap);
			if (!b) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = b;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

int main(int argc, char **argv)
{
	pthread_t t[4];
	char err[512];
	int forks, hung = 0, failed = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s CONF WHEN FORKS\n", argv[0]);
		return 2;
	}
	conf = argv[1];
	when = strtoll(argv[2], NULL, 10);
	forks = atoi(argv[3]);
	if (!(conf_text = slurp(conf))) {
		perror(conf);
		return 2;
	}
	if (rotagate_open(conf, &handle, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	if (!decide_ok("alice")) {
		fprintf(stderr, "alice is not granted before any fork: wrong fixture\n");
		return 2;
	}
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, decider, (void *)(uintptr_t)i);
	pthread_create(&t[3], NULL, rewriter, NULL);
	while (atomic_load(&rewrites) < 5 || atomic_load(&decided) < 30)
		usleep(1000); /* all four threads are busy before the first fork */

	for (int i = 0; i < forks; i++) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			/* default action: the child dies of SIGALRM if it hangs */
			signal(SIGALRM, SIG_DFL);
			alarm(10);
			_exit(decide_ok("alice") ? 0 : 1);
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
			fprintf(stderr, "child %d hung for 10 s in its first decision "
				"(a lock inherited from another thread)\n", i);
			hung++;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "child %d: wrong answer or crash (status 0x%x)\n", i, status);
			failed++;
		}
		usleep((useconds_t)(rand() % 3000));
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	rotagate_close(handle);
	free(conf_text);
	printf("%d forks: %d hung, %d wrong; parent: %d decisions (%d wrong), %d rewrites\n", forks,
	       hung, failed, atomic_load(&decided), atomic_load(&wrong), atomic_load(&rewrites));
	return hung || failed || atomic_load(&wrong) ? 1 : 0;
}
