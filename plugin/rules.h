/*
 * rules.h - pure rota evaluation: config x groups x local time -> verdict.
 *
 * No I/O and no allocation that outlives a call; thread-safe.  The directory
 * layer supplies the person's groups; the ledger decides capacity afterwards.
 */
#ifndef RG_RULES_H
#define RG_RULES_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include "rotagate.h"
#include "config.h"
#include "calendar.h"

/* The groups a person belongs to: DNs (or names, for memberUid groups that
 * are configured by name).  Comparison is case-insensitive and ignores
 * spaces after commas (DNs as returned by the directory vs. as typed). */
struct rg_groups {
	const char *const *names;
	size_t n;
};

bool rg_groups_contains(const struct rg_groups *g, const char *group);

/* Canonical form used for comparison: lower case, no spaces around ',' '=' and '+'.
 * Writes at most len bytes (NUL-terminated); returns 0, or -1 if truncated. */
int rg_group_canon(const char *in, char *out, size_t len);

struct rg_eval {
	enum rotagate_reason reason; /* ROTA_DAY / EXEMPT when admissible, else the denial */
	bool admissible;             /* may proceed to the ledger */
	bool exempt;                 /* may take reserved places */
	const char *rule;            /* borrowed from the config: matched rule name, or NULL.
				      * deny-group: the deny rule; exempt: the exempt rule;
				      * rota-day: the rota; outside-hours: the first rota whose
				      * day matched but not its hours */
	int32_t ledger_day;          /* site-local day the admission counts on: always the
				      * local date of the swipe, also for the after-midnight
				      * part of a night shift (02:00 Thursday counts on Thursday) */
	struct rg_localtime local;   /* the swipe in site-local time */
};

/* Evaluate the site's deny, exempt and rota rules for a person with `groups`
 * swiping at Unix time `when`, in this order:
 *   deny rule member           -> DENY deny-group (beats everything)
 *   exempt rule member         -> admissible, EXEMPT (any day, closed days, any hour)
 *   local date in site->closed -> DENY site-closed
 *   first rota that matches    -> admissible, ROTA_DAY
 *   else OUTSIDE_HOURS if a rota the person is in has rota hours today
 *   (its day matched), else NOT_ON_ROTA_TODAY.
 * When `explain` is not NULL it must hold a NUL-terminated string (normally
 * ""); a header line with the local time and zone, then one line per thing
 * considered (why it did or did not match) and a result line are appended.
 * Output is truncated safely, ending in "...", when the buffer is full.
 * Returns 0, or -1 when nothing can be decided: the site's time zone cannot
 * be loaded (out->reason CONFIG_ERROR) or `when` is outside the years
 * 1..9999 (BAD_INPUT); out->admissible is false then. */
int rg_rules_evaluate(const struct rg_site *site, const struct rg_groups *groups, int64_t when,
		      struct rg_eval *out, char *explain, size_t explain_len);

/* Does rota `r` admit a member at local time `lt`?  (Membership of r->group
 * is the caller's business.)  Reason is ROTA_DAY on a match, else
 * NOT_ON_ROTA_TODAY or OUTSIDE_HOURS.
 * A "rota day" is a day within from/until (inclusive), on one of r->days, in
 * week week_n of the week_m-week cycle from cycle_start (cycle_start
 * RG_NO_DATE with week_m > 1: the cycle counts from Monday 1970-01-05).
 * Hours are wall-clock minutes [from, to).  A shift crossing midnight
 * (to <= from, e.g. 22:00-06:00) belongs to the day it starts: it admits from
 * 22:00 on a rota day until 06:00 the next morning, whatever that next day is.
 * OUTSIDE_HOURS means the rota has hours on this local date (today is a rota
 * day, or a night shift started yesterday) but `lt` is not within them.
 * `why` (may be NULL) receives a short explanation (overwritten, truncated
 * safely). */
enum rotagate_reason rg_rota_matches(const struct rg_rota *r, const struct rg_localtime *lt,
				     char *why, size_t why_len);

/* Reserved places: may one more person take a place when `count` distinct
 * people are already admitted?  Non-exempt people only while
 * count < capacity - reserved, exempt staff while count < capacity.
 * (The ledger enforces this atomically; this is the rule it applies.) */
bool rg_rules_place_available(unsigned count, unsigned capacity, unsigned reserved, bool exempt);

/* The same rule as a limit: a person may take a place while the day's count
 * is below it (the ledgers compare against it inside their transaction). */
unsigned rg_rules_place_limit(unsigned capacity, unsigned reserved, bool exempt);

#endif
