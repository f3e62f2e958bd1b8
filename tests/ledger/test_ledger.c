/*
 * test_ledger.c - behaviour of the capacity ledger through its interface
 * (plugin/ledger.h), against a real backend:
 *   lmdb (default): a fresh LMDB environment per test in a temp dir;
 *   ldap: RG_TEST_LEDGER_BACKEND=ldap, a slapd started by tests/ledger/ldap.sh
 *         (RG_LDAP_URI, RG_TEST_LEDGER_BASE); each test uses its own site.
 * Day numbers are fixed constants: nothing depends on today's date or the TZ.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "ledger.h"
#include "rules.h"

#define D_2026_03_28 20540 /* Saturday before the EU change to summer time */
#define D_2026_03_29 20541 /* 23-hour day in Europe/London */
#define D_2026_03_30 20542
#define D_2026_10_24 20750
#define D_2026_10_25 20751 /* 25-hour day in Europe/London */
#define D_2026_10_26 20752
#define DAY D_2026_10_26

static bool is_ldap;
static char *dir;
static struct lt_backend B;
static struct rg_ledger *L;
static char err[512];

static void open_ledger(struct rg_ledger **out, const struct lt_backend *b)
{
	struct rg_config *cfg = lt_config(b);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_msg(rg_ledger_open(cfg, out, err, sizeof(err)) == 0, "open: %s", err);
	lt_config_free(cfg);
}

static void setup(void)
{
	const char *backend = getenv("RG_TEST_LEDGER_BACKEND");

	is_ldap = backend && strcmp(backend, "ldap") == 0;
	dir = lt_tempdir("rg-ledger-test");
	ck_assert_ptr_nonnull(dir);
	memset(&B, 0, sizeof(B));
	B.backend = is_ldap ? "ldap" : "lmdb";
	B.path = dir;
	B.uri = getenv("RG_LDAP_URI");
	B.base = getenv("RG_TEST_LEDGER_BASE");
	B.retain_days = 0; /* no automatic pruning unless a test asks */
	if (is_ldap)
		ck_assert_msg(B.uri && B.base, "RG_LDAP_URI and RG_TEST_LEDGER_BASE are needed");
	open_ledger(&L, &B);
}

static void teardown(void)
{
	rg_ledger_close(L);
	L = NULL;
	lt_rmtree(dir);
	free(dir);
}

struct swipe {
	const char *site;
	int32_t day;
	const char *person;
	unsigned capacity, reserved;
	bool exempt, dry_run;
	int64_t when;
	const char *door, *rule;
};

static enum rg_ledger_result reserve_on(struct rg_ledger *l, struct swipe s, unsigned *occ)
{
	struct rg_reservation r = {
		.site = s.site,
		.day = s.day,
		.person = s.person,
		.door = s.door ? s.door : "main-entrance",
		.rule = s.rule ? s.rule : (s.exempt ? "estates" : "team-a"),
		.when = s.when ? s.when : (int64_t)s.day * 86400 + 8 * 3600,
		.capacity = s.capacity,
		.reserved = s.reserved,
		.exempt = s.exempt,
		.dry_run = s.dry_run,
	};
	enum rg_ledger_result res;

	err[0] = 0;
	res = rg_ledger_reserve(l, &r, occ, err, sizeof(err));
	ck_assert_msg(res != RG_LEDGER_FAILED, "reserve %s: %s", s.person, err);
	return res;
}

#define RESERVE(...) reserve_on(L, (struct swipe){ __VA_ARGS__ }, &occ)

static struct rg_day_summary day_of(const char *site, int32_t day, bool list)
{
	struct rg_day_summary s;

	ck_assert_msg(rg_ledger_day(L, site, day, list, &s, err, sizeof(err)) == 0, "day: %s", err);
	return s;
}

static unsigned count_of(const char *site, int32_t day)
{
	struct rg_day_summary s = day_of(site, day, false);

	return s.count;
}

