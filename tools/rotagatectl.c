/*
 * rotagatectl - operator CLI over the public API.
 *
 *   rotagatectl [-c CONF] config-test
 *   rotagatectl [-c CONF] check USER --door DOOR [--at 'YYYY-MM-DD HH:MM'] [--json]
 *   rotagatectl [-c CONF] admit USER --door DOOR [--at 'YYYY-MM-DD HH:MM'] [--json]
 *   rotagatectl [-c CONF] occupancy [--site S] [--date D] [--json] [--names]
 *   rotagatectl [-c CONF] sync
 *   rotagatectl [-c CONF] ledger prune
 *
 * Exit status: 0 GRANT or success, 1 DENY, 2 error.
 */
#include "config.h"

#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "calendar.h"
#include "directory.h"
#include "cache.h"
#include "ledger.h"
#include "rotagate.h"

#ifndef ROTAGATE_DEFAULT_CONF
#define ROTAGATE_DEFAULT_CONF "/etc/rotagate/rotagate.conf"
#endif

enum { EXIT_GRANT = 0, EXIT_DENY = 1, EXIT_ERR = 2 };

static const char *progname = "rotagatectl";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-c CONF] COMMAND ...\n"
		"  config-test                         validate the configuration\n"
		"  check USER --door DOOR [--at T] [--json]   dry run: explain the decision\n"
		"  admit USER --door DOOR [--at T] [--json]   the real decision, as at the door\n"
		"  occupancy [--site S] [--date D] [--json] [--names]\n"
		"  sync                                refresh the membership snapshot\n"
		"  ledger prune                        remove days older than retain-days\n"
		"T is wall-clock time at the door's site, 'YYYY-MM-DD HH:MM' (an offset such as\n"
		"+01:00 or Z may follow).  CONF defaults to %s.\n"
		"Exit status: 0 GRANT or success, 1 DENY, 2 error.\n",
		progname, ROTAGATE_DEFAULT_CONF);
}

