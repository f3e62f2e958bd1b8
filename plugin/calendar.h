/*
 * calendar.h - site-local dates and times (GLib GTimeZone/GDateTime).
 *
 * Pure functions: no I/O beyond GLib's reading of the tz database, no global
 * state.  Thread-safe.
 *
 * A "day number" is the count of days since 1970-01-01 of a civil date in
 * the proleptic Gregorian calendar; it is independent of any time zone.
 */
#ifndef RG_CALENDAR_H
#define RG_CALENDAR_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct rg_localtime {
	int32_t day;          /* day number of the local date */
	int year, month, mday;
	int weekday;          /* 1 = Monday ... 7 = Sunday */
	int minute;           /* minutes since local midnight, 0..1439 */
	int iso_year, iso_week;
	int utc_offset;       /* seconds east of UTC at that instant */
};

/* pthread_atfork support (api.c): hold / release the zone cache's lock
 * across fork(), so that no thread is inside GLib's zone creation then. */
void rg_cal_fork_prepare(void);
void rg_cal_fork_release(void);

/* Unix time `t` broken down in UTC (tm_year, tm_mon, tm_mday, tm_hour,
 * tm_min, tm_sec; other fields untouched) by arithmetic: no lock, unlike
 * gmtime_r(), whose glibc time-zone lock a fork() from another thread can
 * leave held in the child.  Any int64 time whose year fits an int. */
void rg_cal_utc_tm(int64_t t, struct tm *tm);

/* Is `tz` (IANA name, e.g. "Europe/London") known?  NULL = local: true.
 * An empty name is not a zone. */
bool rg_cal_tz_valid(const char *tz);

/* Break Unix time `when` down into the local time of `tz` (NULL = system local).
 * 0 on success, -1 if the zone is unknown or `when` is outside years 1..9999.
 * `minute` is wall-clock: on the morning clocks go back, 01:30 BST and 01:30 GMT
 * are both minute 90 of the same day. */
int rg_cal_localize(const char *tz, int64_t when, struct rg_localtime *out);

/* "YYYY-MM-DD" (exactly; years 0001..9999) -> day number; -1 if malformed or
 * not a real date (2026-02-29 is rejected, 2024-02-29 accepted). */
int rg_cal_parse_date(const char *s, int32_t *day);

/* day number -> "YYYY-MM-DD" (buf of at least 11 bytes; always NUL-terminated
 * when len > 0).  A day outside years 1..9999 (e.g. RG_NO_DATE) gives "(no date)". */
void rg_cal_format_date(int32_t day, char *buf, size_t len);

/* day number -> 1 (Monday) .. 7 (Sunday); any day number, also before 1970. */
int rg_cal_weekday(int32_t day);

/* 1..7 -> "Monday".."Sunday"; "?" otherwise.  Static storage. */
const char *rg_cal_weekday_name(int weekday);

/* ISO 8601 week of a day number (years 1..9999; 0/0 outside). */
void rg_cal_iso_week(int32_t day, int *iso_year, int *iso_week);

/* Monday of ISO week `week` of `iso_year`; -1 if the week does not exist. */
int rg_cal_iso_week_monday(int iso_year, int iso_week, int32_t *monday);

/* "HH:MM" (two digits each) -> minutes (00:00..23:59, and 24:00 = 1440, which
 * only makes sense as an end); -1 if malformed. */
int rg_cal_parse_hhmm(const char *s, int *minutes);

/* minutes (0..1440) -> "HH:MM" (buf of at least 6 bytes). */
void rg_cal_format_hhmm(int minutes, char *buf, size_t len);

/* seconds east of UTC -> "UTC+01:00" / "UTC-05:00" (buf of at least 10 bytes). */
void rg_cal_format_offset(int utc_offset, char *buf, size_t len);

/* Human name of a zone for messages: the IANA name, or for NULL
 * "local time (<TZ identifier>)". */
void rg_cal_tz_name(const char *tz, char *buf, size_t len);

/* Parse "YYYY-MM-DD HH:MM[:SS][offset]" (also 'T' separator; offset "Z",
 * "+01:00", "-0500", "+01") as wall-clock time in `tz`.  Without an offset, a
 * local time skipped or repeated by a DST change is an error that says so:
 *   "2026-03-29 01:30 does not exist in Europe/London (clocks go forward)"
 *   "2026-10-25 01:30 is ambiguous in Europe/London (clocks go back); add an
 *    offset such as +01:00 or +00:00"
 * An unknown zone is an error even when an offset is given.
 * 0 on success; -1 with a message in err (err may be NULL). */
int rg_cal_parse_local(const char *tz, const char *s, int64_t *when, char *err, size_t errlen);

/* Week of an M-week cycle (1..M) that contains `day`, counting from the
 * Monday `cycle_start` as week 1.  Works before cycle_start too (floor
 * division: the week before cycle_start is week M).  m <= 1 gives 1. */
unsigned rg_cal_cycle_week(int32_t cycle_start, int32_t day, unsigned m);

#endif
