/*
 * calendar.c - site-local dates and times.
 *
 * Civil-date arithmetic goes through GLib's GDate (Julian day numbers from
 * 0001-01-01) and zone handling through GTimeZone/GDateTime.
 *
 * Zones come from a small cache of our own (zone_new), for fork safety:
 * GLib creates zones under a private lock that no pthread_atfork handler
 * can reach, so a fork() while another thread was inside
 * g_time_zone_new_identifier() would leave the child's first date
 * calculation waiting forever.  Here GLib is only ever asked for a zone
 * while zones_lock is held, and api.c holds zones_lock across fork()
 * (rg_cal_fork_prepare).  The cache keeps one reference to every zone it
 * made, so the zones' reference counts never drop to zero, and GLib never
 * takes its lock for them again.
 */
#include <glib.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "calendar.h"

/* g_date_get_julian() of 1970-01-01 */
#define RG_JULIAN_EPOCH 719163

#define SECS_PER_DAY 86400

static void set_err(char *err, size_t errlen, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

static pthread_mutex_t zones_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *zones; /* "id:NAME" / "local:$TZ" -> GTimeZone (one ref) */

void rg_cal_fork_prepare(void)
{
	pthread_mutex_lock(&zones_lock);
}

void rg_cal_fork_release(void)
{
	pthread_mutex_unlock(&zones_lock);
}

/* A new reference to the zone `tz` (NULL = the zone of the TZ environment
 * variable / system, as g_time_zone_new_local() reads it now), or NULL for an
 * unknown name.  Unknown names are not remembered: only configured zones
 * and the local one are ever cached. */
static GTimeZone *zone_new(const char *tz)
{
	const char *env = tz ? NULL : getenv("TZ");
	char buf[128], *key = buf;
	GTimeZone *z;

	if (tz && !*tz)
		return NULL;
	/* on the decision path: no allocation for the usual short names */
	if ((size_t)snprintf(buf, sizeof buf, "%s:%s", tz ? "id" : "local",
			     tz ? tz : env ? env : "") >= sizeof buf)
		key = g_strconcat(tz ? "id:" : "local:", tz ? tz : env ? env : "", NULL);
	pthread_mutex_lock(&zones_lock);
	if (!zones)
		zones = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
					      (GDestroyNotify)g_time_zone_unref);
	z = g_hash_table_lookup(zones, key);
	if (!z) {
		z = tz ? g_time_zone_new_identifier(tz) : g_time_zone_new_local();
		if (z)
			g_hash_table_insert(zones, g_strdup(key), z);
	}
	if (z)
		g_time_zone_ref(z);
	pthread_mutex_unlock(&zones_lock);
	if (key != buf)
		g_free(key);
	return z;
}

/* Day number -> GDate; false outside years 1..9999. */
static bool day_to_gdate(int32_t day, GDate *d)
{
	int64_t julian = (int64_t)day + RG_JULIAN_EPOCH;

	g_date_clear(d, 1);
	/* 3652059 = g_date_get_julian(9999-12-31) */
	if (julian < 1 || julian > 3652059)
		return false;
	g_date_set_julian(d, (guint32)julian);
	return true;
}

static bool ymd_to_day(int year, int month, int mday, int32_t *day)
{
	GDate d;

	if (year < 1 || year > 9999 || !g_date_valid_dmy((GDateDay)mday, (GDateMonth)month, (GDateYear)year))
		return false;
	g_date_clear(&d, 1);
	g_date_set_dmy(&d, (GDateDay)mday, (GDateMonth)month, (GDateYear)year);
	*day = (int32_t)((int64_t)g_date_get_julian(&d) - RG_JULIAN_EPOCH);
	return true;
}

/* Days to civil date: H. Hinnant's algorithm. */
void rg_cal_utc_tm(int64_t t, struct tm *tm)
{
	int64_t days = t / 86400, secs = t % 86400;
	if (secs < 0) {
		secs += 86400;
		days--;
	}
	tm->tm_hour = (int)(secs / 3600);
	tm->tm_min = (int)(secs / 60 % 60);
	tm->tm_sec = (int)(secs % 60);
	days += 719468; /* from 0000-03-01 */
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	int64_t doe = days - era * 146097;                                   /* [0, 146096] */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
	int64_t mp = (5 * doy + 2) / 153;                                    /* March = 0 */
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	tm->tm_mday = (int)(doy - (153 * mp + 2) / 5 + 1);
	tm->tm_mon = (int)(m - 1);
	tm->tm_year = (int)(yoe + era * 400 + (m <= 2) - 1900);
}

