/*
 * test_rules.c - rules.c: who may enter when, and why (not).
 *
 * Sites are built by hand (no config parsing).  Swipe times are written as
 * wall-clock strings with an explicit UTC offset, or as Unix times; the
 * process runs with TZ=Pacific/Kiritimati so the machine's zone cannot leak in.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

#define MON 0x01u
#define TUE 0x02u
#define WED 0x04u
#define THU 0x08u
#define FRI 0x10u
#define SAT 0x20u
#define SUN 0x40u
#define WEEKDAYS (MON | TUE | WED | THU | FRI)
#define ALLDAYS (WEEKDAYS | SAT | SUN)

#define G_A "cn=rota-team-a,ou=groups,dc=example,dc=org"
#define G_B "cn=rota-team-b,ou=groups,dc=example,dc=org"
#define G_T1 "cn=tri-1,ou=groups,dc=example,dc=org"
#define G_T2 "cn=tri-2,ou=groups,dc=example,dc=org"
#define G_T3 "cn=tri-3,ou=groups,dc=example,dc=org"
#define G_DAY "cn=office-hours,ou=groups,dc=example,dc=org"
#define G_LATE "cn=late,ou=groups,dc=example,dc=org"
#define G_NIGHT "cn=nights,ou=groups,dc=example,dc=org"
#define G_SUNNIGHT "cn=sunday-nights,ou=groups,dc=example,dc=org"
#define G_NIGHT_UNTIL "cn=nights-until,ou=groups,dc=example,dc=org"
#define G_NIGHT_ALT "cn=nights-alt,ou=groups,dc=example,dc=org"
#define G_SEASON "cn=season,ou=groups,dc=example,dc=org"
#define G_DST "cn=dst-sunday,ou=groups,dc=example,dc=org"
#define G_EARLY "cn=early,ou=groups,dc=example,dc=org"
#define G_EVERY "cn=everyday,ou=groups,dc=example,dc=org"
#define G_MONDAY "cn=mondays,ou=groups,dc=example,dc=org"
#define G_WKND "cn=weekend-nights,ou=groups,dc=example,dc=org"
#define G_ESTATES "cn=facilities,ou=groups,dc=example,dc=org"
#define G_ISOLATING "cn=self-isolating,ou=groups,dc=example,dc=org"
#define G_NONE "cn=canteen,ou=groups,dc=example,dc=org"

#define ALL_DAY -1, -1
#define OPEN RG_NO_DATE

static int32_t D(const char *s)
{
	int32_t day;

	ck_assert_msg(rg_cal_parse_date(s, &day) == 0, "bad date in test: %s", s);
	return day;
}

static int M(const char *hhmm)
{
	int m;

	ck_assert_msg(rg_cal_parse_hhmm(hhmm, &m) == 0, "bad time in test: %s", hhmm);
	return m;
}

/* A wall-clock time with an explicit offset, e.g. "2026-06-24 22:00+01:00". */
static int64_t T(const char *s)
{
	char err[256];
	int64_t when;

	ck_assert_msg(strlen(s) > 16 && (strchr(s + 16, '+') || strchr(s + 16, '-') || strchr(s + 16, 'Z')),
		      "test time without an explicit offset: %s", s);
	ck_assert_msg(rg_cal_parse_local("UTC", s, &when, err, sizeof(err)) == 0, "%s", err);
	return when;
}

static struct rg_rota rotas[20];
static struct rg_group_rule exempts[1], denies[1];
static int32_t closed_days[2];
static struct rg_site hq;

static struct rg_rota rota(const char *name, const char *group, unsigned days, unsigned n, unsigned m,
			   int from_min, int to_min, int32_t from, int32_t until)
{
	struct rg_rota r = {
		.name = (char *)name, .group = (char *)group, .days = days,
		.week_n = n, .week_m = m, .cycle_start = m > 1 ? D("2020-09-07") : RG_NO_DATE,
		.hours_from = from_min, .hours_to = to_min, .from = from, .until = until,
	};
	return r;
}

