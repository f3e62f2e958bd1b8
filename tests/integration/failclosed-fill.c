/*
 * failclosed-fill - helper of tests/integration/fail-closed.sh.
 *
 *   failclosed-fill fill CONF SITE YYYY-MM-DD PERSON DOOR RULE
 *
 * Opens the ledger that CONF names (rg_config_load + rg_ledger_open: the same
 * code, LMDB environment and ledger.map-size as rotagatectl) and admits made-up
 * people, one reservation (one durable write transaction) each, until the
 * ledger refuses one.  The made-up names have PERSON's length and sort in
 * increasing order just below PERSON ("newhire-zzz" -> newhire-000,
 * newhire-001, ...), so every admission lands in the B-tree leaf where PERSON
 * would go and is as large as PERSON's.  When one fails because the map is
 * exhausted, PERSON's own admission - same leaf, same size, same state - needs
 * the same pages and fails the same way: deterministic, whatever LMDB's page
 * reuse.  Exit 0 and "filled N ..." when the ledger reported "ledger full";
 * 1 on any other outcome (another error, names exhausted).
 *
 *   failclosed-fill decide CONF USER DOOR UNIXTIME
 *
 * One real decision (not a dry run) through the public API with
 * ROTAGATE_EXPLAIN: prints the decision line and the explanation, which
 * rotagatectl admit does not show.  Exit 0 GRANT, 1 DENY, 2 ERROR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "config.h"
#include "ledger.h"
#include "rotagate.h"

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int fill(const char *conf, const char *site_name, const char *date, const char *person,
		const char *door, const char *rule)
{
	struct rg_config *cfg = NULL;
	struct rg_ledger *l = NULL;
	char err[1024] = "";
	int32_t day;
	size_t plen = strlen(person), nalpha = strlen(alphabet);
	const struct rg_site *site = NULL;

	if (plen < 4) {
		fprintf(stderr, "fill: PERSON must have at least 4 characters\n");
		return 2;
	}
	if (rg_cal_parse_date(date, &day) != 0) {
		fprintf(stderr, "fill: not a date: %s\n", date);
		return 2;
	}
	if (rg_config_load(conf, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "fill: %s\n", err);
		return 2;
	}
	for (size_t i = 0; i < cfg->nsites; i++)
		if (strcmp(cfg->sites[i].name, site_name) == 0)
			site = &cfg->sites[i];
	if (!site) {
		fprintf(stderr, "fill: no site %s in %s\n", site_name, conf);
		rg_config_free(cfg);
		return 2;
	}
	if (rg_ledger_open(cfg, &l, err, sizeof err) != 0) {
		fprintf(stderr, "fill: %s\n", err);
		rg_config_free(cfg);
		return 2;
	}

	char *name = strdup(person);
	long n = 0;
	int rc = 1;
	const char *tail = person + plen - 3;
	for (size_t a = 0; a < nalpha && rc == 1; a++) {
		for (size_t b = 0; b < nalpha && rc == 1; b++) {
			for (size_t c = 0; c < nalpha; c++) {
				name[plen - 3] = alphabet[a];
				name[plen - 2] = alphabet[b];
				name[plen - 1] = alphabet[c];
				if (strcmp(name + plen - 3, tail) >= 0) {
					fprintf(stderr, "fill: %ld admitted, names below %s used up, "
							"the ledger never refused one\n", n, person);
					goto out;
				}
				unsigned occ = 0;
				struct rg_reservation r = {
					.site = site->name, .day = day, .person = name, .door = door,
					.rule = rule, .when = (int64_t)day * 86400 + 8 * 3600,
					.capacity = site->capacity, .reserved = site->reserved,
				};
				enum rg_ledger_result res = rg_ledger_reserve(l, &r, &occ, err, sizeof err);
				if (res == RG_LEDGER_ADMITTED) {
					n++;
					continue;
				}
				if (res == RG_LEDGER_FAILED && strstr(err, "ledger full")) {
					printf("filled %ld admissions (occupancy %u); %s refused: %s\n", n, occ,
					       name, err);
					rc = 0;
				} else {
					fprintf(stderr, "fill: %s after %ld admissions: result %d: %s\n", name, n,
						(int)res, err);
				}
				goto out;
			}
		}
	}
out:
	free(name);
	rg_ledger_close(l);
	rg_config_free(cfg);
	return rc;
}

static int decide(const char *conf, const char *user, const char *door, const char *when)
{
	struct rotagate *h;
	char err[1024];
	if (rotagate_open(conf, &h, err, sizeof err) != 0) {
		fprintf(stderr, "decide: %s\n", err);
		return 2;
	}
	struct rotagate_request req = { .principal = user, .door = door,
					.when = strtoll(when, NULL, 10), .flags = ROTAGATE_EXPLAIN };
	struct rotagate_decision *d = malloc(sizeof *d);
	if (!d) {
		rotagate_close(h);
		return 2;
	}
	enum rotagate_verdict v = rotagate_decide(h, &req, d);
	printf("%s reason=%s site=%s occupancy=%u/%u\n%s", rotagate_verdict_name(d->verdict),
	       rotagate_reason_name(d->reason), d->site, d->occupancy, d->capacity, d->explain);
	free(d);
	rotagate_close(h);
	return v == ROTAGATE_GRANT ? 0 : v == ROTAGATE_DENY ? 1 : 2;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 8 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
	if (argc == 6 && strcmp(argv[1], "decide") == 0)
		return decide(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: failclosed-fill fill CONF SITE YYYY-MM-DD PERSON DOOR RULE\n"
			"       failclosed-fill decide CONF USER DOOR UNIXTIME\n");
	return 2;
}