bool rg_cal_tz_valid(const char *tz)
{
	GTimeZone *z;

	if (!tz)
		return true;
	z = zone_new(tz);
	if (!z)
		return false;
	g_time_zone_unref(z);
	return true;
}

void rg_cal_tz_name(const char *tz, char *buf, size_t len)
{
	GTimeZone *z;

	if (!buf || len == 0)
		return;
	if (tz) {
		snprintf(buf, len, "%s", tz);
		return;
	}
	z = zone_new(NULL);
	snprintf(buf, len, "local time (%s)", z ? g_time_zone_get_identifier(z) : "unknown");
	if (z)
		g_time_zone_unref(z);
}

int rg_cal_localize(const char *tz, int64_t when, struct rg_localtime *out)
{
	GTimeZone *z;
	GDateTime *utc, *local;
	int year, month, mday;

	memset(out, 0, sizeof(*out));
	z = zone_new(tz);
	if (!z)
		return -1;
	utc = g_date_time_new_from_unix_utc(when);
	if (!utc) {
		g_time_zone_unref(z);
		return -1;
	}
	local = g_date_time_to_timezone(utc, z);
	g_date_time_unref(utc);
	g_time_zone_unref(z);
	if (!local)
		return -1;

	g_date_time_get_ymd(local, &year, &month, &mday);
	out->year = year;
	out->month = month;
	out->mday = mday;
	out->minute = g_date_time_get_hour(local) * 60 + g_date_time_get_minute(local);
	out->utc_offset = (int)(g_date_time_get_utc_offset(local) / G_TIME_SPAN_SECOND);
	g_date_time_unref(local);

	if (!ymd_to_day(year, month, mday, &out->day))
		return -1;
	out->weekday = rg_cal_weekday(out->day);
	rg_cal_iso_week(out->day, &out->iso_year, &out->iso_week);
	return 0;
}

/* Exactly n ASCII digits at s -> value; false otherwise. */
static bool digits(const char *s, int n, int *value)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*value = v;
	return true;
}

/* "YYYY-MM-DD" at the start of s (no check of what follows). */
static int parse_date_prefix(const char *s, int *y, int *m, int *d)
{
	if (strnlen(s, 10) < 10 || s[4] != '-' || s[7] != '-')
		return -1;
	if (!digits(s, 4, y) || !digits(s + 5, 2, m) || !digits(s + 8, 2, d))
		return -1;
	return 0;
}

int rg_cal_parse_date(const char *s, int32_t *day)
{
	int y, m, d;

	if (!s || parse_date_prefix(s, &y, &m, &d) < 0 || s[10] != '\0')
		return -1;
	if (!ymd_to_day(y, m, d, day))
		return -1;
	return 0;
}

void rg_cal_format_date(int32_t day, char *buf, size_t len)
{
	GDate d;

	if (!buf || len == 0)
		return;
	if (!day_to_gdate(day, &d)) {
		snprintf(buf, len, "(no date)");
		return;
	}
	snprintf(buf, len, "%04u-%02u-%02u", (unsigned)g_date_get_year(&d),
		 (unsigned)g_date_get_month(&d), (unsigned)g_date_get_day(&d));
}

int rg_cal_weekday(int32_t day)
{
	/* 1970-01-01 was a Thursday (4) */
	return (int)floor_mod((int64_t)day + 3, 7) + 1;
}

const char *rg_cal_weekday_name(int weekday)
{
	static const char *const names[] = { "Monday", "Tuesday", "Wednesday", "Thursday",
					     "Friday", "Saturday", "Sunday" };

	if (weekday < 1 || weekday > 7)
		return "?";
	return names[weekday - 1];
}

