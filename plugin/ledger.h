/*
 * ledger.h - the capacity ledger: distinct people admitted per site per
 * site-local day.  Backends: ledger_lmdb.c (embedded default), ledger_ldap.c.
 *
 * A reservation is atomic and idempotent: (site, day, person) is admitted at
 * most once; a second reservation of the same key is a re-entry and uses no
 * place.  RG_LEDGER_ADMITTED is only returned after the admission is durable.
 *
 * Thread-safety: one struct rg_ledger may be used by all threads of a process;
 * several processes may open the same ledger.
 */
#ifndef RG_LEDGER_H
#define RG_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

enum rg_ledger_result {
	RG_LEDGER_ADMITTED = 0, /* new admission, a place was used */
	RG_LEDGER_REENTRY,      /* already admitted that day: no place used */
	RG_LEDGER_FULL,         /* no place left for this person */
	RG_LEDGER_WOULD_ADMIT,  /* dry run: there is a place (nothing written) */
	RG_LEDGER_FAILED,       /* backend error: fail closed */
};

struct rg_reservation {
	const char *site;
	int32_t day;            /* site-local day number */
	const char *person;     /* stable identity (uid, or DN) */
	const char *door;
	const char *rule;
	int64_t when;           /* Unix time of the swipe */
	unsigned capacity;
	unsigned reserved;      /* last `reserved` places are for exempt staff only */
	bool exempt;
	bool dry_run;
};

struct rg_admission {
	char *person;
	char *door;
	char *rule;
	int64_t when;
	bool exempt;
};

struct rg_day_summary {
	unsigned count;          /* distinct people admitted */
	unsigned exempt_count;   /* of those, admitted as exempt */
	struct rg_admission *admissions; /* when requested: sorted by time */
	size_t nadmissions;
};

struct rg_ledger;

/* Open the backend named by cfg->ledger.  The ldap backend connects with
 * rg_config_ledger_connection(cfg): ledger.uri / bind-dn / bind-password-file
 * where set, the directory's settings otherwise. */
int rg_ledger_open(const struct rg_config *cfg, struct rg_ledger **out, char *err, size_t errlen);
void rg_ledger_close(struct rg_ledger *l);

/* Reserve a place.  *occupancy receives the count after the call (or the
 * current count for FULL / REENTRY / WOULD_ADMIT). */
enum rg_ledger_result rg_ledger_reserve(struct rg_ledger *l, const struct rg_reservation *r,
					unsigned *occupancy, char *err, size_t errlen);

/* Day summary for (site, day); with_admissions fills the list. 0 or -1. */
int rg_ledger_day(struct rg_ledger *l, const char *site, int32_t day, bool with_admissions,
		  struct rg_day_summary *out, char *err, size_t errlen);
void rg_day_summary_clear(struct rg_day_summary *s);

/* Remove days older than `today - retain_days` for every site.  Returns the
 * number of site-days removed, or -1. */
long rg_ledger_prune(struct rg_ledger *l, int32_t today, unsigned retain_days, char *err,
		     size_t errlen);

/* Backend vtable (internal). */
struct rg_ledger_ops {
	const char *name;
	enum rg_ledger_result (*reserve)(struct rg_ledger *l, const struct rg_reservation *r,
					 unsigned *occupancy, char *err, size_t errlen);
	int (*day)(struct rg_ledger *l, const char *site, int32_t day, bool with_admissions,
		   struct rg_day_summary *out, char *err, size_t errlen);
	long (*prune)(struct rg_ledger *l, int32_t today, unsigned retain_days, char *err,
		      size_t errlen);
	void (*close)(struct rg_ledger *l);
};

struct rg_ledger {
	const struct rg_ledger_ops *ops;
};

/* Who may take a place is rules.h's rg_rules_place_limit(). */

/* Sort s->admissions by first-entry time, then person (backends use it). */
void rg_ledger_sort_admissions(struct rg_day_summary *s);

/* Backend name ("lmdb", "ldap") for messages and audit records. */
const char *rg_ledger_backend_name(const struct rg_ledger *l);

/* Write "message: detail" into err (no-op when err is NULL or errlen is 0). */
void rg_ledger_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* pthread_atfork support (api.c): hold / release the list of open LMDB
 * environments across fork(). */
void rg_ledger_lmdb_fork_prepare(void);
void rg_ledger_lmdb_fork_release(void);
int rg_ledger_lmdb_open(const struct rg_config *cfg, struct rg_ledger **out, char *err,
			size_t errlen);
/* LMDB only: the environment's last committed transaction id (tests use it
 * to show that a re-entry writes nothing).  0, or -1 for another backend. */
int rg_ledger_lmdb_last_txnid(struct rg_ledger *l, uint64_t *txnid, char *err, size_t errlen);

int rg_ledger_ldap_open(const struct rg_config *cfg, struct rg_ledger **out, char *err,
			size_t errlen);

#endif
