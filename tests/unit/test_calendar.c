/*
 * test_calendar.c - calendar.c: civil days, ISO weeks, week cycles, zones, DST.
 *
 * Every instant is an explicit Unix time or a string with a named zone; the
 * process runs with TZ=Pacific/Kiritimati (UTC+14) so that nothing can pass
 * by accident on a machine set to UTC or London.
 */
#include <check.h>
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"

#define NOT_A_DATE INT32_MIN

/* ---- rg_cal_parse_date / rg_cal_format_date */

static const struct {
	const char *s;
	int32_t day; /* NOT_A_DATE: must be rejected */
} date_cases[] = {
	{ "1970-01-01", 0 },
	{ "1969-12-31", -1 },
	{ "1900-03-01", -25508 },
	{ "2020-09-07", 18512 },
	{ "2024-02-29", 19782 },   /* leap year */
	{ "2000-02-29", 11016 },   /* divisible by 400: leap */
	{ "0001-01-01", -719162 },
	{ "9999-12-31", 2932896 },
	{ "2026-02-29", NOT_A_DATE }, /* 2026 is not a leap year */
	{ "1900-02-29", NOT_A_DATE }, /* divisible by 100: not leap */
	{ "2026-04-31", NOT_A_DATE },
	{ "2026-13-01", NOT_A_DATE },
	{ "2026-00-10", NOT_A_DATE },
	{ "2026-01-00", NOT_A_DATE },
	{ "0000-01-01", NOT_A_DATE },
	{ "2026-1-01", NOT_A_DATE },
	{ "2026-01-1", NOT_A_DATE },
	{ "2026-01-01 ", NOT_A_DATE },
	{ " 2026-01-01", NOT_A_DATE },
	{ "2026/01/01", NOT_A_DATE },
	{ "+026-01-01", NOT_A_DATE },
	{ "", NOT_A_DATE },
};

START_TEST(test_parse_date_accepts_only_real_dates)
{
	int32_t day = 12345;
	int rc = rg_cal_parse_date(date_cases[_i].s, &day);

	if (date_cases[_i].day == NOT_A_DATE) {
		ck_assert_msg(rc == -1, "'%s' accepted as day %d", date_cases[_i].s, day);
	} else {
		ck_assert_msg(rc == 0, "'%s' rejected", date_cases[_i].s);
		ck_assert_int_eq(day, date_cases[_i].day);
	}
}
END_TEST

START_TEST(test_format_date_round_trips_real_dates)
{
	char buf[16];

	if (date_cases[_i].day == NOT_A_DATE)
		return;
	rg_cal_format_date(date_cases[_i].day, buf, sizeof(buf));
	ck_assert_str_eq(buf, date_cases[_i].s);
}
END_TEST

START_TEST(test_format_date_of_no_date_is_marked_and_bounded)
{
	char buf[16], tiny[5];

	rg_cal_format_date(INT32_MIN, buf, sizeof(buf));
	ck_assert_str_eq(buf, "(no date)");
	memset(tiny, 'x', sizeof(tiny));
	rg_cal_format_date(0, tiny, sizeof(tiny));
	ck_assert_str_eq(tiny, "1970");
}
END_TEST

/* ---- weekdays and ISO weeks */

static const struct {
	const char *date;
	int weekday, iso_year, iso_week;
} week_cases[] = {
	{ "1970-01-01", 4, 1970, 1 },
	{ "1969-12-29", 1, 1970, 1 },  /* pre-1970 Monday in 1970's week 1 */
	{ "1969-12-28", 7, 1969, 52 },
	{ "2020-12-28", 1, 2020, 53 }, /* 2020 has 53 ISO weeks */
	{ "2020-12-31", 4, 2020, 53 },
	{ "2021-01-03", 7, 2020, 53 },
	{ "2021-01-04", 1, 2021, 1 },
	{ "2024-12-30", 1, 2025, 1 },  /* late December in next year's week 1 */
	{ "2026-03-29", 7, 2026, 13 },
	{ "2026-10-25", 7, 2026, 43 },
	{ "2026-12-28", 1, 2026, 53 }, /* 2026 has 53 ISO weeks */
	{ "2027-01-03", 7, 2026, 53 },
	{ "2027-01-04", 1, 2027, 1 },
	{ "2010-01-03", 7, 2009, 53 },
};