void rg_cal_iso_week(int32_t day, int *iso_year, int *iso_week)
{
	GDate d;
	int week, year;

	if (!day_to_gdate(day, &d)) {
		*iso_year = 0;
		*iso_week = 0;
		return;
	}
	week = (int)g_date_get_iso8601_week_of_year(&d);
	year = (int)g_date_get_year(&d);
	/* early January may belong to last year's final week, late December
	 * to next year's week 1 */
	if (week >= 52 && g_date_get_month(&d) == G_DATE_JANUARY)
		year--;
	else if (week == 1 && g_date_get_month(&d) == G_DATE_DECEMBER)
		year++;
	*iso_year = year;
	*iso_week = week;
}

int rg_cal_iso_week_monday(int iso_year, int iso_week, int32_t *monday)
{
	int32_t jan4, dec28, week1;
	int y, last_week;

	/* 4 January is always in week 1, 28 December always in the last week */
	if (!ymd_to_day(iso_year, 1, 4, &jan4) || !ymd_to_day(iso_year, 12, 28, &dec28))
		return -1;
	rg_cal_iso_week(dec28, &y, &last_week);
	if (iso_week < 1 || iso_week > last_week)
		return -1;
	week1 = jan4 - (rg_cal_weekday(jan4) - 1);
	*monday = week1 + (iso_week - 1) * 7;
	return 0;
}

int rg_cal_parse_hhmm(const char *s, int *minutes)
{
	int h, m;

	if (!s || strnlen(s, 6) != 5 || s[2] != ':' || !digits(s, 2, &h) || !digits(s + 3, 2, &m))
		return -1;
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	*minutes = h * 60 + m;
	return 0;
}

void rg_cal_format_hhmm(int minutes, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	if (minutes < 0 || minutes > 1440) {
		snprintf(buf, len, "??:??");
		return;
	}
	snprintf(buf, len, "%02d:%02d", minutes / 60, minutes % 60);
}

