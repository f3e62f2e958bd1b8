/*
 * rotagate.h - public C API of pam_rotagate.so
 *
 * A door controller asks one question: may this badge holder enter through
 * this door at this moment?  rotagate answers GRANT, DENY or ERROR with a
 * stable reason code, and writes an audit record for every answer.
 *
 * Two ways in:
 *   - link against the symbols below (they are exported by pam_rotagate.so);
 *   - dlopen("pam_rotagate.so") and call rotagate_plugin_v1(), which returns
 *     a table of the same functions with an ABI version.
 *
 * Thread-safety: a handle may be shared by any number of threads; each call
 * is independent.  Several processes may open the same configuration: the
 * capacity ledger is shared between them.
 *
 * Failure is closed: ERROR is never a reason to open a door.
 */
#ifndef ROTAGATE_H
#define ROTAGATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ROTAGATE_ABI_VERSION 1

enum rotagate_verdict {
	ROTAGATE_GRANT = 0,
	ROTAGATE_DENY = 1,
	ROTAGATE_ERROR = 2,
};

/* Stable reason codes; rotagate_reason_name() gives the audit spelling.
 * New codes are only ever appended. */
enum rotagate_reason {
	ROTAGATE_R_NONE = 0,
	/* grants */
	ROTAGATE_R_ROTA_DAY,          /* "rota-day" */
	ROTAGATE_R_EXEMPT,            /* "exempt" */
	ROTAGATE_R_REENTRY,           /* "re-entry" */
	/* denials */
	ROTAGATE_R_NOT_ON_ROTA_TODAY, /* "not-on-rota-today" */
	ROTAGATE_R_OUTSIDE_HOURS,     /* "outside-hours" */
	ROTAGATE_R_SITE_CLOSED,       /* "site-closed" */
	ROTAGATE_R_CAPACITY_FULL,     /* "capacity-full" */
	ROTAGATE_R_DENY_GROUP,        /* "deny-group" */
	ROTAGATE_R_UNKNOWN_PERSON,    /* "unknown-person" */
	ROTAGATE_R_UNKNOWN_DOOR,      /* "unknown-door" */
	ROTAGATE_R_BAD_INPUT,         /* "bad-input" */
	/* errors */
	ROTAGATE_R_DIRECTORY_UNAVAILABLE, /* "directory-unavailable" */
	ROTAGATE_R_LEDGER_UNAVAILABLE,    /* "ledger-unavailable" */
	ROTAGATE_R_CONFIG_ERROR,          /* "config-error" */
	ROTAGATE_R_INTERNAL_ERROR,        /* "internal-error" */
	ROTAGATE_R__COUNT
};

/* request flags */
#define ROTAGATE_DRY_RUN 0x1u  /* evaluate everything, reserve nothing */
#define ROTAGATE_EXPLAIN 0x2u  /* fill rotagate_decision.explain */

#define ROTAGATE_NAME_MAX 128     /* site, rule, door and user fields */
#define ROTAGATE_EXPLAIN_MAX 4096

struct rotagate_request {
	const char *principal; /* PAM user: uid, or badge number with badge-attribute */
	const char *door;      /* door name as configured in a site's doors list */
	int64_t when;          /* Unix time of the swipe; 0 = now */
	unsigned flags;        /* ROTAGATE_DRY_RUN | ROTAGATE_EXPLAIN */
};

struct rotagate_decision {
	enum rotagate_verdict verdict;
	enum rotagate_reason reason;
	char site[ROTAGATE_NAME_MAX];  /* "" when no site was found */
	char rule[ROTAGATE_NAME_MAX];  /* matching rota/exempt rule, "" if none */
	char local_date[16];           /* site-local date the decision counted on */
	unsigned occupancy;            /* distinct people admitted that day, after this decision */
	unsigned capacity;             /* the site's capacity */
	int degraded;                  /* 1: decided from cached data, directory down */
	int64_t data_age;              /* seconds since the membership data was fetched */
	int64_t latency_us;            /* time spent in rotagate_decide */
	char config_sha[65];           /* SHA-256 of the config that decided */
	char explain[ROTAGATE_EXPLAIN_MAX]; /* with ROTAGATE_EXPLAIN: human-readable reasoning */
};

struct rotagate;

/* Open the configuration at conf_path (NULL = the compiled-in default).
 * On failure returns -1 and writes "file:line: message" into errbuf. */
int rotagate_open(const char *conf_path, struct rotagate **out, char *errbuf, size_t errlen);

/* Decide one request.  Always fills *dec and always writes an audit record.
 * Returns dec->verdict. */
enum rotagate_verdict rotagate_decide(struct rotagate *h, const struct rotagate_request *req,
				      struct rotagate_decision *dec);

/* "rota-day", "capacity-full", ...; "unknown" for out-of-range values. */
const char *rotagate_reason_name(enum rotagate_reason reason);

/* "GRANT", "DENY", "ERROR" */
const char *rotagate_verdict_name(enum rotagate_verdict verdict);

void rotagate_close(struct rotagate *h);

/* For controllers that dlopen the module. */
struct rotagate_plugin_v1 {
	unsigned abi_version;  /* ROTAGATE_ABI_VERSION */
	size_t decision_size;  /* sizeof(struct rotagate_decision) */
	int (*open)(const char *conf_path, struct rotagate **out, char *errbuf, size_t errlen);
	enum rotagate_verdict (*decide)(struct rotagate *h, const struct rotagate_request *req,
					struct rotagate_decision *dec);
	const char *(*reason_name)(enum rotagate_reason reason);
	const char *(*verdict_name)(enum rotagate_verdict verdict);
	void (*close)(struct rotagate *h);
};

const struct rotagate_plugin_v1 *rotagate_plugin_v1(void);

#ifdef __cplusplus
}
#endif
#endif /* ROTAGATE_H */