/* A token that changes whenever the backend commits a write that concerns
 * `site` (lmdb: the environment's last txn id; ldap: the entry's entryCSN). */
static char *write_token(const char *site)
{
	char *tok = NULL;

	if (!is_ldap) {
		uint64_t id;

		ck_assert_msg(rg_ledger_lmdb_last_txnid(L, &id, err, sizeof(err)) == 0, "%s", err);
		ck_assert_int_ne(asprintf(&tok, "%llu", (unsigned long long)id), -1);
		return tok;
	}
	LDAP *ld;
	LDAPMessage *res = NULL, *e;
	char filter[256], *attrs[] = { "entryCSN", NULL };
	int v3 = LDAP_VERSION3, rc;
	struct berval **vals;

	ck_assert_int_eq(ldap_initialize(&ld, B.uri), LDAP_SUCCESS);
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	struct berval empty = { 0, "" };
	rc = ldap_sasl_bind_s(ld, NULL, "EXTERNAL", &empty, NULL, NULL, NULL);
	ck_assert_msg(rc == LDAP_SUCCESS, "bind: %s", ldap_err2string(rc));
	snprintf(filter, sizeof(filter), "(rgSite=%s)", site);
	rc = ldap_search_ext_s(ld, B.base, LDAP_SCOPE_ONELEVEL, filter, attrs, 0, NULL, NULL, NULL,
			       0, &res);
	ck_assert_msg(rc == LDAP_SUCCESS, "search: %s", ldap_err2string(rc));
	e = ldap_first_entry(ld, res);
	if (!e) {
		tok = strdup("none");
	} else {
		vals = ldap_get_values_len(ld, e, "entryCSN");
		ck_assert_ptr_nonnull(vals);
		tok = strndup(vals[0]->bv_val, vals[0]->bv_len);
		ldap_value_free_len(vals);
	}
	ldap_msgfree(res);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return tok;
}

START_TEST(test_first_admission_is_stored_and_counted)
{
	const char *site = __func__;
	unsigned occ = 99;
	struct rg_day_summary s;

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 5,
				 .when = 1792998000),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(occ, 1);
	/* a new handle (as after a restart) sees it */
	rg_ledger_close(L);
	open_ledger(&L, &B);
	s = day_of(site, DAY, true);
	ck_assert_uint_eq(s.count, 1);
	ck_assert_uint_eq(s.exempt_count, 0);
	ck_assert_uint_eq(s.nadmissions, 1);
	ck_assert_str_eq(s.admissions[0].person, "alice");
	ck_assert_str_eq(s.admissions[0].door, "main-entrance");
	ck_assert_str_eq(s.admissions[0].rule, "team-a");
	ck_assert_int_eq(s.admissions[0].when, 1792998000);
	ck_assert(!s.admissions[0].exempt);
	rg_day_summary_clear(&s);
}
END_TEST

START_TEST(test_reentry_uses_no_place)
{
	const char *site = __func__;
	unsigned occ;

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 2),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 2),
			 RG_LEDGER_REENTRY);
	ck_assert_uint_eq(occ, 1);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 2),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(occ, 2);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "carol", .capacity = 2),
			 RG_LEDGER_FULL);
	ck_assert_uint_eq(occ, 2);
	/* a full day still lets an admitted person back in */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 2),
			 RG_LEDGER_REENTRY);
	ck_assert_uint_eq(occ, 2);
	ck_assert_uint_eq(count_of(site, DAY), 2);
}
END_TEST

START_TEST(test_reentry_writes_nothing)
{
	const char *site = __func__;
	unsigned occ;
	char *t0, *t1, *t2;

	t0 = write_token(site);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_ADMITTED);
	t1 = write_token(site);
	ck_assert_str_ne(t0, t1); /* the token does see writes */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_REENTRY);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 1),
			 RG_LEDGER_FULL);
	t2 = write_token(site);
	ck_assert_str_eq(t1, t2);
	free(t0);
	free(t1);
	free(t2);
}
END_TEST