/* The site every table runs against; only `timezone` varies. */
static void build_site(const char *tz)
{
	size_t n = 0;

	rotas[n++] = rota("team-a", G_A, MON | WED | FRI, 1, 2, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("team-b", G_B, MON | WED | FRI, 2, 2, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("tri-1", G_T1, TUE, 1, 3, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("tri-2", G_T2, TUE, 2, 3, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("tri-3", G_T3, TUE, 3, 3, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("office-hours", G_DAY, WEEKDAYS, 1, 1, M("07:00"), M("19:00"), OPEN, OPEN);
	rotas[n++] = rota("late", G_LATE, WEEKDAYS, 1, 1, M("07:00"), M("24:00"), OPEN, OPEN);
	rotas[n++] = rota("nights", G_NIGHT, WED, 1, 1, M("22:00"), M("06:00"), OPEN, OPEN);
	rotas[n++] = rota("sunday-nights", G_SUNNIGHT, SUN, 1, 1, M("22:00"), M("06:00"), OPEN, OPEN);
	rotas[n++] = rota("nights-until", G_NIGHT_UNTIL, WED, 1, 1, M("22:00"), M("06:00"), OPEN,
			  D("2026-06-24"));
	rotas[n++] = rota("nights-alt", G_NIGHT_ALT, WED, 1, 2, M("22:00"), M("06:00"), OPEN, OPEN);
	rotas[n++] = rota("season", G_SEASON, ALLDAYS, 1, 1, ALL_DAY, D("2026-04-01"), D("2026-09-30"));
	rotas[n++] = rota("dst-sunday", G_DST, SUN, 1, 1, M("01:00"), M("03:00"), OPEN, OPEN);
	rotas[n++] = rota("early", G_EARLY, SUN, 1, 1, M("00:00"), M("02:00"), OPEN, OPEN);
	rotas[n++] = rota("everyday", G_EVERY, ALLDAYS, 1, 1, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("mondays", G_MONDAY, MON, 1, 1, ALL_DAY, OPEN, OPEN);
	rotas[n++] = rota("weekend-nights", G_WKND, FRI | SAT, 1, 1, M("22:00"), M("06:00"), OPEN, OPEN);
	ck_assert_uint_le(n, sizeof(rotas) / sizeof(rotas[0]));

	exempts[0] = (struct rg_group_rule){ .name = "estates", .group = G_ESTATES };
	denies[0] = (struct rg_group_rule){ .name = "isolating", .group = G_ISOLATING };
	closed_days[0] = D("2026-12-25");
	closed_days[1] = D("2026-12-26");

	hq = (struct rg_site){
		.name = "hq", .timezone = (char *)tz, .capacity = 10, .reserved = 2,
		.closed = closed_days, .nclosed = 2,
		.rotas = rotas, .nrotas = n,
		.exempt = exempts, .nexempt = 1,
		.deny = denies, .ndeny = 1,
	};
}

static void setup_london(void)
{
	build_site("Europe/London");
}

/* One swipe and what must come of it. */
struct swipe {
	const char *tz;         /* site zone; NULL here = Europe/London */
	const char *groups[4];  /* the person's groups, NULL-terminated */
	const char *at;         /* wall clock with explicit offset */
	enum rotagate_reason reason;
	const char *rule;       /* NULL: no rule named */
	const char *ledger_day; /* NULL: don't care */
};

static void check_swipe(const struct swipe *w)
{
	struct rg_groups g = { .names = w->groups, .n = 0 };
	struct rg_eval ev;
	char explain[ROTAGATE_EXPLAIN_MAX] = "";
	bool admissible = w->reason == ROTAGATE_R_ROTA_DAY || w->reason == ROTAGATE_R_EXEMPT;

	while (g.n < 4 && w->groups[g.n])
		g.n++;
	build_site(w->tz ? w->tz : "Europe/London");
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, T(w->at), &ev, explain, sizeof(explain)), 0);
	ck_assert_msg(ev.reason == w->reason, "%s (%s, first group %s): reason %d, want %d\n%s", w->at,
		      hq.timezone, w->groups[0] ? w->groups[0] : "-", ev.reason, w->reason, explain);
	ck_assert_msg(ev.admissible == admissible, "%s: admissible %d\n%s", w->at, ev.admissible, explain);
	ck_assert(ev.exempt == (w->reason == ROTAGATE_R_EXEMPT));
	if (w->rule) {
		ck_assert_msg(ev.rule && strcmp(ev.rule, w->rule) == 0, "%s: rule %s, want %s\n%s", w->at,
			      ev.rule ? ev.rule : "(none)", w->rule, explain);
	} else {
		ck_assert_msg(ev.rule == NULL, "%s: rule %s, want none\n%s", w->at, ev.rule, explain);
	}
	if (w->ledger_day)
		ck_assert_int_eq(ev.ledger_day, D(w->ledger_day));
	ck_assert_int_eq(ev.ledger_day, ev.local.day);
}

#define ROTA ROTAGATE_R_ROTA_DAY
#define EXEMPT ROTAGATE_R_EXEMPT
#define NOT_TODAY ROTAGATE_R_NOT_ON_ROTA_TODAY
#define OUTSIDE ROTAGATE_R_OUTSIDE_HOURS
#define CLOSED ROTAGATE_R_SITE_CLOSED
#define DENIED ROTAGATE_R_DENY_GROUP

/* ---- odd/even and 3-week cycles across ISO-53-week years */

static const struct swipe cycle_rows[] = {
	/* 2020 has an ISO week 53: W53 and 2021-W01 are both "odd" ISO weeks,
	 * yet the cycle from 2020-09-07 alternates through them */
	{ NULL, { G_A }, "2020-12-28 10:00+00:00", ROTA, "team-a", "2020-12-28" },
	{ NULL, { G_B }, "2020-12-28 10:00+00:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_A }, "2021-01-01 10:00+00:00", ROTA, "team-a", NULL },  /* Fri, still W53 */
	{ NULL, { G_A }, "2021-01-04 10:00+00:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_B }, "2021-01-04 10:00+00:00", ROTA, "team-b", NULL },
	{ NULL, { G_A }, "2021-01-11 10:00+00:00", ROTA, "team-a", NULL },
	{ NULL, { G_A }, "2020-12-29 10:00+00:00", NOT_TODAY, NULL, NULL }, /* Tuesday */
	{ NULL, { G_T2 }, "2020-12-29 10:00+00:00", ROTA, "tri-2", NULL },
	{ NULL, { G_T1 }, "2020-12-29 10:00+00:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_T3 }, "2020-12-29 10:00+00:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_T3 }, "2021-01-05 10:00+00:00", ROTA, "tri-3", NULL },
	{ NULL, { G_T1 }, "2021-01-12 10:00+00:00", ROTA, "tri-1", NULL },
	/* 2026 has an ISO week 53 too */
	{ NULL, { G_A }, "2026-12-21 10:00+00:00", ROTA, "team-a", NULL },
	{ NULL, { G_B }, "2026-12-28 10:00+00:00", ROTA, "team-b", NULL },
	{ NULL, { G_B }, "2027-01-01 10:00+00:00", ROTA, "team-b", NULL },  /* Fri, 2026-W53 */
	{ NULL, { G_A }, "2027-01-04 10:00+00:00", ROTA, "team-a", NULL },
	{ NULL, { G_B }, "2027-01-04 10:00+00:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_T3 }, "2026-12-29 10:00+00:00", ROTA, "tri-3", NULL },
	{ NULL, { G_T1 }, "2027-01-05 10:00+00:00", ROTA, "tri-1", NULL },
	{ NULL, { G_T2 }, "2027-01-12 10:00+00:00", ROTA, "tri-2", NULL },
	{ NULL, { G_T2 }, "2027-01-05 10:00+00:00", NOT_TODAY, NULL, NULL },
	/* before cycle-start: the week before week 1 is week 2 */
	{ NULL, { G_B }, "2020-09-02 10:00+01:00", ROTA, "team-b", NULL },
	{ NULL, { G_A }, "2020-09-02 10:00+01:00", NOT_TODAY, NULL, NULL },
	/* a person on both teams is on every Monday, Wednesday, Friday */
	{ NULL, { G_B, G_A }, "2021-01-04 10:00+00:00", ROTA, "team-b", NULL },
	{ NULL, { G_B, G_A }, "2021-01-11 10:00+00:00", ROTA, "team-a", NULL },
};

START_TEST(test_week_cycles_alternate_across_iso_week_53)
{
	check_swipe(&cycle_rows[_i]);
}
END_TEST

/* ---- Europe/London DST changes */

static const struct swipe dst_rows[] = {
	/* 2026-03-29: 01:00 GMT becomes 02:00 BST; local 01:30 does not exist */
	{ NULL, { G_DST }, "2026-03-29 00:59:59+00:00", OUTSIDE, "dst-sunday", "2026-03-29" },
	{ NULL, { G_DST }, "2026-03-29 01:00:00+00:00", ROTA, "dst-sunday", "2026-03-29" }, /* 02:00 BST */
	{ NULL, { G_DST }, "2026-03-29 01:30:00+00:00", ROTA, "dst-sunday", "2026-03-29" }, /* 02:30 BST */
	{ NULL, { G_EARLY }, "2026-03-29 00:59:59+00:00", ROTA, "early", "2026-03-29" },
	{ NULL, { G_EARLY }, "2026-03-29 01:00:00+00:00", OUTSIDE, "early", NULL },         /* 02:00 BST */
	{ NULL, { G_EARLY }, "2026-03-28 23:59:00+00:00", NOT_TODAY, NULL, "2026-03-28" },  /* Saturday */
	/* 2026-10-25: 02:00 BST becomes 01:00 GMT; local 01:30 happens twice,
	 * both count on Sunday at minute 90 */
	{ NULL, { G_DST }, "2026-10-25 01:30+01:00", ROTA, "dst-sunday", "2026-10-25" },
	{ NULL, { G_DST }, "2026-10-25 01:30+00:00", ROTA, "dst-sunday", "2026-10-25" },
	{ NULL, { G_DST }, "2026-10-25 00:59+01:00", OUTSIDE, "dst-sunday", "2026-10-25" },
	{ NULL, { G_DST }, "2026-10-25 02:59+00:00", ROTA, "dst-sunday", NULL },
	{ NULL, { G_DST }, "2026-10-25 03:00+00:00", OUTSIDE, "dst-sunday", NULL },
	{ NULL, { G_EARLY }, "2026-10-24 23:30+00:00", ROTA, "early", "2026-10-25" },       /* 00:30 BST Sunday */
	{ NULL, { G_EARLY }, "2026-10-25 01:59+00:00", ROTA, "early", NULL },               /* 01:59 GMT */
	{ NULL, { G_EARLY }, "2026-10-25 02:00+00:00", OUTSIDE, "early", NULL },
	/* summer: the local date, not the UTC date, is the day */
	{ NULL, { G_MONDAY }, "2026-06-28 23:30+00:00", ROTA, "mondays", "2026-06-29" },    /* 00:30 BST Mon */
	{ NULL, { G_MONDAY }, "2026-06-29 23:30+00:00", NOT_TODAY, NULL, "2026-06-30" },
};

START_TEST(test_london_dst_changes_count_on_the_local_day_and_minute)
{
	check_swipe(&dst_rows[_i]);
}
END_TEST

/* The same two 01:30s as explicit Unix times, looking at the local time the
 * rules saw. */
static const struct {
	int64_t when;
	int minute, offset;
	const char *day;
} dst_instants[] = {
	{ 1774745999, 59, 0, "2026-03-29" },    /* 2026-03-29T00:59:59Z, 00:59 GMT */
	{ 1774746000, 120, 3600, "2026-03-29" }, /* 2026-03-29T01:00:00Z, 02:00 BST */
	{ 1792888200, 90, 3600, "2026-10-25" },  /* 2026-10-25T00:30:00Z, 01:30 BST */
	{ 1792891800, 90, 0, "2026-10-25" },     /* 2026-10-25T01:30:00Z, 01:30 GMT */
};

START_TEST(test_dst_instants_localize_for_the_rules)
{
	const char *names[] = { G_DST };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;

	build_site("Europe/London");
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, dst_instants[_i].when, &ev, NULL, 0), 0);
	ck_assert_int_eq(ev.local.minute, dst_instants[_i].minute);
	ck_assert_int_eq(ev.local.utc_offset, dst_instants[_i].offset);
	ck_assert_int_eq(ev.local.weekday, 7);
	ck_assert_int_eq(ev.ledger_day, D(dst_instants[_i].day));
}
END_TEST

/* ---- night shifts */

static const struct swipe night_rows[] = {
	/* Wednesday 22:00 to Thursday 06:00 (BST) */
	{ NULL, { G_NIGHT }, "2026-06-24 21:59+01:00", OUTSIDE, "nights", NULL },
	{ NULL, { G_NIGHT }, "2026-06-24 22:00+01:00", ROTA, "nights", "2026-06-24" },
	{ NULL, { G_NIGHT }, "2026-06-24 23:59+01:00", ROTA, "nights", "2026-06-24" },
	{ NULL, { G_NIGHT }, "2026-06-25 00:00+01:00", ROTA, "nights", "2026-06-25" },
	{ NULL, { G_NIGHT }, "2026-06-25 02:00+01:00", ROTA, "nights", "2026-06-25" }, /* Thu: not a rota day */
	{ NULL, { G_NIGHT }, "2026-06-25 05:59+01:00", ROTA, "nights", NULL },
	{ NULL, { G_NIGHT }, "2026-06-25 06:00+01:00", OUTSIDE, "nights", NULL },
	{ NULL, { G_NIGHT }, "2026-06-25 22:30+01:00", OUTSIDE, "nights", NULL },     /* Thu has no shift of its own */
	{ NULL, { G_NIGHT }, "2026-06-24 02:00+01:00", OUTSIDE, "nights", NULL },     /* Tue was not a rota day */
	{ NULL, { G_NIGHT }, "2026-06-23 23:00+01:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_NIGHT }, "2026-06-26 02:00+01:00", NOT_TODAY, NULL, NULL },       /* Fri after Thu */
	/* Sunday night into Monday: the weekday wraps from 7 to 1 */
	{ NULL, { G_SUNNIGHT }, "2026-06-28 23:00+01:00", ROTA, "sunday-nights", "2026-06-28" },
	{ NULL, { G_SUNNIGHT }, "2026-06-29 03:00+01:00", ROTA, "sunday-nights", "2026-06-29" },
	{ NULL, { G_SUNNIGHT }, "2026-06-29 06:00+01:00", OUTSIDE, "sunday-nights", NULL },
	{ NULL, { G_SUNNIGHT }, "2026-06-28 03:00+01:00", OUTSIDE, "sunday-nights", NULL }, /* Sat was not */
	{ NULL, { G_SUNNIGHT }, "2026-06-27 23:00+01:00", NOT_TODAY, NULL, NULL },
	/* the start day's validity window decides, not the morning's */
	{ NULL, { G_NIGHT_UNTIL }, "2026-06-25 02:00+01:00", ROTA, "nights-until", "2026-06-25" },
	{ NULL, { G_NIGHT_UNTIL }, "2026-07-01 23:00+01:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_NIGHT_UNTIL }, "2026-07-02 02:00+01:00", NOT_TODAY, NULL, NULL },
	/* ...and the start day's week of the cycle */
	{ NULL, { G_NIGHT_ALT }, "2026-06-25 02:00+01:00", ROTA, "nights-alt", NULL }, /* Wed 24th: week 1 */
	{ NULL, { G_NIGHT_ALT }, "2026-06-18 02:00+01:00", NOT_TODAY, NULL, NULL },    /* Wed 17th: week 2 */
	{ NULL, { G_NIGHT_ALT }, "2026-06-17 23:00+01:00", NOT_TODAY, NULL, NULL },
};

START_TEST(test_night_shift_runs_from_a_rota_day_into_the_next_morning)
{
	check_swipe(&night_rows[_i]);
}
END_TEST

/* ---- hours: outside-hours vs not-on-rota-today */

static const struct swipe hours_rows[] = {
	{ NULL, { G_DAY }, "2026-06-22 06:59+01:00", OUTSIDE, "office-hours", NULL },
	{ NULL, { G_DAY }, "2026-06-22 07:00+01:00", ROTA, "office-hours", NULL },
	{ NULL, { G_DAY }, "2026-06-22 18:59+01:00", ROTA, "office-hours", NULL },
	{ NULL, { G_DAY }, "2026-06-22 19:00+01:00", OUTSIDE, "office-hours", NULL }, /* end is exclusive */
	{ NULL, { G_DAY }, "2026-06-27 10:00+01:00", NOT_TODAY, NULL, NULL },         /* Saturday */
	{ NULL, { G_LATE }, "2026-06-22 23:59+01:00", ROTA, "late", NULL },           /* 07:00-24:00 */
	{ NULL, { G_LATE }, "2026-06-23 00:30+01:00", OUTSIDE, "late", NULL },
	{ NULL, { 0 }, "2026-06-22 10:00+01:00", NOT_TODAY, NULL, NULL },             /* in no group */
	{ NULL, { G_NONE }, "2026-06-22 10:00+01:00", NOT_TODAY, NULL, NULL },        /* unrelated group */
	/* outside one rota's hours, but another matches: admitted */
	{ NULL, { G_DAY, G_MONDAY }, "2026-06-22 20:00+01:00", ROTA, "mondays", NULL },
	/* outside hours of one, not the day of another: outside-hours wins */
	{ NULL, { G_DAY, G_DST }, "2026-06-22 20:00+01:00", OUTSIDE, "office-hours", NULL },
};

START_TEST(test_outside_hours_only_when_today_has_rota_hours)
{
	check_swipe(&hours_rows[_i]);
}
END_TEST

/* ---- validity windows */

static const struct swipe window_rows[] = {
	{ NULL, { G_SEASON }, "2026-03-31 23:59+01:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_SEASON }, "2026-04-01 00:00+01:00", ROTA, "season", NULL },       /* from is inclusive */
	{ NULL, { G_SEASON }, "2026-03-31 23:30+00:00", ROTA, "season", "2026-04-01" }, /* 00:30 BST */
	{ NULL, { G_SEASON }, "2026-09-30 23:59+01:00", ROTA, "season", NULL },       /* until is inclusive */
	{ NULL, { G_SEASON }, "2026-10-01 00:00+01:00", NOT_TODAY, NULL, NULL },
	{ NULL, { G_SEASON }, "2025-06-01 12:00+01:00", NOT_TODAY, NULL, NULL },
};

START_TEST(test_validity_window_ends_are_inclusive_local_dates)
{
	check_swipe(&window_rows[_i]);
}
END_TEST

/* ---- closures, exemption, deny groups */

static const struct swipe precedence_rows[] = {
	/* closed days: only exempt staff */
	{ NULL, { G_EVERY }, "2026-12-25 10:00+00:00", CLOSED, NULL, "2026-12-25" },
	{ NULL, { G_EVERY }, "2026-12-26 23:59+00:00", CLOSED, NULL, NULL },
	{ NULL, { G_EVERY }, "2026-12-24 23:59+00:00", ROTA, "everyday", NULL },
	{ NULL, { G_EVERY }, "2026-12-27 00:00+00:00", ROTA, "everyday", NULL },
	{ NULL, { 0 }, "2026-12-25 10:00+00:00", CLOSED, NULL, NULL },
	{ NULL, { G_ESTATES }, "2026-12-25 10:00+00:00", EXEMPT, "estates", "2026-12-25" },
	{ NULL, { G_EVERY, G_ESTATES }, "2026-12-25 03:00+00:00", EXEMPT, "estates", NULL },
	/* Sydney: 2026-12-24T14:00Z is already the 25th there */
	{ "Australia/Sydney", { G_EVERY }, "2026-12-24 14:00+00:00", CLOSED, NULL, "2026-12-25" },
	/* exempt: any day, any hour, ahead of the rota */
	{ NULL, { G_ESTATES }, "2026-06-28 03:00+01:00", EXEMPT, "estates", NULL },
	{ NULL, { G_A, G_ESTATES }, "2021-01-04 10:00+00:00", EXEMPT, "estates", NULL },
	/* deny beats exempt, rota and closure */
	{ NULL, { G_A, G_ESTATES, G_ISOLATING }, "2020-12-28 10:00+00:00", DENIED, "isolating", NULL },
	{ NULL, { G_ISOLATING, G_A }, "2020-12-28 10:00+00:00", DENIED, "isolating", NULL },
	{ NULL, { G_ESTATES, G_ISOLATING }, "2026-12-25 10:00+00:00", DENIED, "isolating", NULL },
	{ NULL, { G_ISOLATING }, "2026-06-28 03:00+01:00", DENIED, "isolating", NULL },
	/* DNs from the directory compare case- and space-insensitively */
	{ NULL, { "CN=Self-Isolating, OU=Groups, DC=Example, DC=Org" }, "2026-06-22 10:00+01:00", DENIED,
	  "isolating", NULL },
	{ NULL, { " cn = facilities ,ou=groups,dc=example,dc=org " }, "2026-06-22 10:00+01:00", EXEMPT,
	  "estates", NULL },
	{ NULL, { "cn=self-isolating,ou=groups,dc=example,dc=com" }, "2026-06-22 10:00+01:00", NOT_TODAY,
	  NULL, NULL },
};

/* a closure covers the whole night shift that starts on the closed day
 * (2026-12-25 and 26 are closed; the shift of Sat 19 is an ordinary one) */
static const struct swipe closed_night_rows[] = {
	{ NULL, { G_WKND }, "2026-12-20 01:00+00:00", ROTA, "weekend-nights", "2026-12-20" },
	{ NULL, { G_WKND }, "2026-12-26 23:00+00:00", CLOSED, NULL, NULL },
	{ NULL, { G_WKND }, "2026-12-27 01:00+00:00", NOT_TODAY, NULL, "2026-12-27" },
	{ NULL, { G_WKND, G_ESTATES }, "2026-12-27 01:00+00:00", EXEMPT, "estates", NULL },
};

START_TEST(test_night_shift_starting_on_a_closed_day_is_closed_after_midnight_too)
{
	check_swipe(&closed_night_rows[_i]);
}
END_TEST

START_TEST(test_deny_beats_exempt_beats_closure_beats_rota)
{
	check_swipe(&precedence_rows[_i]);
}
END_TEST

/* ---- the site's zone is honoured */

static const struct swipe zone_rows[] = {
	/* one instant, 2026-06-28T14:30Z: Monday 00:30 in Sydney, Sunday elsewhere */
	{ "Australia/Sydney", { G_MONDAY }, "2026-06-28 14:30+00:00", ROTA, "mondays", "2026-06-29" },
	{ "Europe/London", { G_MONDAY }, "2026-06-28 14:30+00:00", NOT_TODAY, NULL, "2026-06-28" },
	{ "America/New_York", { G_MONDAY }, "2026-06-28 14:30+00:00", NOT_TODAY, NULL, "2026-06-28" },
	/* 2026-06-29T03:30Z: Monday in London, still Sunday 23:30 in New York */
	{ "Europe/London", { G_MONDAY }, "2026-06-29 03:30+00:00", ROTA, "mondays", "2026-06-29" },
	{ "America/New_York", { G_MONDAY }, "2026-06-29 03:30+00:00", NOT_TODAY, NULL, "2026-06-28" },
	/* office hours are local: 12:00Z is 08:00 in New York, 22:00 in Sydney */
	{ "America/New_York", { G_DAY }, "2026-06-22 12:00+00:00", ROTA, "office-hours", NULL },
	{ "Australia/Sydney", { G_DAY }, "2026-06-22 12:00+00:00", OUTSIDE, "office-hours", NULL },
	{ "UTC", { G_DAY }, "2026-06-22 06:30+00:00", OUTSIDE, "office-hours", NULL },
};

START_TEST(test_site_time_zone_decides_day_and_hours)
{
	check_swipe(&zone_rows[_i]);
}
END_TEST

/* NULL timezone = the system's local zone; set explicitly here. */
START_TEST(test_site_without_zone_follows_local_time)
{
	const char *names[] = { G_MONDAY };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;
	char explain[1024] = "";
	int64_t when = T("2026-06-28 14:30+00:00");

	build_site(NULL);
	setenv("TZ", "Australia/Sydney", 1);
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, when, &ev, explain, sizeof(explain)), 0);
	ck_assert_int_eq(ev.reason, ROTAGATE_R_ROTA_DAY);
	ck_assert_msg(strstr(explain, "local time (Australia/Sydney) (UTC+10:00), Monday"), "%s", explain);

	setenv("TZ", "America/New_York", 1);
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, when, &ev, NULL, 0), 0);
	ck_assert_int_eq(ev.reason, ROTAGATE_R_NOT_ON_ROTA_TODAY);
	setenv("TZ", "Pacific/Kiritimati", 1);
}
END_TEST

START_TEST(test_unknown_site_zone_is_an_error_not_a_grant)
{
	const char *names[] = { G_ESTATES };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;
	char explain[256] = "";

	build_site("Europe/Londn");
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, T("2026-06-22 10:00+01:00"), &ev, explain,
					   sizeof(explain)), -1);
	ck_assert(!ev.admissible);
	ck_assert_int_eq(ev.reason, ROTAGATE_R_CONFIG_ERROR);
	ck_assert_msg(strstr(explain, "unknown time zone 'Europe/Londn'"), "%s", explain);
}
END_TEST

START_TEST(test_time_beyond_year_9999_is_bad_input_not_a_grant)
{
	const char *names[] = { G_ESTATES };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;

	build_site("Europe/London");
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, INT64_MAX, &ev, NULL, 0), -1);
	ck_assert(!ev.admissible);
	ck_assert_int_eq(ev.reason, ROTAGATE_R_BAD_INPUT);
}
END_TEST

