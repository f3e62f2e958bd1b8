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

struct rg_localtime {
	int32_t day;          /* day number of the local date */
	int year, month, mday;
	int weekday;          /* 1 = Monday ... 7 = Sunday */
	int minute;           /* minutes since local midnight, 0..1439 */
	int iso_year, iso_week;
	int utc_offset;       /* seconds east of UTC at that instant */
};

/* Is `tz` (IANA name, e.g. "Europe/London") known?  NULL = local: true. */
bool rg_cal_tz_valid(const char *tz);

/* Break Unix time `when` down into the local time of `tz` (NULL = system local).
 * 0 on success, -1 if the zone is unknown. */
int rg_cal_localize(const char *tz, int64_t when, struct rg_localtime *out);

/* "YYYY-MM-DD" -> day number; -1 if malformed or not a real date. */
int rg_cal_parse_date(const char *s, int32_t *day);

/* day number -> "YYYY-MM-DD" (buf of at least 11 bytes). */
void rg_cal_format_date(int32_t day, char *buf, size_t len);

/* day number -> 1 (Monday) .. 7 (Sunday) */
int rg_cal_weekday(int32_t day);

/* ISO 8601 week of a day number. */
void rg_cal_iso_week(int32_t day, int *iso_year, int *iso_week);

/* Monday of ISO week `week` of `iso_year`; -1 if the week does not exist. */
int rg_cal_iso_week_monday(int iso_year, int iso_week, int32_t *monday);

/* "HH:MM" -> minutes (00:00..23:59, and 24:00 allowed as an end); -1 if malformed. */
int rg_cal_parse_hhmm(const char *s, int *minutes);

/* Parse "YYYY-MM-DD HH:MM[:SS][offset]" (also 'T' separator; offset "Z",
 * "+01:00", "-0500") as wall-clock time in `tz`.  Without an offset, a local
 * time skipped or repeated by a DST change is an error that says so.
 * 0 on success; -1 with a message in err. */
int rg_cal_parse_local(const char *tz, const char *s, int64_t *when, char *err, size_t errlen);

/* Week of an M-week cycle (1..M) that contains `day`, counting from the
 * Monday `cycle_start` as week 1.  Works before cycle_start too. */
unsigned rg_cal_cycle_week(int32_t cycle_start, int32_t day, unsigned m);

#endif