START_TEST(test_reserved_places_are_for_exempt_staff_only)
{
	const char *site = __func__;
	unsigned occ;
	char name[32];
	struct rg_day_summary s;

	for (int i = 1; i <= 8; i++) {
		snprintf(name, sizeof(name), "person%d", i);
		ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = name, .capacity = 10,
					 .reserved = 2),
				 RG_LEDGER_ADMITTED);
		ck_assert_uint_eq(occ, (unsigned)i);
	}
	/* the 9th non-exempt person: only reserved places are left */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "person9", .capacity = 10,
				 .reserved = 2),
			 RG_LEDGER_FULL);
	ck_assert_uint_eq(occ, 8);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "estates1", .capacity = 10,
				 .reserved = 2, .exempt = true),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "estates2", .capacity = 10,
				 .reserved = 2, .exempt = true),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(occ, 10);
	/* the 11th, exempt or not: full */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "estates3", .capacity = 10,
				 .reserved = 2, .exempt = true),
			 RG_LEDGER_FULL);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "person10", .capacity = 10,
				 .reserved = 2),
			 RG_LEDGER_FULL);
	s = day_of(site, DAY, true);
	ck_assert_uint_eq(s.count, 10);
	ck_assert_uint_eq(s.exempt_count, 2);
	ck_assert_uint_eq(s.nadmissions, 10);
	rg_day_summary_clear(&s);
}
END_TEST

START_TEST(test_capacity_zero_admits_nobody)
{
	const char *site = __func__;
	unsigned occ;

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 0),
			 RG_LEDGER_FULL);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "estates", .capacity = 0,
				 .exempt = true),
			 RG_LEDGER_FULL);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 3,
				 .reserved = 3),
			 RG_LEDGER_FULL);
	ck_assert_uint_eq(count_of(site, DAY), 0);
}
END_TEST

START_TEST(test_each_day_starts_a_fresh_count_also_around_dst_changes)
{
	const char *site = __func__;
	const int32_t days[] = { D_2026_03_28, D_2026_03_29, D_2026_03_30,
				 D_2026_10_24, D_2026_10_25, D_2026_10_26 };
	unsigned occ;

	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		ck_assert_int_eq(RESERVE(.site = site, .day = days[i], .person = "alice",
					 .capacity = 1),
				 RG_LEDGER_ADMITTED);
		ck_assert_uint_eq(occ, 1);
		ck_assert_int_eq(RESERVE(.site = site, .day = days[i], .person = "bob",
					 .capacity = 1),
				 RG_LEDGER_FULL);
	}
	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++)
		ck_assert_uint_eq(count_of(site, days[i]), 1);
	ck_assert_uint_eq(count_of(site, D_2026_03_28 - 1), 0);
}
END_TEST

START_TEST(test_dry_run_writes_nothing)
{
	const char *site = __func__;
	unsigned occ;
	char *t0, *t1;

	t0 = write_token(site);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 1,
				 .dry_run = true),
			 RG_LEDGER_WOULD_ADMIT);
	ck_assert_uint_eq(occ, 0);
	t1 = write_token(site);
	ck_assert_str_eq(t0, t1);
	free(t1);
	ck_assert_uint_eq(count_of(site, DAY), 0);

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_ADMITTED);
	free(t0);
	t0 = write_token(site);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 1,
				 .dry_run = true),
			 RG_LEDGER_REENTRY);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 1,
				 .dry_run = true),
			 RG_LEDGER_FULL);
	ck_assert_uint_eq(occ, 1);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 2,
				 .dry_run = true),
			 RG_LEDGER_WOULD_ADMIT);
	t1 = write_token(site);
	ck_assert_str_eq(t0, t1);
	ck_assert_uint_eq(count_of(site, DAY), 1);
	free(t0);
	free(t1);
}
END_TEST

