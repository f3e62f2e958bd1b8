/*
 * rotagatectl - operator CLI over the public API.
 *
 *   rotagatectl [-c CONF] config-test
 *   rotagatectl [-c CONF] check USER --door DOOR [--at 'YYYY-MM-DD HH:MM'] [--json]
 *   rotagatectl [-c CONF] admit USER --door DOOR [--at 'YYYY-MM-DD HH:MM'] [--json]
 *   rotagatectl [-c CONF] occupancy [--site S] [--date D] [--json] [--names]
 *   rotagatectl [-c CONF] sync
 *   rotagatectl [-c CONF] ledger prune
 *   rotagatectl [-c CONF] report --week YYYY-Www [--site S] [--format table|csv|json]
 *
 * Exit status: 0 GRANT or success, 1 DENY, 2 error.
 */
#include "config.h"

#include <ctype.h>
#include <getopt.h>
#include <glib.h>
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
		"  report --week YYYY-Www [--site S] [--format table|csv|json]\n"
		"                                      weekly attendance per site and rota\n"
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

/* A member left out of the snapshot: say so (stderr, for the timer's journal). */
static void sync_skipped(const char *principal, const char *why, void *data)
{
	(*(size_t *)data)++;
	fprintf(stderr, "%s: sync: %s left out of the snapshot (unknown to doors until fixed): %s\n",
		progname, principal, why);
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
	size_t ngroups = 0, npersons = 0, nskipped = 0;
	const char **groups = rg_config_all_groups(v.cfg, &ngroups);
	struct rg_dir *d = rg_dir_new(&v.cfg->directory);
	struct rg_snapshot *snap = rg_snapshot_open(v.cfg->ledger.path, err, sizeof err);
	if (!groups || !d) {
		fprintf(stderr, "%s: out of memory\n", progname);
	} else if (!snap) {
		fprintf(stderr, "%s: %s\n", progname, err);
	} else if (rg_dir_sync(d, groups, ngroups, snap, &npersons, sync_skipped, &nskipped, err,
			       sizeof err) != 0) {
		fprintf(stderr, "%s: sync failed, snapshot unchanged: %s\n", progname, err);
	} else {
		printf("synced %zu person(s) from %zu group(s) into %s/snapshot", npersons, ngroups,
		       v.cfg->ledger.path);
		if (nskipped)
			printf("; %zu name(s) left out: each matches more than one entry", nskipped);
		printf("\n");
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
/*
 * report: weekly attendance per site (ledger) against rota membership.
 *
 * Days are ledger days (site-local dates as day numbers), so the figures never
 * depend on the machine's time zone.  Membership comes from the snapshot when
 * it has ever been synced (rg_snapshot_synced_at() != 0), else live from the
 * directory (rg_dir_group_members).  A person is identified by the ledger's
 * identity, the uid (compared case-insensitively, as LDAP compares uids).
 */

enum report_format { FMT_TABLE, FMT_CSV, FMT_JSON };

static int collect_person(struct rg_person *p, void *data)
{
	g_ptr_array_add(data, p);
	return 0;
}

struct membership {
	bool from_snapshot;
	int64_t synced_at;
	GPtrArray *persons;          /* snapshot: struct rg_person * */
	struct rg_dir *dir;          /* live */
	bool badge_mode;             /* live: members are badge numbers, look them up */
};

static void membership_clear(struct membership *m)
{
	if (m->persons)
		g_ptr_array_free(m->persons, TRUE);
	rg_dir_free(m->dir);
	memset(m, 0, sizeof *m);
}

static int membership_init(const struct rg_config *cfg, struct membership *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof *m);
	struct rg_snapshot *snap = rg_snapshot_open(cfg->ledger.path, err, errlen);
	if (!snap)
		return -1;
	int rc = rg_snapshot_synced_at(snap, &m->synced_at, err, errlen);
	if (rc == 1) {
		m->from_snapshot = true;
		m->persons = g_ptr_array_new_with_free_func((GDestroyNotify)rg_person_free);
		rc = rg_snapshot_foreach(snap, collect_person, m->persons, err, errlen);
		rg_snapshot_close(snap);
		if (rc != 0) {
			membership_clear(m);
			return -1;
		}
		return 0;
	}
	rg_snapshot_close(snap);
	if (rc < 0)
		return -1;
	m->dir = rg_dir_new(&cfg->directory);
	if (!m->dir) {
		snprintf(err, errlen, "directory: cannot create a session");
		return -1;
	}
	m->badge_mode = cfg->directory.badge_attribute != NULL;
	return 0;
}

/* The uids of the members of `group` into `set` (casefolded key -> uid). */
static int membership_of(struct membership *m, const char *group, GHashTable *set, char *err,
			 size_t errlen)
{
	if (m->from_snapshot) {
		for (guint i = 0; i < m->persons->len; i++) {
			const struct rg_person *p = m->persons->pdata[i];
			const char *id = p->uid && *p->uid ? p->uid : p->principal;
			if (rg_person_in_group(p, group))
				g_hash_table_replace(set, g_utf8_casefold(id, -1), g_strdup(id));
		}
		return 0;
	}
	char **members = NULL, msg[512];
	enum rg_dir_status st = rg_dir_group_members(m->dir, group, &members, msg, sizeof msg);
	if (st == RG_DIR_NOT_FOUND)
		return 0;
	if (st != RG_DIR_OK) {
		snprintf(err, errlen, "directory: members of %s: %s", group, msg);
		return -1;
	}
	int r = 0;
	for (char **mm = members; *mm; mm++) {
		char *id = NULL;
		if (r == 0 && m->badge_mode) {
			/* the ledger keeps uids; a badge number must be looked up */
			struct rg_person *p = NULL;
			st = rg_dir_lookup(m->dir, *mm, &p, msg, sizeof msg);
			if (st == RG_DIR_OK && p->uid && *p->uid)
				id = g_strdup(p->uid);
			else if (st != RG_DIR_OK && st != RG_DIR_NOT_FOUND && st != RG_DIR_BAD_INPUT) {
				snprintf(err, errlen, "directory: %s: %s", *mm, msg);
				r = -1;
			}
			rg_person_free(p);
		} else if (r == 0) {
			id = g_strdup(*mm);
		}
		if (id)
			g_hash_table_replace(set, g_utf8_casefold(id, -1), id);
		free(*mm);
	}
	free(members);
	return r;
}

struct report_rota {
	const struct rg_rota *rota;
	unsigned members, attended;
};

struct report_site {
	const struct rg_site *site;
	int32_t days[7];
	unsigned admitted[7], exempt[7];
	unsigned distinct, exempt_people, exempt_admissions;
	struct report_rota *rotas;
};

/* attended*100 >= target*members; no members: nothing to meet */
static bool rota_met(const struct report_site *rs, const struct report_rota *rr)
{
	return rr->members > 0 &&
	       (uint64_t)rr->attended * 100 >= (uint64_t)rs->site->weekly_target * rr->members;
}

static void rota_percent(const struct report_rota *rr, char *buf, size_t len)
{
	if (rr->members == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", 100.0 * rr->attended / rr->members);
}

static const char *rota_status(const struct report_site *rs, const struct report_rota *rr)
{
	return rr->members == 0 ? "no members" : rota_met(rs, rr) ? "met" : "below target";
}

static int report_collect(const struct rg_site *site, struct rg_ledger *ledger, int32_t monday,
			  struct membership *m, struct report_site *rs, char *err, size_t errlen)
{
	/* casefolded identity -> 1 (came), 2 (came as exempt at least once) */
	GHashTable *came = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	GHashTable *exempt = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	int r = -1;

	memset(rs, 0, sizeof *rs);
	rs->site = site;
	rs->rotas = calloc(site->nrotas ? site->nrotas : 1, sizeof *rs->rotas);
	if (!rs->rotas) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (int i = 0; i < 7; i++) {
		struct rg_day_summary s;
		rs->days[i] = monday + i;
		if (rg_ledger_day(ledger, site->name, rs->days[i], true, &s, err, errlen) != 0)
			goto out;
		rs->admitted[i] = s.count;
		rs->exempt[i] = s.exempt_count;
		rs->exempt_admissions += s.exempt_count;
		for (size_t j = 0; j < s.nadmissions; j++) {
			const struct rg_admission *a = &s.admissions[j];
			g_hash_table_add(came, g_utf8_casefold(a->person, -1));
			if (a->exempt)
				g_hash_table_add(exempt, g_utf8_casefold(a->person, -1));
		}
		rg_day_summary_clear(&s);
	}
	rs->distinct = g_hash_table_size(came);
	rs->exempt_people = g_hash_table_size(exempt);
	for (size_t i = 0; i < site->nrotas; i++) {
		GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
		rs->rotas[i].rota = &site->rotas[i];
		if (membership_of(m, site->rotas[i].group, set, err, errlen) != 0) {
			g_hash_table_destroy(set);
			goto out;
		}
		GHashTableIter it;
		gpointer key;
		g_hash_table_iter_init(&it, set);
		while (g_hash_table_iter_next(&it, &key, NULL)) {
			rs->rotas[i].members++;
			if (g_hash_table_contains(came, key))
				rs->rotas[i].attended++;
		}
		g_hash_table_destroy(set);
	}
	r = 0;
out:
	g_hash_table_destroy(came);
	g_hash_table_destroy(exempt);
	return r;
}

static void csv_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static const char *const report_csv_header =
	"site,week,kind,name,date,people,capacity,exempt,members,attended,percent,target,status\n";

/* One site's figures as a JSON object appended to arr. */
static void report_print_json(const struct report_site *rs, const char *week, const char *d0,
			      const char *d6, const struct membership *m, json_object *arr)
{
	const struct rg_site *site = rs->site;
	char dstr[16], pct[32];

	json_object *o = json_object_new_object();
	json_object_object_add(o, "site", json_object_new_string(site->name));
	json_object_object_add(o, "week", json_object_new_string(week));
	json_object_object_add(o, "from", json_object_new_string(d0));
	json_object_object_add(o, "to", json_object_new_string(d6));
	json_object_object_add(o, "timezone", site->timezone ? json_object_new_string(site->timezone) : NULL);
	json_object_object_add(o, "capacity", json_object_new_int64(site->capacity));
	json_object *days = json_object_new_array();
	for (int i = 0; i < 7; i++) {
		json_object *d = json_object_new_object();
		rg_cal_format_date(rs->days[i], dstr, sizeof dstr);
		json_object_object_add(d, "date", json_object_new_string(dstr));
		json_object_object_add(d, "weekday", json_object_new_string(rg_cal_weekday_name(i + 1)));
		json_object_object_add(d, "people", json_object_new_int64(rs->admitted[i]));
		json_object_object_add(d, "capacity", json_object_new_int64(site->capacity));
		json_object_object_add(d, "exempt", json_object_new_int64(rs->exempt[i]));
		json_object_array_add(days, d);
	}
	json_object_object_add(o, "days", days);
	json_object_object_add(o, "distinct_people", json_object_new_int64(rs->distinct));
	json_object_object_add(o, "exempt_admissions", json_object_new_int64(rs->exempt_admissions));
	json_object_object_add(o, "exempt_people", json_object_new_int64(rs->exempt_people));
	json_object_object_add(o, "weekly_target", json_object_new_int64(site->weekly_target));
	json_object_object_add(o, "membership",
			       json_object_new_string(m->from_snapshot ? "snapshot" : "directory"));
	json_object_object_add(o, "snapshot_synced_at",
			       m->from_snapshot ? json_object_new_int64(m->synced_at) : NULL);
	json_object *rotas = json_object_new_array();
	for (size_t i = 0; i < site->nrotas; i++) {
		const struct report_rota *rr = &rs->rotas[i];
		json_object *r = json_object_new_object();
		rota_percent(rr, pct, sizeof pct);
		json_object_object_add(r, "rota", json_object_new_string(rr->rota->name));
		json_object_object_add(r, "group", json_object_new_string(rr->rota->group));
		json_object_object_add(r, "members", json_object_new_int64(rr->members));
		json_object_object_add(r, "attended", json_object_new_int64(rr->attended));
		json_object_object_add(r, "percent", rr->members ?
				       json_object_new_double_s(100.0 * rr->attended / rr->members, pct) : NULL);
		json_object_object_add(r, "target", json_object_new_int64(site->weekly_target));
		json_object_object_add(r, "met", json_object_new_boolean(rota_met(rs, rr)));
		json_object_object_add(r, "status", json_object_new_string(rota_status(rs, rr)));
		json_object_array_add(rotas, r);
	}
	json_object_object_add(o, "rotas", rotas);
	json_object_array_add(arr, o);
}

static void report_print_csv(const struct report_site *rs, const char *week, const char *d0,
			     const char *d6)
{
	const struct rg_site *site = rs->site;
	char dstr[16], pct[32];

	for (int i = 0; i < 7; i++) {
		rg_cal_format_date(rs->days[i], dstr, sizeof dstr);
		csv_field(stdout, site->name);
		printf(",%s,day,%.3s,%s,%u,%u,%u,,,,,\n", week, rg_cal_weekday_name(i + 1), dstr,
		       rs->admitted[i], site->capacity, rs->exempt[i]);
	}
	csv_field(stdout, site->name);
	printf(",%s,week,,%s..%s,%u,,%u,,,,%u,\n", week, d0, d6, rs->distinct,
	       rs->exempt_admissions, site->weekly_target);
	for (size_t i = 0; i < site->nrotas; i++) {
		const struct report_rota *rr = &rs->rotas[i];
		rota_percent(rr, pct, sizeof pct);
		csv_field(stdout, site->name);
		printf(",%s,rota,", week);
		csv_field(stdout, rr->rota->name);
		printf(",,,,,%u,%u,%s,%u,%s\n", rr->members, rr->attended, rr->members ? pct : "",
		       site->weekly_target, rota_status(rs, rr));
	}
}

static void report_print_table(const struct report_site *rs, const char *week, const char *d0,
			       const char *d6, const struct membership *m)
{
	const struct rg_site *site = rs->site;
	char dstr[16], pct[32], synced[64] = "";

	if (m->from_snapshot) {
		struct tm tm;
		rg_cal_utc_tm(m->synced_at, &tm);
		snprintf(synced, sizeof synced, "%04d-%02d-%02dT%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
	}
	printf("site %s, week %s (%s .. %s, %s)\n", site->name, week, d0, d6,
	       site->timezone ? site->timezone : "local time");
	printf("  %-9s  %-10s  %6s  %8s  %6s\n", "day", "date", "people", "capacity", "exempt");
	for (int i = 0; i < 7; i++) {
		rg_cal_format_date(rs->days[i], dstr, sizeof dstr);
		printf("  %-9s  %-10s  %6u  %8u  %6u\n", rg_cal_weekday_name(i + 1), dstr, rs->admitted[i],
		       site->capacity, rs->exempt[i]);
	}
	printf("  week: %u distinct people came at least once; exempt admissions: %u (%u distinct)\n",
	       rs->distinct, rs->exempt_admissions, rs->exempt_people);
	printf("  %-16s  %7s  %8s  %7s  %6s  %s\n", "rota", "members", "attended", "percent", "target",
	       "status");
	for (size_t i = 0; i < site->nrotas; i++) {
		const struct report_rota *rr = &rs->rotas[i];
		char p2[40];
		rota_percent(rr, pct, sizeof pct);
		snprintf(p2, sizeof p2, "%s%s", pct, rr->members ? "%" : "");
		printf("  %-16s  %7u  %8u  %7s  %5u%%  %s\n", rr->rota->name, rr->members, rr->attended, p2,
		       site->weekly_target, rota_status(rs, rr));
	}
	if (m->from_snapshot)
		printf("  membership: snapshot synced %s\n", synced);
	else
		printf("  membership: directory (live; the snapshot was never synced)\n");
}

static void report_print(const struct report_site *rs, const char *week,
			 const struct membership *m, enum report_format fmt, json_object *arr)
{
	char d0[16], d6[16];

	rg_cal_format_date(rs->days[0], d0, sizeof d0);
	rg_cal_format_date(rs->days[6], d6, sizeof d6);
	if (fmt == FMT_JSON)
		report_print_json(rs, week, d0, d6, m, arr);
	else if (fmt == FMT_CSV)
		report_print_csv(rs, week, d0, d6);
	else
		report_print_table(rs, week, d0, d6, m);
}

/* "YYYY-Www" -> Monday; -1 if malformed or the week does not exist. */
static int parse_iso_week(const char *s, int32_t *monday)
{
	if (strlen(s) != 8 || s[4] != '-' || s[5] != 'W')
		return -1;
	for (int i = 0; i < 8; i++)
		if (i != 4 && i != 5 && !isdigit((unsigned char)s[i]))
			return -1;
	int year = atoi(s), week = (s[6] - '0') * 10 + (s[7] - '0');
	if (year < 1 || week < 1)
		return -1;
	return rg_cal_iso_week_monday(year, week, monday) == 0 ? 0 : -1;
}

static int cmd_report(const char *conf, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "week", required_argument, NULL, 'w' },
		{ "site", required_argument, NULL, 's' },
		{ "format", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *week = NULL, *site_name = NULL;
	enum report_format fmt = FMT_TABLE;
	int c;
	optind = 0; /* 0: full re-initialisation of glibc getopt */
	while ((c = getopt_long(argc, argv, "w:s:f:", opts, NULL)) != -1) {
		switch (c) {
		case 'w': week = optarg; break;
		case 's': site_name = optarg; break;
		case 'f':
			if (strcmp(optarg, "table") == 0)
				fmt = FMT_TABLE;
			else if (strcmp(optarg, "csv") == 0)
				fmt = FMT_CSV;
			else if (strcmp(optarg, "json") == 0)
				fmt = FMT_JSON;
			else {
				fprintf(stderr, "%s report: --format: table, csv or json, not '%s'\n",
					progname, optarg);
				return EXIT_ERR;
			}
			break;
		default: usage(stderr); return EXIT_ERR;
		}
	}
	if (optind != argc || !week) {
		fprintf(stderr, "%s report: need --week YYYY-Www\n", progname);
		return EXIT_ERR;
	}
	int32_t monday;
	if (parse_iso_week(week, &monday) != 0) {
		fprintf(stderr, "%s report: --week: not an ISO week (YYYY-Www, a week that exists): %s\n",
			progname, week);
		return EXIT_ERR;
	}

	/* config, ledger and snapshot directly: a report makes no decision and
	 * must not audit one, nor reload the config under a running report */
	struct rg_config *cfg = NULL;
	struct rg_ledger *ledger = NULL;
	struct membership m = { 0 };
	char err[1024];
	int rc = EXIT_ERR;
	if (rg_config_load(conf, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_ERR;
	}
	if (site_name && !rg_config_site(cfg, site_name)) {
		fprintf(stderr, "%s: no site named '%s'\n", progname, site_name);
		goto out;
	}
	if (rg_ledger_open(cfg, &ledger, err, sizeof err) != 0) {
		ledger = NULL;
		fprintf(stderr, "%s: %s\n", progname, err);
		goto out;
	}
	if (membership_init(cfg, &m, err, sizeof err) != 0) {
		fprintf(stderr, "%s: membership: %s\n", progname, err);
		goto out;
	}

	/* collect everything first: an error prints nothing but the message */
	struct report_site *rs = calloc(cfg->nsites ? cfg->nsites : 1, sizeof *rs);
	size_t n = 0;
	bool ok = rs != NULL;
	for (size_t i = 0; ok && i < cfg->nsites; i++) {
		const struct rg_site *s = &cfg->sites[i];
		if (site_name && strcmp(site_name, s->name) != 0)
			continue;
		if (report_collect(s, ledger, monday, &m, &rs[n], err, sizeof err) != 0) {
			fprintf(stderr, "%s: site %s: %s\n", progname, s->name, err);
			ok = false;
		}
		n++;
	}
	if (ok) {
		json_object *arr = fmt == FMT_JSON ? json_object_new_array() : NULL;
		if (fmt == FMT_CSV)
			fputs(report_csv_header, stdout);
		for (size_t i = 0; i < n; i++) {
			if (fmt == FMT_TABLE && i > 0)
				printf("\n");
			report_print(&rs[i], week, &m, fmt, arr);
		}
		if (arr) {
			printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY |
									     JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(arr);
		}
		rc = fflush(stdout) == 0 ? EXIT_GRANT : EXIT_ERR;
	}
	for (size_t i = 0; rs && i < n; i++)
		free(rs[i].rotas);
	free(rs);
out:
	membership_clear(&m);
	if (ledger)
		rg_ledger_close(ledger);
	rg_config_free(cfg);
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
	if (strcmp(cmd, "report") == 0)
		return cmd_report(conf, sub_argc, sub_argv);
	fprintf(stderr, "%s: unknown command or arguments: %s\n", progname, cmd);
	usage(stderr);
	return EXIT_ERR;
}
