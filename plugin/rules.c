/*
 * rules.c - pure rota evaluation: config x groups x local time -> verdict.
 *
 * Everything here is a function of its arguments: no I/O, no allocation, no
 * global state.  The explanation is written for a person asking "why can't I
 * get in today?", so every check says what it compared.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rules.h"

/* ---- a bounded text builder: never overflows, marks truncation with "..." */

struct sb {
	char *buf;
	size_t len;
	size_t used;
};

static void sb_init(struct sb *b, char *buf, size_t len, bool append)
{
	b->buf = len ? buf : NULL;
	b->len = len;
	b->used = 0;
	if (!b->buf)
		return;
	if (append)
		b->used = strnlen(buf, len);
	if (b->used == len) /* no terminator: start afresh */
		b->used = 0;
	b->buf[b->used] = '\0';
}

static void sb_add(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	size_t avail;
	int n;

	if (!b || !b->buf || b->used + 1 >= b->len)
		return;
	avail = b->len - b->used;
	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->used, avail, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->buf[b->used] = '\0';
		return;
	}
	if ((size_t)n < avail) {
		b->used += (size_t)n;
		return;
	}
	b->used = b->len - 1;
	if (b->len >= 4)
		memcpy(b->buf + b->len - 4, "...", 4);
}

/* ---- group names */

/* Reads a group DN or name in canonical form, one byte at a time: ASCII
 * lower case, no spaces at either end or around an unescaped ',', '=' or
 * '+'.  A backslash escape is kept with the byte it escapes. */
struct canon_reader {
	const char *p;
	bool after_sep; /* at the start, or just after a separator */
	bool escaped;   /* the next byte is escaped */
};

