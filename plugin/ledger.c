/*
 * ledger.c - the capacity ledger's front: picks the backend named by
 * ledger.backend and forwards to it.  The backends do the real work in
 * ledger_lmdb.c and ledger_ldap.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ledger.h"

void rg_ledger_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *rg_ledger_backend_name(const struct rg_ledger *l)
{
	return l && l->ops ? l->ops->name : "none";
}

int rg_ledger_open(const struct rg_config *cfg, struct rg_ledger **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!cfg) {
		rg_ledger_err(err, errlen, "ledger: no configuration");
		return -1;
	}
	switch (cfg->ledger.backend) {
	case RG_LEDGER_LMDB:
		return rg_ledger_lmdb_open(cfg, out, err, errlen);
	case RG_LEDGER_LDAP:
		return rg_ledger_ldap_open(cfg, out, err, errlen);
	}
	rg_ledger_err(err, errlen, "ledger: unknown backend %d", (int)cfg->ledger.backend);
	return -1;
}

void rg_ledger_close(struct rg_ledger *l)
{
	if (l)
		l->ops->close(l);
}

static bool reservation_ok(const struct rg_reservation *r, char *err, size_t errlen)
{
	if (!r || !r->site || !*r->site || !r->person || !*r->person) {
		rg_ledger_err(err, errlen, "ledger: reservation without site or person");
		return false;
	}
	return true;
}

enum rg_ledger_result rg_ledger_reserve(struct rg_ledger *l, const struct rg_reservation *r,
					unsigned *occupancy, char *err, size_t errlen)
{
	unsigned dummy;

	if (!occupancy)
		occupancy = &dummy;
	*occupancy = 0;
	if (!l) {
		rg_ledger_err(err, errlen, "ledger: not open");
		return RG_LEDGER_FAILED;
	}
	if (!reservation_ok(r, err, errlen))
		return RG_LEDGER_FAILED;
	return l->ops->reserve(l, r, occupancy, err, errlen);
}

int rg_ledger_day(struct rg_ledger *l, const char *site, int32_t day, bool with_admissions,
		  struct rg_day_summary *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!l) {
		rg_ledger_err(err, errlen, "ledger: not open");
		return -1;
	}
	if (!site || !*site) {
		rg_ledger_err(err, errlen, "ledger: no site given");
		return -1;
	}
	return l->ops->day(l, site, day, with_admissions, out, err, errlen);
}

void rg_day_summary_clear(struct rg_day_summary *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nadmissions; i++) {
		free(s->admissions[i].person);
		free(s->admissions[i].door);
		free(s->admissions[i].rule);
	}
	free(s->admissions);
	memset(s, 0, sizeof(*s));
}

long rg_ledger_prune(struct rg_ledger *l, int32_t today, unsigned retain_days, char *err,
		     size_t errlen)
{
	if (!l) {
		rg_ledger_err(err, errlen, "ledger: not open");
		return -1;
	}
	return l->ops->prune(l, today, retain_days, err, errlen);
}

static int admission_cmp(const void *a, const void *b)
{
	const struct rg_admission *x = a, *y = b;

	if (x->when != y->when)
		return x->when < y->when ? -1 : 1;
	return strcmp(x->person, y->person);
}

void rg_ledger_sort_admissions(struct rg_day_summary *s)
{
	if (s->nadmissions > 1)
		qsort(s->admissions, s->nadmissions, sizeof(s->admissions[0]), admission_cmp);
}