START_TEST(test_weekday_and_iso_week_of_known_dates)
{
	int32_t day;
	int y, w;

	ck_assert_int_eq(rg_cal_parse_date(week_cases[_i].date, &day), 0);
	ck_assert_int_eq(rg_cal_weekday(day), week_cases[_i].weekday);
	rg_cal_iso_week(day, &y, &w);
	ck_assert_msg(y == week_cases[_i].iso_year && w == week_cases[_i].iso_week,
		      "%s: got %d-W%02d", week_cases[_i].date, y, w);
}
END_TEST

/* Cross-check against GDateTime's own week numbering for a century, and
 * that the Monday of each ISO week leads back to the same day. */
START_TEST(test_iso_weeks_agree_with_gdatetime_1960_to_2060)
{
	int32_t first, last, monday;

	ck_assert_int_eq(rg_cal_parse_date("1960-01-01", &first), 0);
	ck_assert_int_eq(rg_cal_parse_date("2060-12-31", &last), 0);
	for (int32_t day = first; day <= last; day++) {
		GDateTime *dt = g_date_time_new_from_unix_utc((gint64)day * 86400);
		int y, w;

		rg_cal_iso_week(day, &y, &w);
		ck_assert_int_eq(rg_cal_weekday(day), g_date_time_get_day_of_week(dt));
		ck_assert_int_eq(y, g_date_time_get_week_numbering_year(dt));
		ck_assert_int_eq(w, g_date_time_get_week_of_year(dt));
		ck_assert_int_eq(rg_cal_iso_week_monday(y, w, &monday), 0);
		ck_assert_int_eq(monday + rg_cal_weekday(day) - 1, day);
		g_date_time_unref(dt);
	}
}
END_TEST

static const struct {
	int iso_year, iso_week;
	const char *monday; /* NULL: the week does not exist */
} monday_cases[] = {
	{ 2020, 53, "2020-12-28" },
	{ 2021, 53, NULL },
	{ 2026, 1, "2025-12-29" },
	{ 2026, 13, "2026-03-23" },
	{ 2026, 53, "2026-12-28" },
	{ 2027, 53, NULL },
	{ 2026, 0, NULL },
	{ 2026, 54, NULL },
};