static bool is_sep(char c)
{
	return c == ',' || c == '=' || c == '+';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* next canonical byte, or -1 at the end */
static int canon_next(struct canon_reader *r)
{
	for (;;) {
		char c = *r->p;

		if (c == '\0')
			return -1;
		r->p++;
		if (r->escaped) {
			r->escaped = false;
			r->after_sep = false;
			return (unsigned char)ascii_lower(c);
		}
		if (c == '\\') {
			r->escaped = true;
			r->after_sep = false;
			return '\\';
		}
		if (is_sep(c)) {
			r->after_sep = true;
			return c;
		}
		if (is_space(c)) {
			const char *q = r->p;

			while (is_space(*q))
				q++;
			if (r->after_sep || *q == '\0' || is_sep(*q)) {
				r->p = q;
				continue;
			}
			return ' ';
		}
		r->after_sep = false;
		return (unsigned char)ascii_lower(c);
	}
}

int rg_group_canon(const char *in, char *out, size_t len)
{
	struct canon_reader r = { .p = in ? in : "", .after_sep = true };
	size_t n = 0;
	int c;

	if (!out || len == 0)
		return -1;
	while ((c = canon_next(&r)) >= 0) {
		if (n + 1 >= len) {
			out[n] = '\0';
			return -1;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

static bool group_equal(const char *a, const char *b)
{
	struct canon_reader ra = { .p = a, .after_sep = true };
	struct canon_reader rb = { .p = b, .after_sep = true };
	int ca, cb;

	do {
		ca = canon_next(&ra);
		cb = canon_next(&rb);
		if (ca != cb)
			return false;
	} while (ca >= 0);
	return true;
}

bool rg_groups_contains(const struct rg_groups *g, const char *group)
{
	if (!g || !group || !g->names)
		return false;
	for (size_t i = 0; i < g->n; i++)
		if (g->names[i] && group_equal(g->names[i], group))
			return true;
	return false;
}

/* ---- rota days and hours */

static const char *reason_word(enum rotagate_reason r)
{
	switch (r) {
	case ROTAGATE_R_ROTA_DAY: return "rota-day";
	case ROTAGATE_R_EXEMPT: return "exempt";
	case ROTAGATE_R_NOT_ON_ROTA_TODAY: return "not-on-rota-today";
	case ROTAGATE_R_OUTSIDE_HOURS: return "outside-hours";
	case ROTAGATE_R_SITE_CLOSED: return "site-closed";
	case ROTAGATE_R_DENY_GROUP: return "deny-group";
	default: return "?";
	}
}

/* 1970-01-05, a Monday: where an unanchored multi-week cycle counts from */
#define RG_DEFAULT_CYCLE_START 4

static void day_list(unsigned days, char *buf, size_t len)
{
	static const char *const abbr[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
	struct sb b;

	sb_init(&b, buf, len, false);
	for (int i = 0; i < 7; i++)
		if (days & (RG_DAY_MON << i))
			sb_add(&b, "%s%s", b.used ? ", " : "", abbr[i]);
	if (!b.used)
		sb_add(&b, "no days");
}

/* Is `day` a rota day of r (weekday, week of cycle, validity window)?
 * Says why on `why` (may be NULL). */
static bool rota_day(const struct rg_rota *r, int32_t day, struct sb *why)
{
	int wd = rg_cal_weekday(day);
	char d[16], lim[16];
	bool ok = true;

	if (r->days & (RG_DAY_MON << (wd - 1))) {
		sb_add(why, "%s is a rota day", rg_cal_weekday_name(wd));
	} else {
		char list[64];

		day_list(r->days, list, sizeof(list));
		sb_add(why, "%s is not a rota day (%s)", rg_cal_weekday_name(wd), list);
		ok = false;
	}

	if (r->week_m > 1) {
		int32_t start = r->cycle_start == RG_NO_DATE ? RG_DEFAULT_CYCLE_START : r->cycle_start;
		unsigned w = rg_cal_cycle_week(start, day, r->week_m);

		rg_cal_format_date(start, d, sizeof(d));
		if (w == r->week_n) {
			sb_add(why, "; week %u of %u (cycle from %s)", w, r->week_m, d);
		} else {
			sb_add(why, "; week %u of %u (cycle from %s) is not week %u", w, r->week_m, d,
			       r->week_n);
			ok = false;
		}
	}

	rg_cal_format_date(day, d, sizeof(d));
	if (r->from != RG_NO_DATE && day < r->from) {
		rg_cal_format_date(r->from, lim, sizeof(lim));
		sb_add(why, "; %s is before the rota starts on %s", d, lim);
		ok = false;
	} else if (r->until != RG_NO_DATE && day > r->until) {
		rg_cal_format_date(r->until, lim, sizeof(lim));
		sb_add(why, "; %s is after the rota ended on %s", d, lim);
		ok = false;
	} else if (r->from != RG_NO_DATE && r->until != RG_NO_DATE) {
		char u[16];

		rg_cal_format_date(r->from, lim, sizeof(lim));
		rg_cal_format_date(r->until, u, sizeof(u));
		sb_add(why, "; %s is within the rota's dates %s to %s", d, lim, u);
	} else if (r->from != RG_NO_DATE) {
		rg_cal_format_date(r->from, lim, sizeof(lim));
		sb_add(why, "; %s is on or after the rota's start %s", d, lim);
	} else if (r->until != RG_NO_DATE) {
		rg_cal_format_date(r->until, lim, sizeof(lim));
		sb_add(why, "; %s is on or before the rota's end %s", d, lim);
	}
	return ok;
}

static enum rotagate_reason rota_day_shift(const struct rg_rota *r, const struct rg_localtime *lt,
					   struct sb *why)
{
	char now[8], from[8], to[8];

	rg_cal_format_hhmm(lt->minute, now, sizeof(now));
	rg_cal_format_hhmm(r->hours_from, from, sizeof(from));
	rg_cal_format_hhmm(r->hours_to, to, sizeof(to));

	if (!rota_day(r, lt->day, why)) {
		sb_add(why, " -> no match");
		return ROTAGATE_R_NOT_ON_ROTA_TODAY;
	}
	if (lt->minute >= r->hours_from && lt->minute < r->hours_to) {
		sb_add(why, "; %s is within %s-%s -> match", now, from, to);
		return ROTAGATE_R_ROTA_DAY;
	}
	sb_add(why, "; %s is outside %s-%s -> outside hours", now, from, to);
	return ROTAGATE_R_OUTSIDE_HOURS;
}

/* hours_to <= hours_from: the shift belongs to the day it starts on */
static enum rotagate_reason rota_night_shift(const struct rg_rota *r, const struct rg_localtime *lt,
					     struct sb *why)
{
	char now[8], from[8], to[8], yd[16];
	int32_t yesterday = lt->day - 1;
	const char *yname = rg_cal_weekday_name(rg_cal_weekday(yesterday));
	bool today_ok, yday_ok;

	rg_cal_format_hhmm(lt->minute, now, sizeof(now));
	rg_cal_format_hhmm(r->hours_from, from, sizeof(from));
	rg_cal_format_hhmm(r->hours_to, to, sizeof(to));
	rg_cal_format_date(yesterday, yd, sizeof(yd));

	sb_add(why, "night shift %s-%s; ", from, to);
	today_ok = rota_day(r, lt->day, why);
	if (today_ok && lt->minute >= r->hours_from) {
		sb_add(why, "; %s is within the shift that starts at %s today -> match", now, from);
		return ROTAGATE_R_ROTA_DAY;
	}

	if (lt->minute < r->hours_to) {
		sb_add(why, "; %s belongs to the shift from %s %s: ", now, yname, yd);
		yday_ok = rota_day(r, yesterday, why);
		if (yday_ok) {
			sb_add(why, "; it runs until %s -> match", to);
			return ROTAGATE_R_ROTA_DAY;
		}
		if (today_ok) {
			sb_add(why, "; today's shift starts at %s -> outside hours", from);
			return ROTAGATE_R_OUTSIDE_HOURS;
		}
		sb_add(why, " -> no match");
		return ROTAGATE_R_NOT_ON_ROTA_TODAY;
	}

	if (today_ok) {
		sb_add(why, "; %s is outside %s-%s -> outside hours", now, from, to);
		return ROTAGATE_R_OUTSIDE_HOURS;
	}
	yday_ok = rota_day(r, yesterday, NULL);
	if (yday_ok) {
		sb_add(why, "; the shift from %s %s ended at %s -> outside hours", yname, yd, to);
		return ROTAGATE_R_OUTSIDE_HOURS;
	}
	sb_add(why, " -> no match");
	return ROTAGATE_R_NOT_ON_ROTA_TODAY;
}

static enum rotagate_reason rota_explain(const struct rg_rota *r, const struct rg_localtime *lt,
					 struct sb *why)
{
	if (r->hours_from < 0) {
		if (!rota_day(r, lt->day, why)) {
			sb_add(why, " -> no match");
			return ROTAGATE_R_NOT_ON_ROTA_TODAY;
		}
		sb_add(why, "; all day -> match");
		return ROTAGATE_R_ROTA_DAY;
	}
	if (r->hours_to > r->hours_from)
		return rota_day_shift(r, lt, why);
	return rota_night_shift(r, lt, why);
}

enum rotagate_reason rg_rota_matches(const struct rg_rota *r, const struct rg_localtime *lt,
				     char *why, size_t why_len)
{
	struct sb b;

	sb_init(&b, why, why_len, false);
	return rota_explain(r, lt, &b);
}

unsigned rg_rules_place_limit(unsigned capacity, unsigned reserved, bool exempt)
{
	if (exempt)
		return capacity;
	return capacity > reserved ? capacity - reserved : 0;
}

bool rg_rules_place_available(unsigned count, unsigned capacity, unsigned reserved, bool exempt)
{
	return count < rg_rules_place_limit(capacity, reserved, exempt);
}

/* ---- the whole evaluation */

/* rule names and groups come from a validated config; be safe anyway */
static const char *nz(const char *s)
{
	return s ? s : "";
}

static bool site_closed_on(const struct rg_site *site, int32_t day)
{
	for (size_t i = 0; i < site->nclosed; i++)
		if (site->closed[i] == day)
			return true;
	return false;
}

/* Is `lt` in the after-midnight part of a night shift that started the day before? */
static bool from_previous_day(const struct rg_rota *r, const struct rg_localtime *lt)
{
	return r->hours_from >= 0 && r->hours_to <= r->hours_from && lt->minute < r->hours_to;
}

static void explain_header(struct sb *ex, const struct rg_site *site, const struct rg_localtime *lt)
{
	char d[16], hm[8], zone[128], off[24];

	rg_cal_format_date(lt->day, d, sizeof(d));
	rg_cal_format_hhmm(lt->minute, hm, sizeof(hm));
	rg_cal_tz_name(site->timezone, zone, sizeof(zone));
	rg_cal_format_offset(lt->utc_offset, off, sizeof(off));
	sb_add(ex, "%s %s %s (%s), %s, ISO week %04d-W%02d, site '%s'\n", d, hm, zone, off,
	       rg_cal_weekday_name(lt->weekday), lt->iso_year, lt->iso_week,
	       site->name ? site->name : "");
}

static void conclude(struct rg_eval *out, enum rotagate_reason reason, const char *rule,
		     struct sb *ex)
{
	char d[16];

	out->reason = reason;
	out->rule = rule;
	out->admissible = reason == ROTAGATE_R_ROTA_DAY || reason == ROTAGATE_R_EXEMPT;
	out->exempt = reason == ROTAGATE_R_EXEMPT;
	rg_cal_format_date(out->ledger_day, d, sizeof(d));
	if (out->admissible)
		sb_add(ex, "result: admissible (%s, rule '%s'), counts on %s; capacity is checked next\n",
		       reason_word(reason), rule ? rule : "", d);
	else if (rule)
		sb_add(ex, "result: DENY %s (rule '%s')\n", reason_word(reason), rule);
	else
		sb_add(ex, "result: DENY %s\n", reason_word(reason));
}

int rg_rules_evaluate(const struct rg_site *site, const struct rg_groups *groups, int64_t when,
		      struct rg_eval *out, char *explain, size_t explain_len)
{
	static const struct rg_groups none = { NULL, 0 };
	const struct rg_rota *outside = NULL;
	struct sb ex;
	char d[16];
	bool closed;

	sb_init(&ex, explain, explain_len, true);
	memset(out, 0, sizeof(*out));
	out->ledger_day = RG_NO_DATE;
	if (!groups)
		groups = &none;

	if (rg_cal_localize(site->timezone, when, &out->local) < 0) {
		if (!rg_cal_tz_valid(site->timezone)) {
			out->reason = ROTAGATE_R_CONFIG_ERROR;
			sb_add(&ex, "site '%s': unknown time zone '%s'\n", nz(site->name),
			       site->timezone ? site->timezone : "(local)");
		} else {
			out->reason = ROTAGATE_R_BAD_INPUT;
			sb_add(&ex, "Unix time %lld is outside the years 1..9999\n", (long long)when);
		}
		return -1;
	}
	out->ledger_day = out->local.day;
	explain_header(&ex, site, &out->local);

	for (size_t i = 0; i < site->ndeny; i++) {
		const struct rg_group_rule *g = &site->deny[i];

		if (rg_groups_contains(groups, g->group)) {
			sb_add(&ex, "deny '%s': member -> denied whatever else applies\n", nz(g->name));
			conclude(out, ROTAGATE_R_DENY_GROUP, g->name, &ex);
			return 0;
		}
		sb_add(&ex, "deny '%s': not a member\n", nz(g->name));
	}

	rg_cal_format_date(out->local.day, d, sizeof(d));
	closed = site_closed_on(site, out->local.day);
	for (size_t i = 0; i < site->nexempt; i++) {
		const struct rg_group_rule *g = &site->exempt[i];

		if (rg_groups_contains(groups, g->group)) {
			sb_add(&ex, "exempt '%s': member -> any day, any hour, reserved places too\n", nz(g->name));
			if (closed)
				sb_add(&ex, "site closed on %s, but exempt staff may enter\n", d);
			conclude(out, ROTAGATE_R_EXEMPT, g->name, &ex);
			return 0;
		}
		sb_add(&ex, "exempt '%s': not a member of %s\n", nz(g->name), nz(g->group));
	}

	if (closed) {
		sb_add(&ex, "site closed on %s\n", d);
		conclude(out, ROTAGATE_R_SITE_CLOSED, NULL, &ex);
		return 0;
	}
	if (site->nclosed)
		sb_add(&ex, "site open on %s (not one of its %zu closed days)\n", d, site->nclosed);

	if (site->nrotas == 0)
		sb_add(&ex, "site has no rota rules\n");
	for (size_t i = 0; i < site->nrotas; i++) {
		const struct rg_rota *r = &site->rotas[i];
		enum rotagate_reason res;

		if (!rg_groups_contains(groups, r->group)) {
			sb_add(&ex, "rota '%s': not a member of %s\n", nz(r->name), nz(r->group));
			continue;
		}
		sb_add(&ex, "rota '%s': member; ", nz(r->name));
		res = rota_explain(r, &out->local, &ex);
		if (res == ROTAGATE_R_ROTA_DAY && from_previous_day(r, &out->local) &&
		    site_closed_on(site, out->local.day - 1)) {
			/* a closure covers the whole shift that starts on that day */
			sb_add(&ex, "; but that shift starts on a closed day -> no match");
			res = ROTAGATE_R_NOT_ON_ROTA_TODAY;
		}
		sb_add(&ex, "\n");
		if (res == ROTAGATE_R_ROTA_DAY) {
			conclude(out, ROTAGATE_R_ROTA_DAY, r->name, &ex);
			return 0;
		}
		if (res == ROTAGATE_R_OUTSIDE_HOURS && !outside)
			outside = r;
	}

	if (outside)
		conclude(out, ROTAGATE_R_OUTSIDE_HOURS, outside->name, &ex);
	else
		conclude(out, ROTAGATE_R_NOT_ON_ROTA_TODAY, NULL, &ex);
	return 0;
}