START_TEST(test_prune_removes_old_days_and_keeps_recent_ones)
{
	const char *site = __func__;
	char other[128];
	unsigned occ;
	long n;

	snprintf(other, sizeof(other), "%s-annex", site);
	const int32_t days[] = { 20000, 20200, 20298, 20299, 20300 };
	for (size_t i = 0; i < 5; i++)
		ck_assert_int_eq(RESERVE(.site = site, .day = days[i], .person = "alice",
					 .capacity = 5),
				 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = other, .day = 20100, .person = "bob", .capacity = 5),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = other, .day = 20300, .person = "bob", .capacity = 5),
			 RG_LEDGER_ADMITTED);

	/* today 20300, keep 2 days: everything before 20298 goes, for every site */
	n = rg_ledger_prune(L, 20300, 2, err, sizeof(err));
	ck_assert_msg(n >= 0, "prune: %s", err);
	if (!is_ldap)
		ck_assert_int_eq(n, 3);
	ck_assert_uint_eq(count_of(site, 20000), 0);
	ck_assert_uint_eq(count_of(site, 20200), 0);
	ck_assert_uint_eq(count_of(other, 20100), 0);
	ck_assert_uint_eq(count_of(site, 20298), 1);
	ck_assert_uint_eq(count_of(site, 20299), 1);
	ck_assert_uint_eq(count_of(site, 20300), 1);
	ck_assert_uint_eq(count_of(other, 20300), 1);
	/* a pruned day's admissions are gone too: alice is new again */
	ck_assert_int_eq(RESERVE(.site = site, .day = 20200, .person = "alice", .capacity = 5),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(occ, 1);
	/* nothing more to remove */
	n = rg_ledger_prune(L, 20300, 400, err, sizeof(err));
	ck_assert_msg(n >= 0, "prune: %s", err);
	if (!is_ldap)
		ck_assert_int_eq(n, 0);
}
END_TEST

START_TEST(test_day_lists_first_entries_in_time_order)
{
	const char *site = __func__;
	int64_t t0 = (int64_t)DAY * 86400 + 7 * 3600;
	unsigned occ;
	struct rg_day_summary s;

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "carol", .capacity = 9,
				 .when = t0 + 7200, .door = "side-gate"),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 9,
				 .when = t0, .exempt = true),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "bob", .capacity = 9,
				 .when = t0 + 1800, .rule = "team-b"),
			 RG_LEDGER_ADMITTED);
	/* a later re-entry through another door does not change the first entry */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 9,
				 .when = t0 + 9000, .door = "side-gate"),
			 RG_LEDGER_REENTRY);

	s = day_of(site, DAY, false);
	ck_assert_uint_eq(s.count, 3);
	ck_assert_uint_eq(s.nadmissions, 0);
	rg_day_summary_clear(&s);

	s = day_of(site, DAY, true);
	ck_assert_uint_eq(s.count, 3);
	ck_assert_uint_eq(s.exempt_count, 1);
	ck_assert_uint_eq(s.nadmissions, 3);
	ck_assert_str_eq(s.admissions[0].person, "alice");
	ck_assert_int_eq(s.admissions[0].when, t0);
	ck_assert_str_eq(s.admissions[0].door, "main-entrance");
	ck_assert_str_eq(s.admissions[0].rule, "estates");
	ck_assert(s.admissions[0].exempt);
	ck_assert_str_eq(s.admissions[1].person, "bob");
	ck_assert_str_eq(s.admissions[1].rule, "team-b");
	ck_assert(!s.admissions[1].exempt);
	ck_assert_str_eq(s.admissions[2].person, "carol");
	ck_assert_str_eq(s.admissions[2].door, "side-gate");
	ck_assert_int_eq(s.admissions[2].when, t0 + 7200);
	rg_day_summary_clear(&s);
}
END_TEST