/* ---- reserved places */

static const struct {
	unsigned count, capacity, reserved;
	bool exempt, available;
} place_rows[] = {
	{ 0, 10, 2, false, true },
	{ 7, 10, 2, false, true },   /* the 8th non-exempt person */
	{ 8, 10, 2, false, false },  /* the 9th is refused: 2 places are kept */
	{ 9, 10, 2, false, false },
	{ 8, 10, 2, true, true },    /* exempt staff take the kept places */
	{ 9, 10, 2, true, true },
	{ 10, 10, 2, true, false },  /* but not beyond capacity */
	{ 0, 10, 0, false, true },
	{ 9, 10, 0, false, true },
	{ 10, 10, 0, false, false },
	{ 0, 2, 2, false, false },   /* everything reserved */
	{ 0, 2, 5, false, false },   /* nonsense reserved > capacity never wraps */
	{ 1, 2, 5, true, true },
	{ 0, 0, 0, true, false },
};

START_TEST(test_reserved_places_are_for_exempt_staff_only)
{
	ck_assert_msg(rg_rules_place_available(place_rows[_i].count, place_rows[_i].capacity,
					       place_rows[_i].reserved, place_rows[_i].exempt) ==
			      place_rows[_i].available,
		      "count %u capacity %u reserved %u exempt %d", place_rows[_i].count,
		      place_rows[_i].capacity, place_rows[_i].reserved, place_rows[_i].exempt);
}
END_TEST

