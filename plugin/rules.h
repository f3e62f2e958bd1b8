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
	const char *rule;            /* borrowed from the config: matched rule name, or NULL */
	int32_t ledger_day;          /* site-local day the admission counts on */
	struct rg_localtime local;   /* the swipe in site-local time */
};

/* Evaluate the site's deny, exempt and rota rules for a person with `groups`
 * swiping at Unix time `when`.  When `explain` is not NULL, appends a
 * human-readable line per rule considered (why it did or did not match).
 * Returns 0, or -1 if the site's time zone cannot be loaded. */
int rg_rules_evaluate(const struct rg_site *site, const struct rg_groups *groups, int64_t when,
		      struct rg_eval *out, char *explain, size_t explain_len);

/* Does rota `r` admit someone at local time `lt`?  Reason is ROTA_DAY on a
 * match, else NOT_ON_ROTA_TODAY or OUTSIDE_HOURS.  Handles shifts crossing
 * midnight (a shift starting on a rota day runs into the next morning).
 * `why` (may be NULL) receives a short explanation. */
enum rotagate_reason rg_rota_matches(const struct rg_rota *r, const struct rg_localtime *lt,
				     char *why, size_t why_len);

#endif
