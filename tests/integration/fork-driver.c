/*
 * fork-driver - a controller that opens rotagate, decides, then forks
 * workers that keep deciding with the inherited handle (as a pre-forking
 * door daemon would), all at the same time as the parent.
 *
 *   fork-driver CONF WHEN WORKERS ROUNDS
 *
 * Every process asks for alice (GRANT), dave (DENY deny-group) and nobody
 * (DENY unknown-person) ROUNDS times and checks each answer.  Exit 0 when
 * every answer in every process was right.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rotagate.h"

struct expect {
	const char *user;
	enum rotagate_verdict verdict;
	enum rotagate_reason reason;
};

static const struct expect expected[] = {
	{ "alice", ROTAGATE_GRANT, ROTAGATE_R_NONE /* rota-day or re-entry */ },
	{ "dave", ROTAGATE_DENY, ROTAGATE_R_DENY_GROUP },
	{ "nobody", ROTAGATE_DENY, ROTAGATE_R_UNKNOWN_PERSON },
};

static int run(struct rotagate *h, int64_t when, int rounds, const char *who)
{
	int bad = 0;
	for (int r = 0; r < rounds; r++) {
		for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
			struct rotagate_request req = { .principal = expected[i].user,
							.door = "main-entrance", .when = when,
							.flags = ROTAGATE_EXPLAIN };
			struct rotagate_decision dec;
			rotagate_decide(h, &req, &dec);
			int ok = dec.verdict == expected[i].verdict &&
				 (expected[i].reason == ROTAGATE_R_NONE || dec.reason == expected[i].reason);
			if (!ok) {
				fprintf(stderr, "%s: %s got %s %s\n%s", who, expected[i].user,
					rotagate_verdict_name(dec.verdict), rotagate_reason_name(dec.reason),
					dec.explain);
				bad++;
			}
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s CONF WHEN WORKERS ROUNDS\n", argv[0]);
		return 2;
	}
	int64_t when = strtoll(argv[2], NULL, 10);
	int workers = atoi(argv[3]), rounds = atoi(argv[4]);
	struct rotagate *h;
	char err[512];
	if (rotagate_open(argv[1], &h, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	int bad = run(h, when, 1, "parent before fork"); /* pools a connection */

	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			char who[32];
			snprintf(who, sizeof who, "worker %d", w);
			int b = run(h, when, rounds, who);
			_exit(b ? 1 : 0);
		}
	}
	bad += run(h, when, rounds, "parent");
	int st, failed = 0;
	while (wait(&st) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			failed++;
	rotagate_close(h);
	printf("parent wrong answers: %d, failed workers: %d\n", bad, failed);
	return bad || failed ? 1 : 0;
}