static int open_handle(const char *conf, struct rotagate **h)
{
	char err[1024];
	if (rotagate_open(conf, h, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */

static int cmd_config_test(const char *conf)
{
	struct rg_config *cfg = NULL;
	char err[1024];
	if (rg_config_load(conf, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_ERR;
	}
	size_t ndoors = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		ndoors += cfg->sites[i].ndoors;
	printf("%s: OK, %zu site(s), %zu door(s), sha256 %s\n", conf, cfg->nsites, ndoors, cfg->sha);
	rg_config_free(cfg);
	return EXIT_GRANT;
}

/* ------------------------------------------------------------------ */

static json_object *decision_json(const struct rotagate_request *req,
				  const struct rotagate_decision *d, bool with_explain)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "verdict", json_object_new_string(rotagate_verdict_name(d->verdict)));
	json_object_object_add(o, "reason", json_object_new_string(rotagate_reason_name(d->reason)));
	json_object_object_add(o, "user", json_object_new_string(req->principal));
	json_object_object_add(o, "door", json_object_new_string(req->door));
	json_object_object_add(o, "when", json_object_new_int64(req->when));
	json_object_object_add(o, "site", json_object_new_string(d->site));
	json_object_object_add(o, "rule", json_object_new_string(d->rule));
	json_object_object_add(o, "local_date", json_object_new_string(d->local_date));
	json_object_object_add(o, "occupancy", json_object_new_int64(d->occupancy));
	json_object_object_add(o, "capacity", json_object_new_int64(d->capacity));
	json_object_object_add(o, "degraded", json_object_new_boolean(d->degraded));
	json_object_object_add(o, "data_age", json_object_new_int64(d->data_age));
	json_object_object_add(o, "latency_us", json_object_new_int64(d->latency_us));
	json_object_object_add(o, "config_sha", json_object_new_string(d->config_sha));
	json_object_object_add(o, "dry_run", json_object_new_boolean(req->flags & ROTAGATE_DRY_RUN));
	if (with_explain)
		json_object_object_add(o, "explain", json_object_new_string(d->explain));
	return o;
}

static void print_decision_line(const struct rotagate_decision *d)
{
	printf("%s reason=%s", rotagate_verdict_name(d->verdict), rotagate_reason_name(d->reason));
	if (d->site[0])
		printf(" site=%s", d->site);
	if (d->rule[0])
		printf(" rule=%s", d->rule);
	if (d->site[0])
		printf(" occupancy=%u/%u", d->occupancy, d->capacity);
	if (d->degraded)
		printf(" degraded=1 data_age=%lld", (long long)d->data_age);
	printf("\n");
}

/* Wall-clock time at the door's site -> Unix time. */
static int resolve_at(struct rotagate *h, const char *door, const char *at, int64_t *when)
{
	if (!at) {
		*when = time(NULL);
		return 0;
	}
	struct rg_api_view v;
	rg_api_view_get(h, &v);
	const struct rg_site *site = door ? rg_config_site_for_door(v.cfg, door) : NULL;
	char err[256];
	/* a door of no site is refused anyway; read the time in UTC then, so the
	 * answer (unknown-door) never depends on the machine's zone */
	int rc = rg_cal_parse_local(site ? site->timezone : "UTC", at, when, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "%s: --at: %s\n", progname, err);
	rg_api_view_put(h, &v);
	return rc;
}

static int cmd_decide(const char *conf, int argc, char **argv, bool dry)
{
	static const struct option opts[] = {
		{ "door", required_argument, NULL, 'd' },
		{ "at", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *door = NULL, *at = NULL;
	bool json = false;
	int c;
	optind = 0; /* 0: full re-initialisation of glibc getopt */
	while ((c = getopt_long(argc, argv, "d:a:j", opts, NULL)) != -1) {
		switch (c) {
		case 'd': door = optarg; break;
		case 'a': at = optarg; break;
		case 'j': json = true; break;
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind != argc - 1 || !door) {
		fprintf(stderr, "%s %s: need USER and --door DOOR\n", progname, argv[0]);
		return EXIT_ERR;
	}
	const char *user = argv[optind];

	struct rotagate *h;
	if (open_handle(conf, &h) != 0)
		return EXIT_ERR;
	struct rotagate_request req = { .principal = user, .door = door };
	if (resolve_at(h, door, at, &req.when) != 0) {
		rotagate_close(h);
		return EXIT_ERR;
	}
	req.flags = dry ? (ROTAGATE_DRY_RUN | ROTAGATE_EXPLAIN) : 0;

	struct rotagate_decision *d = malloc(sizeof *d);
	if (!d) {
		rotagate_close(h);
		return EXIT_ERR;
	}
	enum rotagate_verdict v = rotagate_decide(h, &req, d);
	if (json) {
		json_object *o = decision_json(&req, d, dry);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								    JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else {
		print_decision_line(d);
		if (dry)
			fputs(d->explain, stdout);
	}
	free(d);
	rotagate_close(h);
	return v == ROTAGATE_GRANT ? EXIT_GRANT : v == ROTAGATE_DENY ? EXIT_DENY : EXIT_ERR;
}

/* ------------------------------------------------------------------ */

static int occupancy_site(const struct rg_site *site, struct rg_ledger *ledger, const char *date,
			  bool names, json_object *arr)
{
	int32_t day;
	if (date) {
		if (rg_cal_parse_date(date, &day) != 0) {
			fprintf(stderr, "%s: --date: not a date (YYYY-MM-DD): %s\n", progname, date);
			return -1;
		}
	} else {
		struct rg_localtime lt;
		if (rg_cal_localize(site->timezone, time(NULL), &lt) != 0) {
			fprintf(stderr, "%s: site %s: unknown time zone\n", progname, site->name);
			return -1;
		}
		day = lt.day;
	}
	char dstr[16];
	rg_cal_format_date(day, dstr, sizeof dstr);

	struct rg_day_summary s;
	char err[512];
	if (rg_ledger_day(ledger, site->name, day, true, &s, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", progname, err);
		return -1;
	}

	/* first entry per door */
	json_object *doors = json_object_new_object();
	for (size_t i = 0; i < s.nadmissions; i++) {
		const struct rg_admission *a = &s.admissions[i];
		json_object *cur;
		if (json_object_object_get_ex(doors, a->door, &cur)) {
			json_object *n = json_object_object_get(cur, "admitted");
			json_object_set_int64(n, json_object_get_int64(n) + 1);
			continue;
		}
		char t[16];
		struct rg_localtime lt;
		if (rg_cal_localize(site->timezone, a->when, &lt) == 0)
			snprintf(t, sizeof t, "%02d:%02d", lt.minute / 60, lt.minute % 60);
		else
			snprintf(t, sizeof t, "?");
		cur = json_object_new_object();
		json_object_object_add(cur, "first_entry", json_object_new_string(t));
		json_object_object_add(cur, "admitted", json_object_new_int64(1));
		json_object_object_add(doors, a->door, cur);
	}

	if (arr) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "site", json_object_new_string(site->name));
		json_object_object_add(o, "date", json_object_new_string(dstr));
		json_object_object_add(o, "count", json_object_new_int64(s.count));
		json_object_object_add(o, "capacity", json_object_new_int64(site->capacity));
		json_object_object_add(o, "reserved", json_object_new_int64(site->reserved));
		json_object_object_add(o, "exempt_admitted", json_object_new_int64(s.exempt_count));
		json_object_object_add(o, "doors", json_object_get(doors));
		if (names) {
			json_object *people = json_object_new_array();
			for (size_t i = 0; i < s.nadmissions; i++) {
				json_object *p = json_object_new_object();
				json_object_object_add(p, "user", json_object_new_string(s.admissions[i].person));
				json_object_object_add(p, "door", json_object_new_string(s.admissions[i].door));
				json_object_object_add(p, "rule", json_object_new_string(s.admissions[i].rule ? s.admissions[i].rule : ""));
				json_object_object_add(p, "when", json_object_new_int64(s.admissions[i].when));
				json_object_object_add(p, "exempt", json_object_new_boolean(s.admissions[i].exempt));
				json_object_array_add(people, p);
			}
			json_object_object_add(o, "admissions", people);
		}
		json_object_array_add(arr, o);
	} else {
		printf("%s %s: %u/%u admitted", site->name, dstr, s.count, site->capacity);
		if (site->reserved)
			printf(", %u exempt (reserved places: %u)", s.exempt_count, site->reserved);
		printf("\n");
		json_object_object_foreach(doors, door, val) {
			printf("  door %s: first entry %s, %lld admitted there\n", door,
			       json_object_get_string(json_object_object_get(val, "first_entry")),
			       (long long)json_object_get_int64(json_object_object_get(val, "admitted")));
		}
		for (size_t i = 0; names && i < s.nadmissions; i++) {
			const struct rg_admission *a = &s.admissions[i];
			struct rg_localtime lt;
			int m = rg_cal_localize(site->timezone, a->when, &lt) == 0 ? lt.minute : 0;
			printf("  %02d:%02d %s via %s (%s%s)\n", m / 60, m % 60, a->person, a->door,
			       a->rule ? a->rule : "", a->exempt ? ", exempt" : "");
		}
	}
	json_object_put(doors);
	rg_day_summary_clear(&s);
	return 0;
}

static int cmd_occupancy(const char *conf, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, 's' },
		{ "date", required_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ "names", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *site_name = NULL, *date = NULL;
	bool json = false, names = false;
	int c;
	optind = 0; /* 0: full re-initialisation of glibc getopt */
	while ((c = getopt_long(argc, argv, "s:D:jn", opts, NULL)) != -1) {
		switch (c) {
		case 's': site_name = optarg; break;
		case 'D': date = optarg; break;
		case 'j': json = true; break;
		case 'n': names = true; break;
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_ERR;
	}
	struct rotagate *h;
	if (open_handle(conf, &h) != 0)
		return EXIT_ERR;
	struct rg_api_view v;
	rg_api_view_get(h, &v);
	int rc = EXIT_GRANT;
	json_object *arr = json ? json_object_new_array() : NULL;
	bool found = false;
	for (size_t i = 0; i < v.cfg->nsites; i++) {
		const struct rg_site *s = &v.cfg->sites[i];
		if (site_name && strcmp(site_name, s->name) != 0)
			continue;
		found = true;
		if (occupancy_site(s, v.ledger, date, names, arr) != 0)
			rc = EXIT_ERR;
	}
	if (site_name && !found) {
		fprintf(stderr, "%s: no site named '%s'\n", progname, site_name);
		rc = EXIT_ERR;
	}
	if (arr) {
		if (rc == EXIT_GRANT)
			printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
									     JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
	}
	rg_api_view_put(h, &v);
	rotagate_close(h);
	return rc;
}

/* Refresh the membership snapshot from the directory: every member of every
 * group a rule names, with their groups; replaced atomically. */
static int cmd_sync(const char *conf)
{
	struct rotagate *h;
	if (open_handle(conf, &h) != 0)
		return EXIT_ERR;
	struct rg_api_view v;
	rg_api_view_get(h, &v);
	int rc = EXIT_ERR;
	char err[1024];
	size_t ngroups = 0, npersons = 0;
	const char **groups = rg_config_all_groups(v.cfg, &ngroups);
	struct rg_dir *d = rg_dir_new(&v.cfg->directory);
	struct rg_snapshot *snap = rg_snapshot_open(v.cfg->ledger.path, err, sizeof err);
	if (!groups || !d) {
		fprintf(stderr, "%s: out of memory\n", progname);
	} else if (!snap) {
		fprintf(stderr, "%s: %s\n", progname, err);
	} else if (rg_dir_sync(d, groups, ngroups, snap, &npersons, err, sizeof err) != 0) {
		fprintf(stderr, "%s: sync failed, snapshot unchanged: %s\n", progname, err);
	} else {
		printf("synced %zu person(s) from %zu group(s) into %s/snapshot\n", npersons, ngroups,
		       v.cfg->ledger.path);
		rc = EXIT_GRANT;
	}
	rg_snapshot_close(snap);
	rg_dir_free(d);
	free(groups);
	rg_api_view_put(h, &v);
	rotagate_close(h);
	return rc;
}

static int cmd_ledger(const char *conf, int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "prune") != 0) {
		usage(stderr);
		return EXIT_ERR;
	}
	struct rotagate *h;
	if (open_handle(conf, &h) != 0)
		return EXIT_ERR;
	struct rg_api_view v;
	rg_api_view_get(h, &v);
	struct rg_localtime lt;
	int rc = EXIT_ERR;
	char err[512];
	if (rg_cal_localize(NULL, time(NULL), &lt) == 0) {
		long n = rg_ledger_prune(v.ledger, lt.day, v.cfg->ledger.retain_days, err, sizeof err);
		if (n < 0) {
			fprintf(stderr, "%s: %s\n", progname, err);
		} else {
			printf("pruned %ld site-day(s) older than %u days\n", n, v.cfg->ledger.retain_days);
			rc = EXIT_GRANT;
		}
	}
	rg_api_view_put(h, &v);
	rotagate_close(h);
	return rc;
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *conf = ROTAGATE_DEFAULT_CONF;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'h': usage(stdout); return EXIT_GRANT;
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_ERR;
	}
	const char *cmd = argv[optind];
	int sub_argc = argc - optind;
	char **sub_argv = argv + optind;

	if (strcmp(cmd, "config-test") == 0 && sub_argc == 1)
		return cmd_config_test(conf);
	if (strcmp(cmd, "check") == 0)
		return cmd_decide(conf, sub_argc, sub_argv, true);
	if (strcmp(cmd, "admit") == 0)
		return cmd_decide(conf, sub_argc, sub_argv, false);
	if (strcmp(cmd, "occupancy") == 0)
		return cmd_occupancy(conf, sub_argc, sub_argv);
	if (strcmp(cmd, "sync") == 0 && sub_argc == 1)
		return cmd_sync(conf);
	if (strcmp(cmd, "ledger") == 0)
		return cmd_ledger(conf, sub_argc, sub_argv);
	fprintf(stderr, "%s: unknown command or arguments: %s\n", progname, cmd);
	usage(stderr);
	return EXIT_ERR;
}