START_TEST(test_iso_week_monday_exists_only_for_real_weeks)
{
	int32_t monday = 0, want;
	int rc = rg_cal_iso_week_monday(monday_cases[_i].iso_year, monday_cases[_i].iso_week, &monday);

	if (!monday_cases[_i].monday) {
		ck_assert_int_eq(rc, -1);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(rg_cal_parse_date(monday_cases[_i].monday, &want), 0);
	ck_assert_int_eq(monday, want);
}
END_TEST

/* ---- week cycles */

static const struct {
	const char *start, *day;
	unsigned m, week;
} cycle_cases[] = {
	/* across 2020-W53 into 2021: ISO weeks 53 and 1 are both odd, the
	 * cycle still alternates */
	{ "2020-09-07", "2020-09-07", 2, 1 },
	{ "2020-09-07", "2020-09-13", 2, 1 },
	{ "2020-09-07", "2020-09-14", 2, 2 },
	{ "2020-09-07", "2020-12-28", 2, 1 },
	{ "2020-09-07", "2021-01-03", 2, 1 },
	{ "2020-09-07", "2021-01-04", 2, 2 },
	{ "2020-09-07", "2021-01-11", 2, 1 },
	{ "2020-09-07", "2020-12-29", 3, 2 },
	{ "2020-09-07", "2021-01-05", 3, 3 },
	{ "2020-09-07", "2021-01-12", 3, 1 },
	/* across 2026-W53 into 2027 */
	{ "2020-09-07", "2026-12-21", 2, 1 },
	{ "2020-09-07", "2026-12-28", 2, 2 },
	{ "2020-09-07", "2027-01-04", 2, 1 },
	{ "2020-09-07", "2027-01-11", 2, 2 },
	{ "2020-09-07", "2026-12-29", 3, 3 },
	{ "2020-09-07", "2027-01-05", 3, 1 },
	{ "2020-09-07", "2027-01-12", 3, 2 },
	/* before the cycle starts: the week before is week M */
	{ "2020-09-07", "2020-09-06", 2, 2 },
	{ "2020-09-07", "2020-08-31", 3, 3 },
	{ "2020-09-07", "2020-08-24", 3, 2 },
	{ "2020-09-07", "2020-08-17", 3, 1 },
	{ "2020-09-07", "1969-12-29", 2, 2 },
	/* 1/1 and nonsense m: every week is week 1 */
	{ "2020-09-07", "2020-09-14", 1, 1 },
	{ "2020-09-07", "2020-09-14", 0, 1 },
};

START_TEST(test_cycle_week_counts_from_cycle_start_across_years)
{
	int32_t start, day;

	ck_assert_int_eq(rg_cal_parse_date(cycle_cases[_i].start, &start), 0);
	ck_assert_int_eq(rg_cal_parse_date(cycle_cases[_i].day, &day), 0);
	ck_assert_msg(rg_cal_cycle_week(start, day, cycle_cases[_i].m) == cycle_cases[_i].week,
		      "%s in a %u-week cycle from %s: got week %u, want %u", cycle_cases[_i].day,
		      cycle_cases[_i].m, cycle_cases[_i].start,
		      rg_cal_cycle_week(start, day, cycle_cases[_i].m), cycle_cases[_i].week);
}
END_TEST

/* ---- hours */

static const struct {
	const char *s;
	int minutes; /* -1: rejected */
} hhmm_cases[] = {
	{ "00:00", 0 }, { "07:00", 420 }, { "23:59", 1439 }, { "24:00", 1440 },
	{ "24:01", -1 }, { "23:60", -1 }, { "25:00", -1 }, { "7:00", -1 },
	{ "07:0", -1 }, { "07:00x", -1 }, { "07-00", -1 }, { "", -1 },
};

START_TEST(test_parse_hhmm_strict)
{
	int m = -42;
	int rc = rg_cal_parse_hhmm(hhmm_cases[_i].s, &m);

	if (hhmm_cases[_i].minutes < 0) {
		ck_assert_msg(rc == -1, "'%s' accepted", hhmm_cases[_i].s);
	} else {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(m, hhmm_cases[_i].minutes);
	}
}
END_TEST

/* ---- localize */

static const struct {
	const char *tz;
	int64_t when;
	const char *date;
	int minute, weekday, offset;
} local_cases[] = {
	/* London, last Sunday of March 2026: 01:00 GMT jumps to 02:00 BST, so
	 * local 01:30 never happens; the instants either side of the jump: */
	{ "Europe/London", 1774744200, "2026-03-29", 30, 7, 0 },        /* 00:30Z = 00:30 GMT */
	{ "Europe/London", 1774745999, "2026-03-29", 59, 7, 0 },        /* 00:59:59Z = 00:59 GMT */
	{ "Europe/London", 1774746000, "2026-03-29", 120, 7, 3600 },    /* 01:00Z = 02:00 BST */
	{ "Europe/London", 1774740600, "2026-03-28", 1410, 6, 0 },      /* 23:30Z Sat = 23:30 GMT */
	/* London, last Sunday of October 2026: 01:30 happens twice */
	{ "Europe/London", 1792888200, "2026-10-25", 90, 7, 3600 },     /* 00:30Z = 01:30 BST */
	{ "Europe/London", 1792891800, "2026-10-25", 90, 7, 0 },        /* 01:30Z = 01:30 GMT */
	{ "Europe/London", 1792884600, "2026-10-25", 30, 7, 3600 },     /* 23:30Z Sat = 00:30 BST Sun */
	{ "Europe/London", -14182980, "1969-07-20", 1277, 7, 3600 },    /* British Standard Time */
	{ "UTC", -60, "1969-12-31", 1439, 3, 0 },
	{ "America/New_York", 1783166400, "2026-07-04", 480, 6, -14400 },
	{ "America/New_York", 1793511000, "2026-11-01", 90, 7, -14400 }, /* 01:30 EDT */
	{ "America/New_York", 1793514600, "2026-11-01", 90, 7, -18000 }, /* 01:30 EST */
	{ "Australia/Sydney", 1767225600, "2026-01-01", 660, 4, 39600 },
	{ "Australia/Sydney", 1782829800, "2026-07-01", 30, 3, 36000 },  /* UTC still 30 June */
};

START_TEST(test_localize_counts_the_local_day_and_minute)
{
	struct rg_localtime lt;
	int32_t day;
	int y, w;

	ck_assert_int_eq(rg_cal_localize(local_cases[_i].tz, local_cases[_i].when, &lt), 0);
	ck_assert_int_eq(rg_cal_parse_date(local_cases[_i].date, &day), 0);
	ck_assert_int_eq(lt.day, day);
	ck_assert_int_eq(lt.minute, local_cases[_i].minute);
	ck_assert_int_eq(lt.weekday, local_cases[_i].weekday);
	ck_assert_int_eq(lt.utc_offset, local_cases[_i].offset);
	rg_cal_iso_week(day, &y, &w);
	ck_assert_int_eq(lt.iso_year, y);
	ck_assert_int_eq(lt.iso_week, w);
	ck_assert_int_eq(lt.year * 10000 + lt.month * 100 + lt.mday,
			 atoi(local_cases[_i].date) * 10000 + atoi(local_cases[_i].date + 5) * 100 +
				 atoi(local_cases[_i].date + 8));
}
END_TEST

START_TEST(test_unknown_zones_are_rejected)
{
	struct rg_localtime lt;

	ck_assert(rg_cal_tz_valid("Europe/London"));
	ck_assert(rg_cal_tz_valid("Australia/Sydney"));
	ck_assert(rg_cal_tz_valid(NULL));
	ck_assert(!rg_cal_tz_valid("Europe/Londn"));
	ck_assert(!rg_cal_tz_valid(""));
	ck_assert(!rg_cal_tz_valid("europe/london"));
	ck_assert(!rg_cal_tz_valid("../../etc/passwd"));
	ck_assert_int_eq(rg_cal_localize("Mars/Olympus_Mons", 0, &lt), -1);
}
END_TEST

/* Years outside 1..9999 cannot be localized: an error, quietly. */
static const int64_t out_of_range[] = { INT64_MAX, INT64_MIN, 253402300800LL /* 10000-01-01T00:00Z */ };

START_TEST(test_localize_out_of_range_is_an_error)
{
	struct rg_localtime lt;

	ck_assert_int_eq(rg_cal_localize("UTC", out_of_range[_i], &lt), -1);
	ck_assert_int_eq(lt.day, 0);
	ck_assert_int_eq(rg_cal_localize("UTC", 253402300799LL, &lt), 0); /* 9999-12-31T23:59:59Z */
	ck_assert_int_eq(lt.year, 9999);
	ck_assert_int_eq(lt.minute, 1439);
}
END_TEST

/* NULL = the system's local zone, which follows TZ (set explicitly here). */
START_TEST(test_null_zone_is_the_local_zone_from_tz)
{
	struct rg_localtime lt;
	char name[128];

	/* Kiritimati (set by main) is UTC+14 all year */
	ck_assert_int_eq(rg_cal_localize(NULL, 1783166400, &lt), 0);
	ck_assert_int_eq(lt.utc_offset, 14 * 3600);

	setenv("TZ", "America/New_York", 1);
	ck_assert_int_eq(rg_cal_localize(NULL, 1783166400, &lt), 0);
	ck_assert_int_eq(lt.utc_offset, -4 * 3600);
	ck_assert_int_eq(lt.minute, 8 * 60);
	rg_cal_tz_name(NULL, name, sizeof(name));
	ck_assert_str_eq(name, "local time (America/New_York)");
	setenv("TZ", "Pacific/Kiritimati", 1);
}
END_TEST

/* ---- rg_cal_parse_local */

static const struct {
	const char *tz, *s;
	int64_t when;     /* when ok */
	const char *err;  /* NULL = must succeed; else a substring of the message */
} parse_cases[] = {
	/* London spring forward: 01:00-01:59 do not exist on 2026-03-29 */
	{ "Europe/London", "2026-03-29 01:30", 0,
	  "2026-03-29 01:30 does not exist in Europe/London (clocks go forward)" },
	{ "Europe/London", "2026-03-29 01:00", 0, "does not exist" },
	{ "Europe/London", "2026-03-29 00:59:59", 1774745999, NULL },
	{ "Europe/London", "2026-03-29 02:00", 1774746000, NULL },
	{ "Europe/London", "2026-03-29 01:30+01:00", 1774744200, NULL }, /* offset: no question */
	{ "Europe/London", "2026-03-29T01:30Z", 1774747800, NULL },
	/* London fall back: 01:00-01:59 happen twice on 2026-10-25 */
	{ "Europe/London", "2026-10-25 01:30", 0,
	  "2026-10-25 01:30 is ambiguous in Europe/London (clocks go back); "
	  "add an offset such as +01:00 or +00:00" },
	{ "Europe/London", "2026-10-25 01:30+01:00", 1792888200, NULL },
	{ "Europe/London", "2026-10-25 01:30+00:00", 1792891800, NULL },
	{ "Europe/London", "2026-10-25T01:30Z", 1792891800, NULL },
	{ "Europe/London", "2026-10-25 01:30:00+0100", 1792888200, NULL },
	{ "Europe/London", "2026-10-25 00:59:59", 1792886399, NULL },
	{ "Europe/London", "2026-10-25 02:00", 1792893600, NULL },
	/* other zones' changes */
	{ "America/New_York", "2026-03-08 02:30", 0,
	  "2026-03-08 02:30 does not exist in America/New_York (clocks go forward)" },
	{ "America/New_York", "2026-11-01 01:30", 0,
	  "is ambiguous in America/New_York (clocks go back); add an offset such as -04:00 or -05:00" },
	{ "America/New_York", "2026-07-04 08:00", 1783166400, NULL },
	{ "America/New_York", "2026-07-04 08:00:00-0400", 1783166400, NULL },
	{ "America/New_York", "2026-07-04T08:00-04", 1783166400, NULL },
	{ "Australia/Sydney", "2026-04-05 02:30", 0, "add an offset such as +11:00 or +10:00" },
	{ "Australia/Sydney", "2026-10-04 02:30", 0, "does not exist in Australia/Sydney" },
	{ "Australia/Sydney", "2026-01-01 11:00", 1767225600, NULL },
	/* malformed */
	{ "Europe/London", "2026-02-29 10:00", 0, "2026-02-29 is not a real date" },
	{ "Europe/London", "2026-03-01 24:00", 0, "is not a time of day" },
	{ "Europe/London", "2026-03-01 10:60", 0, "is not a time of day" },
	{ "Europe/London", "2026-03-01", 0, "expected YYYY-MM-DD HH:MM" },
	{ "Europe/London", "2026-03-01 9:00", 0, "expected YYYY-MM-DD HH:MM" },
	{ "Europe/London", "2026-03-01_09:00", 0, "expected YYYY-MM-DD HH:MM" },
	{ "Europe/London", "2026-03-01 09:00 +01:00", 0, "bad UTC offset" },
	{ "Europe/London", "2026-03-01 09:00+1:00", 0, "bad UTC offset" },
	{ "Europe/London", "2026-03-01 09:00+24:00", 0, "bad UTC offset" },
	{ "Europe/London", "2026-03-01 09:00:5", 0, "expected YYYY-MM-DD HH:MM" },
	{ "Nowhere/Special", "2026-03-01 09:00Z", 0, "unknown time zone 'Nowhere/Special'" },
};

START_TEST(test_parse_local_names_dst_gaps_and_overlaps)
{
	char err[256] = "";
	int64_t when = -1;
	int rc = rg_cal_parse_local(parse_cases[_i].tz, parse_cases[_i].s, &when, err, sizeof(err));

	if (parse_cases[_i].err) {
		ck_assert_msg(rc == -1, "'%s' accepted as %lld", parse_cases[_i].s, (long long)when);
		ck_assert_msg(strstr(err, parse_cases[_i].err), "'%s': message '%s' lacks '%s'",
			      parse_cases[_i].s, err, parse_cases[_i].err);
	} else {
		ck_assert_msg(rc == 0, "'%s' rejected: %s", parse_cases[_i].s, err);
		ck_assert_int_eq(when, parse_cases[_i].when);
	}
}
END_TEST

START_TEST(test_parse_local_error_fits_a_small_buffer)
{
	char err[12];
	int64_t when;

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(rg_cal_parse_local("Europe/London", "2026-10-25 01:30", &when, err, sizeof(err)), -1);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(rg_cal_parse_local("Europe/London", "2026-10-25 01:30", &when, NULL, 0), -1);
}
END_TEST

/* ---- formatting helpers */

START_TEST(test_offsets_and_times_format_for_people)
{
	char buf[32];

	rg_cal_format_offset(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "UTC+00:00");
	rg_cal_format_offset(3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "UTC+01:00");
	rg_cal_format_offset(-5 * 3600, buf, sizeof(buf));
	ck_assert_str_eq(buf, "UTC-05:00");
	rg_cal_format_offset(5 * 3600 + 45 * 60, buf, sizeof(buf));
	ck_assert_str_eq(buf, "UTC+05:45");
	rg_cal_format_hhmm(1440, buf, sizeof(buf));
	ck_assert_str_eq(buf, "24:00");
	rg_cal_format_hhmm(7 * 60 + 5, buf, sizeof(buf));
	ck_assert_str_eq(buf, "07:05");
	ck_assert_str_eq(rg_cal_weekday_name(1), "Monday");
	ck_assert_str_eq(rg_cal_weekday_name(7), "Sunday");
	ck_assert_str_eq(rg_cal_weekday_name(0), "?");
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* rg_cal_utc_tm (lock-free) agrees with GDateTime, every 61 hours and 13
 * seconds from 1600 to 2400, and on both sides of the epoch. */
START_TEST(test_utc_tm_agrees_with_gdatetime)
{
	for (int64_t t = -11676096000LL; t < 13569465600LL; t += 61 * 3600 + 13) {
		struct tm tm;
		GDateTime *d = g_date_time_new_from_unix_utc(t);
		rg_cal_utc_tm(t, &tm);
		ck_assert_ptr_nonnull(d);
		ck_assert_msg(tm.tm_year + 1900 == g_date_time_get_year(d) &&
				      tm.tm_mon + 1 == g_date_time_get_month(d) &&
				      tm.tm_mday == g_date_time_get_day_of_month(d) &&
				      tm.tm_hour == g_date_time_get_hour(d) &&
				      tm.tm_min == g_date_time_get_minute(d) &&
				      tm.tm_sec == g_date_time_get_second(d),
			      "t=%lld: %04d-%02d-%02d %02d:%02d:%02d", (long long)t, tm.tm_year + 1900,
			      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		g_date_time_unref(d);
	}
}
END_TEST

static Suite *calendar_suite(void)
{
	Suite *s = suite_create("calendar");
	TCase *tc = tcase_create("dates");

	tcase_add_loop_test(tc, test_parse_date_accepts_only_real_dates, 0, N(date_cases));
	tcase_add_loop_test(tc, test_format_date_round_trips_real_dates, 0, N(date_cases));
	tcase_add_test(tc, test_format_date_of_no_date_is_marked_and_bounded);
	tcase_add_loop_test(tc, test_weekday_and_iso_week_of_known_dates, 0, N(week_cases));
	tcase_add_loop_test(tc, test_iso_week_monday_exists_only_for_real_weeks, 0, N(monday_cases));
	tcase_add_loop_test(tc, test_cycle_week_counts_from_cycle_start_across_years, 0, N(cycle_cases));
	tcase_add_loop_test(tc, test_parse_hhmm_strict, 0, N(hhmm_cases));
	tcase_add_test(tc, test_offsets_and_times_format_for_people);
	suite_add_tcase(s, tc);

	tc = tcase_create("cross-check");
	tcase_set_timeout(tc, 60); /* 37,000 days, also under ASan on a busy machine */
	tcase_add_test(tc, test_iso_weeks_agree_with_gdatetime_1960_to_2060);
	tcase_add_test(tc, test_utc_tm_agrees_with_gdatetime);
	suite_add_tcase(s, tc);

	tc = tcase_create("zones");
	tcase_add_loop_test(tc, test_localize_counts_the_local_day_and_minute, 0, N(local_cases));
	tcase_add_test(tc, test_unknown_zones_are_rejected);
	tcase_add_loop_test(tc, test_localize_out_of_range_is_an_error, 0, N(out_of_range));
	tcase_add_test(tc, test_null_zone_is_the_local_zone_from_tz);
	tcase_add_loop_test(tc, test_parse_local_names_dst_gaps_and_overlaps, 0, N(parse_cases));
	tcase_add_test(tc, test_parse_local_error_fits_a_small_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* far from UTC and from every zone under test */
	setenv("TZ", "Pacific/Kiritimati", 1);
	sr = srunner_create(calendar_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