START_TEST(test_capacity_10_reserved_2_admits_8_then_only_2_exempt)
{
	unsigned count = 0, refused = 0;

	for (int person = 0; person < 9; person++) {
		if (rg_rules_place_available(count, 10, 2, false))
			count++;
		else
			refused++;
	}
	ck_assert_uint_eq(count, 8);
	ck_assert_uint_eq(refused, 1);
	for (int person = 0; person < 3; person++)
		if (rg_rules_place_available(count, 10, 2, true))
			count++;
	ck_assert_uint_eq(count, 10);
}
END_TEST

/* ---- group names */

static const struct {
	const char *a, *b;
	bool equal;
} group_rows[] = {
	{ "cn=rota-a,ou=groups,dc=example,dc=org", "CN=Rota-A,OU=Groups,DC=Example,DC=Org", true },
	{ "cn=rota-a,ou=groups,dc=example,dc=org", "cn=rota-a, ou=groups, dc=example, dc=org", true },
	{ "cn=rota-a,ou=groups", "  cn = rota-a ,  ou = groups  ", true },
	{ "cn=a+uid=b,ou=g", "cn=a + uid=b,ou=g", true },
	{ "cn=rota team a,ou=g", "cn=Rota Team A,ou=g", true },
	{ "cn=rota team a,ou=g", "cn=rotateama,ou=g", false },
	{ "cn=rota-a,ou=groups", "cn=rota-b,ou=groups", false },
	{ "cn=rota-a,ou=groups", "cn=rota-a,ou=groups,dc=org", false },
	{ "cn=Smith\\, John,ou=g", "cn=smith\\, john,ou=g", true },
	{ "cn=Smith\\, John,ou=g", "cn=smith\\,john,ou=g", false }, /* escaped comma: space is data */
	{ "cn=a\\ ,ou=g", "cn=a,ou=g", false },                    /* escaped trailing space */
	{ "Rota-Team-A", "rota-team-a", true },                    /* memberUid-style names */
	{ "rota-team-a", "rota-team-ab", false },
	{ "", "", true },
	{ "", "cn=a", false },
};