START_TEST(test_sites_are_counted_separately)
{
	char a[128], b[128];
	unsigned occ;

	snprintf(a, sizeof(a), "%s-hq", __func__);
	snprintf(b, sizeof(b), "%s-lab", __func__);
	ck_assert_int_eq(RESERVE(.site = a, .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = b, .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = b, .day = DAY, .person = "bob", .capacity = 1),
			 RG_LEDGER_FULL);
	ck_assert_uint_eq(count_of(a, DAY), 1);
	ck_assert_uint_eq(count_of(b, DAY), 1);
}
END_TEST

START_TEST(test_unusual_names_round_trip)
{
	char site[160];
	const char *person = "o'brien|x%41 \\*)(uid=*";
	const char *door = "door|1%2=,+\"";
	unsigned occ;
	struct rg_day_summary s;

	snprintf(site, sizeof(site), "%s,ou=x+cn=\"y\"\\ #", __func__);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = person, .capacity = 2,
				 .door = door),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = person, .capacity = 2),
			 RG_LEDGER_REENTRY);
	/* a person whose name only differs by case or spacing is somebody else */
	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "O'BRIEN|x%41 \\*)(uid=*",
				 .capacity = 2),
			 RG_LEDGER_ADMITTED);
	s = day_of(site, DAY, true);
	ck_assert_uint_eq(s.count, 2);
	ck_assert_uint_eq(s.nadmissions, 2);
	bool seen = false;
	for (size_t i = 0; i < s.nadmissions; i++) {
		if (strcmp(s.admissions[i].person, person) == 0) {
			ck_assert_str_eq(s.admissions[i].door, door);
			seen = true;
		}
	}
	ck_assert(seen);
	rg_day_summary_clear(&s);
}
END_TEST

START_TEST(test_incomplete_reservation_fails_closed)
{
	struct rg_reservation r = { .site = "hq", .day = DAY, .person = NULL, .capacity = 5 };
	unsigned occ = 7;

	ck_assert_int_eq(rg_ledger_reserve(L, &r, &occ, err, sizeof(err)), RG_LEDGER_FAILED);
	ck_assert(strlen(err) > 0);
	r.person = "alice";
	r.site = "";
	ck_assert_int_eq(rg_ledger_reserve(L, &r, &occ, err, sizeof(err)), RG_LEDGER_FAILED);
	ck_assert_int_eq(rg_ledger_reserve(NULL, &r, &occ, err, sizeof(err)), RG_LEDGER_FAILED);
}
END_TEST

START_TEST(test_unreachable_directory_fails_closed)
{
	struct lt_backend b = { .backend = "ldap", .uri = "ldap://127.0.0.1:1",
				.base = "ou=occupancy,dc=example,dc=org" };
	struct rg_ledger *l;
	struct rg_reservation r = { .site = "hq", .day = DAY, .person = "alice", .capacity = 5 };
	unsigned occ;

	open_ledger(&l, &b);
	ck_assert_int_eq(rg_ledger_reserve(l, &r, &occ, err, sizeof(err)), RG_LEDGER_FAILED);
	ck_assert_msg(strlen(err) > 0, "no message");
	rg_ledger_close(l);
}
END_TEST

START_TEST(test_ledger_limit_applies_the_rules_reserved_places_rule)
{
	/* the ledger's atomic check must be exactly the rule rules.h states */
	for (unsigned cap = 0; cap <= 6; cap++)
		for (unsigned res = 0; res <= 7; res++)
			for (unsigned count = 0; count <= 8; count++)
				for (int ex = 0; ex <= 1; ex++)
					ck_assert_msg((count < rg_rules_place_limit(cap, res, ex)) ==
						      rg_rules_place_available(count, cap, res, ex),
						      "count %u cap %u reserved %u exempt %d", count,
						      cap, res, ex);
}
END_TEST

/* ---- LMDB only ---- */