void rg_cal_format_offset(int utc_offset, char *buf, size_t len)
{
	int a = utc_offset < 0 ? -utc_offset : utc_offset;

	if (!buf || len == 0)
		return;
	if (a % 60)
		snprintf(buf, len, "UTC%c%02d:%02d:%02d", utc_offset < 0 ? '-' : '+', a / 3600,
			 a / 60 % 60, a % 60);
	else
		snprintf(buf, len, "UTC%c%02d:%02d", utc_offset < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

/* "+01:00" style, for messages */
static void format_iso_offset(int utc_offset, char *buf, size_t len)
{
	int a = utc_offset < 0 ? -utc_offset : utc_offset;

	snprintf(buf, len, "%c%02d:%02d", utc_offset < 0 ? '-' : '+', a / 3600, a / 60 % 60);
}

/* Offset after "YYYY-MM-DD HH:MM[:SS]": "" (none), "Z", "+HH:MM", "+HHMM", "+HH". */
static int parse_offset(const char *s, bool *has, int *offset)
{
	int sign, h, m = 0;
	size_t n = strlen(s);

	*has = false;
	if (n == 0)
		return 0;
	*has = true;
	if ((s[0] == 'Z' || s[0] == 'z') && n == 1) {
		*offset = 0;
		return 0;
	}
	if (s[0] != '+' && s[0] != '-')
		return -1;
	sign = s[0] == '-' ? -1 : 1;
	if (!digits(s + 1, 2, &h))
		return -1;
	if (n == 5 && !digits(s + 3, 2, &m))
		return -1;
	if (n == 6 && (s[3] != ':' || !digits(s + 4, 2, &m)))
		return -1;
	if ((n != 3 && n != 5 && n != 6) || h > 23 || m > 59)
		return -1;
	*offset = sign * (h * 3600 + m * 60);
	return 0;
}

static int offset_at(GTimeZone *z, int64_t t)
{
	int interval = g_time_zone_find_interval(z, G_TIME_TYPE_UNIVERSAL, t);

	/* universal times always fall in an interval; never let GLib print */
	if (interval < 0)
		return 0;
	return (int)g_time_zone_get_offset(z, interval);
}

/*
 * All instants whose wall-clock time in z is `wall` (seconds of a local day
 * number times 86400 plus the time of day).  Every offset in force within a
 * day and a bit of `wall` is a candidate; an offset o is real when the zone
 * really uses o at wall - o.  Returns how many (0: skipped, 2: repeated),
 * sorted, at most 2 stored.
 */
static int instants_of_wall(GTimeZone *z, int64_t wall, int64_t inst[2], int off[2])
{
	int64_t found[8];
	int offs[8];
	int n = 0;

	for (int k = -5; k <= 5; k++) {
		int o = offset_at(z, wall + (int64_t)k * 6 * 3600);
		bool dup = false;

		if (offset_at(z, wall - o) != o)
			continue;
		for (int i = 0; i < n; i++)
			dup = dup || found[i] == wall - o;
		if (dup || n == 8)
			continue;
		found[n] = wall - o;
		offs[n++] = o;
	}
	/* sort by instant: the earlier one has the larger offset */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && found[j] < found[j - 1]; j--) {
			int64_t t = found[j];
			int o = offs[j];

			found[j] = found[j - 1];
			offs[j] = offs[j - 1];
			found[j - 1] = t;
			offs[j - 1] = o;
		}
	for (int i = 0; i < n && i < 2; i++) {
		inst[i] = found[i];
		off[i] = offs[i];
	}
	return n;
}

int rg_cal_parse_local(const char *tz, const char *s, int64_t *when, char *err, size_t errlen)
{
	static const char expect[] = "expected YYYY-MM-DD HH:MM[:SS] with an optional offset (Z, +01:00)";
	int y, mo, d, h, mi, sec = 0, offset = 0, n, off[2];
	bool has_sec = false, has_off;
	int32_t day;
	int64_t wall, inst[2];
	const char *p;
	GTimeZone *z;
	char zname[128], shown[32];

	if (!s) {
		set_err(err, errlen, "no time given: %s", expect);
		return -1;
	}
	if (parse_date_prefix(s, &y, &mo, &d) < 0 || (s[10] != ' ' && s[10] != 'T' && s[10] != 't')) {
		set_err(err, errlen, "'%s': %s", s, expect);
		return -1;
	}
	p = s + 11;
	if (strnlen(p, 5) < 5 || p[2] != ':' || !digits(p, 2, &h) || !digits(p + 3, 2, &mi)) {
		set_err(err, errlen, "'%s': %s", s, expect);
		return -1;
	}
	p += 5;
	if (p[0] == ':') {
		if (!digits(p + 1, 2, &sec)) {
			set_err(err, errlen, "'%s': %s", s, expect);
			return -1;
		}
		has_sec = true;
		p += 3;
	}
	if (parse_offset(p, &has_off, &offset) < 0) {
		set_err(err, errlen, "'%s': bad UTC offset '%s' (use Z, +01:00 or -0500)", s, p);
		return -1;
	}
	if (!ymd_to_day(y, mo, d, &day)) {
		set_err(err, errlen, "'%s': %.10s is not a real date", s, s);
		return -1;
	}
	if (h > 23 || mi > 59 || sec > 59) {
		set_err(err, errlen, "'%s': %.*s is not a time of day", s, has_sec ? 8 : 5, s + 11);
		return -1;
	}
	z = zone_new(tz);
	if (!z) {
		set_err(err, errlen, "unknown time zone '%s'", tz);
		return -1;
	}
	wall = (int64_t)day * SECS_PER_DAY + h * 3600 + mi * 60 + sec;
	if (has_off) {
		g_time_zone_unref(z);
		*when = wall - offset;
		return 0;
	}

	n = instants_of_wall(z, wall, inst, off);
	g_time_zone_unref(z);
	if (n == 1) {
		*when = inst[0];
		return 0;
	}
	rg_cal_tz_name(tz, zname, sizeof(zname));
	snprintf(shown, sizeof(shown), "%.10s %.*s", s, has_sec ? 8 : 5, s + 11);
	if (n == 0) {
		set_err(err, errlen, "%s does not exist in %s (clocks go forward)", shown, zname);
	} else {
		char o1[16], o2[16];

		format_iso_offset(off[0], o1, sizeof(o1));
		format_iso_offset(off[1], o2, sizeof(o2));
		set_err(err, errlen, "%s is ambiguous in %s (clocks go back); add an offset such as %s or %s",
			shown, zname, o1, o2);
	}
	return -1;
}

unsigned rg_cal_cycle_week(int32_t cycle_start, int32_t day, unsigned m)
{
	int64_t weeks;

	if (m <= 1)
		return 1;
	weeks = floor_div((int64_t)day - cycle_start, 7);
	return (unsigned)floor_mod(weeks, m) + 1;
}