START_TEST(test_group_names_compare_like_the_directory_does)
{
	const char *names[] = { group_rows[_i].a };
	struct rg_groups g = { names, 1 };

	ck_assert_msg(rg_groups_contains(&g, group_rows[_i].b) == group_rows[_i].equal, "'%s' vs '%s'",
		      group_rows[_i].a, group_rows[_i].b);
	names[0] = group_rows[_i].b;
	ck_assert(rg_groups_contains(&g, group_rows[_i].a) == group_rows[_i].equal);
}
END_TEST

START_TEST(test_group_canon_form_and_truncation)
{
	char out[64], tiny[6];
	struct rg_groups empty = { NULL, 0 };

	ck_assert_int_eq(rg_group_canon(" CN=Rota A , OU=Groups ,DC=Example ", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "cn=rota a,ou=groups,dc=example");
	memset(tiny, 'x', sizeof(tiny));
	ck_assert_int_eq(rg_group_canon("cn=rota-a", tiny, sizeof(tiny)), -1);
	ck_assert_str_eq(tiny, "cn=ro");
	ck_assert(!rg_groups_contains(&empty, "cn=a"));
	ck_assert(!rg_groups_contains(NULL, "cn=a"));
}
END_TEST

/* ---- explanations */

static const struct {
	const char *group, *at, *tz;
	const char *lines[4]; /* each must appear */
} explain_rows[] = {
	{ G_A, "2026-03-25 09:15+00:00", "Europe/London",
	  { "2026-03-25 09:15 Europe/London (UTC+00:00), Wednesday, ISO week 2026-W13",
	    "deny 'isolating': not a member\n",
	    "rota 'team-a': member; Wednesday is a rota day; week 2 of 2 (cycle from 2020-09-07) "
	    "is not week 1 -> no match\n",
	    "result: DENY not-on-rota-today\n" } },
	{ G_A, "2026-10-25 01:30+00:00", "Europe/London",
	  { "2026-10-25 01:30 Europe/London (UTC+00:00), Sunday, ISO week 2026-W43",
	    "rota 'team-a': member; Sunday is not a rota day (mon, wed, fri); week 2 of 2 "
	    "(cycle from 2020-09-07) is not week 1 -> no match\n",
	    "rota 'team-b': not a member of " G_B "\n" } },
	{ G_EVERY, "2026-12-25 10:00+00:00", "Europe/London",
	  { "site closed on 2026-12-25\n", "result: DENY site-closed\n" } },
	{ G_ESTATES, "2026-12-25 10:00+00:00", "Europe/London",
	  { "exempt 'estates': member", "site closed on 2026-12-25, but exempt staff may enter",
	    "result: admissible (exempt, rule 'estates'), counts on 2026-12-25" } },
	{ G_ISOLATING, "2026-06-22 10:00+01:00", "Europe/London",
	  { "deny 'isolating': member", "result: DENY deny-group (rule 'isolating')" } },
	{ G_DAY, "2026-06-22 19:30+01:00", "Europe/London",
	  { "Monday is a rota day; 19:30 is outside 07:00-19:00 -> outside hours",
	    "site open on 2026-06-22 (not one of its 2 closed days)",
	    "result: DENY outside-hours (rule 'office-hours')" } },
	{ G_NIGHT, "2026-06-25 02:00+01:00", "Europe/London",
	  { "rota 'nights': member; night shift 22:00-06:00; Thursday is not a rota day (wed); "
	    "02:00 belongs to the shift from Wednesday 2026-06-24: Wednesday is a rota day; "
	    "it runs until 06:00 -> match",
	    "result: admissible (rota-day, rule 'nights'), counts on 2026-06-25" } },
	{ G_SEASON, "2026-10-01 12:00+01:00", "Europe/London",
	  { "2026-10-01 is after the rota ended on 2026-09-30 -> no match" } },
	{ G_SEASON, "2026-03-31 12:00+01:00", "Europe/London",
	  { "2026-03-31 is before the rota starts on 2026-04-01 -> no match" } },
	{ G_NIGHT_UNTIL, "2026-06-24 23:00+01:00", "Europe/London",
	  { "2026-06-24 is on or before the rota's end 2026-06-24; 23:00 is within the shift" } },
	{ G_SEASON, "2026-06-01 12:00+01:00", "Europe/London",
	  { "2026-06-01 is within the rota's dates 2026-04-01 to 2026-09-30; all day -> match" } },
	{ G_MONDAY, "2026-06-28 14:30+00:00", "Australia/Sydney",
	  { "2026-06-29 00:30 Australia/Sydney (UTC+10:00), Monday, ISO week 2026-W27" } },
};

START_TEST(test_explain_says_why_for_each_rule)
{
	const char *names[] = { explain_rows[_i].group };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;
	char explain[ROTAGATE_EXPLAIN_MAX] = "";

	build_site(explain_rows[_i].tz);
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, T(explain_rows[_i].at), &ev, explain, sizeof(explain)), 0);
	for (int k = 0; k < 4 && explain_rows[_i].lines[k]; k++)
		ck_assert_msg(strstr(explain, explain_rows[_i].lines[k]), "missing '%s' in:\n%s",
			      explain_rows[_i].lines[k], explain);
}
END_TEST