START_TEST(test_lmdb_files_are_private)
{
	char *d = lt_tempdir("rg-ledger-modes"), path[4096];
	struct lt_backend b = { .backend = "lmdb" };
	struct rg_ledger *l;
	struct stat st;
	mode_t old = umask(0);

	snprintf(path, sizeof(path), "%s/var/lib/rotagate", d);
	b.path = path;
	open_ledger(&l, &b);
	umask(old);
	snprintf(path, sizeof(path), "%s/var/lib/rotagate/ledger", d);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	snprintf(path, sizeof(path), "%s/var/lib/rotagate/ledger/data.mdb", d);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/var/lib/rotagate/ledger/lock.mdb", d);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	rg_ledger_close(l);
	lt_rmtree(d);
	free(d);
}
END_TEST

START_TEST(test_lmdb_full_map_says_to_raise_map_size)
{
	char *d = lt_tempdir("rg-ledger-small"), door[4001], name[32];
	struct lt_backend b = { .backend = "lmdb", .path = d, .map_size = 256 * 1024 };
	struct rg_ledger *l;
	unsigned occ;
	enum rg_ledger_result res = RG_LEDGER_ADMITTED;
	int i;

	memset(door, 'd', sizeof(door) - 1);
	door[sizeof(door) - 1] = 0;
	open_ledger(&l, &b);
	for (i = 0; i < 1000 && res == RG_LEDGER_ADMITTED; i++) {
		struct rg_reservation r = { .site = "hq", .day = DAY, .person = name,
					    .door = door, .rule = door, .capacity = 100000 };

		snprintf(name, sizeof(name), "p%d", i);
		err[0] = 0;
		res = rg_ledger_reserve(l, &r, &occ, err, sizeof(err));
	}
	ck_assert_int_eq(res, RG_LEDGER_FAILED);
	ck_assert_msg(strstr(err, "ledger.map-size") != NULL, "message: %s", err);
	/* what was admitted before is still there and readable */
	struct rg_day_summary s;
	ck_assert_int_eq(rg_ledger_day(l, "hq", DAY, false, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.count, (unsigned)(i - 1));
	rg_ledger_close(l);
	lt_rmtree(d);
	free(d);
}
END_TEST

START_TEST(test_lmdb_two_handles_in_one_process_share_the_ledger)
{
	struct rg_ledger *l2;
	unsigned occ;

	open_ledger(&l2, &B);
	ck_assert_int_eq(RESERVE(.site = "hq", .day = DAY, .person = "alice", .capacity = 1),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(reserve_on(l2, (struct swipe){ .site = "hq", .day = DAY,
							.person = "alice", .capacity = 1 },
				    &occ),
			 RG_LEDGER_REENTRY);
	rg_ledger_close(l2);
	/* closing one handle leaves the other working */
	ck_assert_int_eq(RESERVE(.site = "hq", .day = DAY, .person = "bob", .capacity = 1),
			 RG_LEDGER_FULL);
}
END_TEST

START_TEST(test_lmdb_old_days_are_pruned_on_use)
{
	struct rg_ledger *l;
	struct lt_backend b = B;
	unsigned occ;

	b.retain_days = 10;
	open_ledger(&l, &b);
	/* days long past on any clock: the swipe's own day is "today" */
	ck_assert_int_eq(reserve_on(l, (struct swipe){ .site = "hq", .day = 20000,
						       .person = "alice", .capacity = 5 }, &occ),
			 RG_LEDGER_ADMITTED);
	ck_assert_int_eq(reserve_on(l, (struct swipe){ .site = "hq", .day = 20010,
						       .person = "alice", .capacity = 5 }, &occ),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(count_of("hq", 20000), 1); /* exactly retain-days old: kept */
	ck_assert_int_eq(reserve_on(l, (struct swipe){ .site = "hq", .day = 20011,
						       .person = "alice", .capacity = 5 }, &occ),
			 RG_LEDGER_ADMITTED);
	ck_assert_uint_eq(count_of("hq", 20000), 0);
	ck_assert_uint_eq(count_of("hq", 20010), 1);
	ck_assert_uint_eq(count_of("hq", 20011), 1);
	rg_ledger_close(l);
}
END_TEST

/* A reservation running in its own thread, so the test can see whether it
 * finishes while another process holds LMDB's writer lock. */
struct bg_reserve {
	struct rg_ledger *l;
	struct rg_reservation r;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	enum rg_ledger_result res;
	unsigned occ;
	char err[512];
};

static void *bg_reserve_main(void *arg)
{
	struct bg_reserve *b = arg;
	enum rg_ledger_result res = rg_ledger_reserve(b->l, &b->r, &b->occ, b->err, sizeof(b->err));

	pthread_mutex_lock(&b->mu);
	b->res = res;
	b->done = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void bg_reserve_start(struct bg_reserve *b, pthread_t *t, struct rg_ledger *l,
			     const char *site, const char *person, unsigned capacity)
{
	pthread_condattr_t ca;

	memset(b, 0, sizeof(*b));
	b->l = l;
	b->r = (struct rg_reservation){ .site = site, .day = DAY, .person = person,
					.door = "main-entrance", .rule = "team-a",
					.when = (int64_t)DAY * 86400 + 8 * 3600,
					.capacity = capacity };
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	ck_assert_int_eq(pthread_create(t, NULL, bg_reserve_main, b), 0);
}

/* Has the reservation finished within `ms` milliseconds? */
static bool bg_reserve_wait(struct bg_reserve *b, long ms)
{
	struct timespec dl;
	bool done;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&b->mu);
	while (!b->done && pthread_cond_timedwait(&b->cv, &b->mu, &dl) != ETIMEDOUT)
		;
	done = b->done;
	pthread_mutex_unlock(&b->mu);
	return done;
}

static void bg_reserve_destroy(struct bg_reserve *b)
{
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
}

/* Child process: open the ledger's environment with the LMDB API, begin a
 * write transaction (taking LMDB's cross-process writer lock), report "R"
 * (or "E" + message) on `ready`, and hold it until a byte or end-of-file
 * arrives on `hold` (the test's process ending also releases it). */
_Noreturn static void lock_holder(const char *envdir, int ready, int hold)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	char msg[600] = "R", c;
	int rc;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rc = mdb_env_create(&env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(env, 4);
	if (rc == 0)
		rc = mdb_env_open(env, envdir, 0, 0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, 0, &txn);
	if (rc)
		snprintf(msg, sizeof(msg), "E%.400s: %s", envdir, mdb_strerror(rc));
	if (write(ready, msg, strlen(msg)) < 0)
		_exit(3);
	close(ready);
	if (rc)
		_exit(2);
	while (read(hold, &c, 1) < 0 && errno == EINTR)
		;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	_exit(0);
}

/* Stronger than test_reentry_writes_nothing (which compares the last
 * committed txn id, blind to a write transaction begun and aborted): while
 * another process holds LMDB's writer lock, a re-entry must still be answered
 * at once, and a new admission must wait for the lock (proving the lock is
 * really held), then succeed once it is released. */
START_TEST(test_lmdb_reentry_needs_no_write_lock)
{
	const char *site = __func__;
	char envdir[4096], msg[600] = "";
	int ready[2], hold[2], st;
	ssize_t n;
	unsigned occ;
	pid_t pid;
	pthread_t ta, tb;
	struct bg_reserve a, b;
	bool a_done, b_blocked, b_done;

	ck_assert_int_eq(RESERVE(.site = site, .day = DAY, .person = "alice", .capacity = 5),
			 RG_LEDGER_ADMITTED);
	/* plugin/ledger_lmdb.c: the environment is <ledger.path>/ledger */
	snprintf(envdir, sizeof(envdir), "%s/ledger", dir);

	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		close(hold[1]);
		lock_holder(envdir, ready[1], hold[0]);
	}
	close(ready[1]);
	close(hold[0]);
	n = read(ready[0], msg, sizeof(msg) - 1);
	close(ready[0]);
	if (n <= 0 || msg[0] != 'R') {
		close(hold[1]);
		waitpid(pid, &st, 0);
		ck_abort_msg("lock holder did not start: %s", n > 0 ? msg + 1 : "no answer");
	}

	/* The writer lock is held by the child.  Nothing below may abort the
	 * test before the lock is released and both threads are joined. */
	bg_reserve_start(&a, &ta, L, site, "alice", 5);
	a_done = bg_reserve_wait(&a, 2000);
	bg_reserve_start(&b, &tb, L, site, "bob", 5);
	b_blocked = !bg_reserve_wait(&b, 300);

	/* release: the child aborts its transaction and exits */
	close(hold[1]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	/* (were the lock still held, the check timeout would end the test) */
	b_done = bg_reserve_wait(&b, 10000);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	bg_reserve_destroy(&a);
	bg_reserve_destroy(&b);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock holder: status %d", st);
	ck_assert_msg(a_done, "re-entry waited for the writer lock: it begins a write transaction");
	ck_assert_msg(a.res == RG_LEDGER_REENTRY, "re-entry: result %d (%s)", a.res, a.err);
	ck_assert_uint_eq(a.occ, 1);
	ck_assert_msg(b_blocked, "a new admission (result %d) did not wait for the writer lock "
				 "held by another process: the lock is not effective, the check "
				 "above proves nothing", b.res);
	ck_assert_msg(b_done, "the new admission did not finish after the lock was released");
	ck_assert_msg(b.res == RG_LEDGER_ADMITTED, "new admission: result %d (%s)", b.res, b.err);
	ck_assert_uint_eq(b.occ, 2);
	ck_assert_uint_eq(count_of(site, DAY), 2);
}
END_TEST

static Suite *ledger_suite(void)
{
	Suite *s = suite_create(getenv("RG_TEST_LEDGER_BACKEND") ? getenv("RG_TEST_LEDGER_BACKEND")
								  : "lmdb");
	TCase *tc = tcase_create("ledger");
	const char *backend = getenv("RG_TEST_LEDGER_BACKEND");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_first_admission_is_stored_and_counted);
	tcase_add_test(tc, test_reentry_uses_no_place);
	tcase_add_test(tc, test_reentry_writes_nothing);
	tcase_add_test(tc, test_reserved_places_are_for_exempt_staff_only);
	tcase_add_test(tc, test_capacity_zero_admits_nobody);
	tcase_add_test(tc, test_each_day_starts_a_fresh_count_also_around_dst_changes);
	tcase_add_test(tc, test_dry_run_writes_nothing);
	tcase_add_test(tc, test_prune_removes_old_days_and_keeps_recent_ones);
	tcase_add_test(tc, test_day_lists_first_entries_in_time_order);
	tcase_add_test(tc, test_sites_are_counted_separately);
	tcase_add_test(tc, test_unusual_names_round_trip);
	tcase_add_test(tc, test_incomplete_reservation_fails_closed);
	tcase_add_test(tc, test_unreachable_directory_fails_closed);
	tcase_add_test(tc, test_ledger_limit_applies_the_rules_reserved_places_rule);
	if (!backend || strcmp(backend, "ldap") != 0) {
		tcase_add_test(tc, test_lmdb_files_are_private);
		tcase_add_test(tc, test_lmdb_full_map_says_to_raise_map_size);
		tcase_add_test(tc, test_lmdb_two_handles_in_one_process_share_the_ledger);
		tcase_add_test(tc, test_lmdb_old_days_are_pruned_on_use);
		tcase_add_test(tc, test_lmdb_reentry_needs_no_write_lock);
	}
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ledger_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