START_TEST(test_explain_never_overflows_and_appends)
{
	const char *names[] = { G_NIGHT };
	struct rg_groups g = { names, 1 };
	struct rg_eval ev;
	char buf[64 + 8];
	int64_t when = T("2026-06-25 02:00+01:00");

	build_site("Europe/London");
	for (size_t len = 1; len <= 64; len++) {
		memset(buf, '#', sizeof(buf));
		buf[0] = '\0';
		ck_assert_int_eq(rg_rules_evaluate(&hq, &g, when, &ev, buf, len), 0);
		ck_assert_int_eq(ev.reason, ROTAGATE_R_ROTA_DAY); /* the verdict does not depend on the buffer */
		ck_assert_uint_lt(strlen(buf), len);
		for (size_t k = len; k < sizeof(buf); k++)
			ck_assert_int_eq(buf[k], '#');
		if (len >= 4)
			ck_assert_str_eq(buf + strlen(buf) - 3, "...");
	}

	strcpy(buf, "person alice\n");
	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, when, &ev, buf, sizeof(buf)), 0);
	ck_assert(strncmp(buf, "person alice\n2026-06-25 02:00 Europe/London", 43) == 0);

	ck_assert_int_eq(rg_rules_evaluate(&hq, &g, when, &ev, NULL, 100), 0);
	ck_assert_int_eq(ev.reason, ROTAGATE_R_ROTA_DAY);
}
END_TEST

START_TEST(test_rota_matches_alone_with_small_why_buffer)
{
	struct rg_localtime lt;
	char why[16];

	build_site("Europe/London");
	ck_assert_int_eq(rg_cal_localize("Europe/London", T("2026-06-25 02:00+01:00"), &lt), 0);
	ck_assert_int_eq(rg_rota_matches(&rotas[7], &lt, why, sizeof(why)), ROTAGATE_R_ROTA_DAY);
	ck_assert_str_eq(why, "night shift ...");
	ck_assert_int_eq(rg_rota_matches(&rotas[7], &lt, NULL, 0), ROTAGATE_R_ROTA_DAY);
	ck_assert_int_eq(rg_rota_matches(&rotas[0], &lt, NULL, 0), ROTAGATE_R_NOT_ON_ROTA_TODAY);
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *rules_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rota");

	tcase_add_checked_fixture(tc, setup_london, NULL);
	tcase_add_loop_test(tc, test_week_cycles_alternate_across_iso_week_53, 0, N(cycle_rows));
	tcase_add_loop_test(tc, test_night_shift_starting_on_a_closed_day_is_closed_after_midnight_too, 0,
			    N(closed_night_rows));
	tcase_add_loop_test(tc, test_london_dst_changes_count_on_the_local_day_and_minute, 0, N(dst_rows));
	tcase_add_loop_test(tc, test_dst_instants_localize_for_the_rules, 0, N(dst_instants));
	tcase_add_loop_test(tc, test_night_shift_runs_from_a_rota_day_into_the_next_morning, 0,
			    N(night_rows));
	tcase_add_loop_test(tc, test_outside_hours_only_when_today_has_rota_hours, 0, N(hours_rows));
	tcase_add_loop_test(tc, test_validity_window_ends_are_inclusive_local_dates, 0, N(window_rows));
	tcase_add_loop_test(tc, test_deny_beats_exempt_beats_closure_beats_rota, 0, N(precedence_rows));
	tcase_add_loop_test(tc, test_site_time_zone_decides_day_and_hours, 0, N(zone_rows));
	tcase_add_test(tc, test_site_without_zone_follows_local_time);
	tcase_add_test(tc, test_unknown_site_zone_is_an_error_not_a_grant);
	tcase_add_test(tc, test_time_beyond_year_9999_is_bad_input_not_a_grant);
	tcase_add_test(tc, test_rota_matches_alone_with_small_why_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("places");
	tcase_add_loop_test(tc, test_reserved_places_are_for_exempt_staff_only, 0, N(place_rows));
	tcase_add_test(tc, test_capacity_10_reserved_2_admits_8_then_only_2_exempt);
	suite_add_tcase(s, tc);

	tc = tcase_create("groups");
	tcase_add_loop_test(tc, test_group_names_compare_like_the_directory_does, 0, N(group_rows));
	tcase_add_test(tc, test_group_canon_form_and_truncation);
	suite_add_tcase(s, tc);

	tc = tcase_create("explain");
	tcase_add_loop_test(tc, test_explain_says_why_for_each_rule, 0, N(explain_rows));
	tcase_add_test(tc, test_explain_never_overflows_and_appends);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* far from UTC and from every zone under test */
	setenv("TZ", "Pacific/Kiritimati", 1);
	sr = srunner_create(rules_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
