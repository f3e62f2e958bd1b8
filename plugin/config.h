/*
 * config.h - the libconfuse schema of rotagate.conf, validated into an
 * immutable struct rg_config.
 *
 * Ownership: rg_config_load() returns a struct the caller frees with
 * rg_config_free().  A loaded config is never modified afterwards, so it may
 * be read from any number of threads without a lock; the api layer swaps the
 * pointer (refcounted) on reload.
 *
 * Thread-safety: parsing takes a process-wide mutex (libconfuse's lexer is
 * global and may exit() on concurrent use).  No output is printed: errors
 * come back as "file:line: message" in the caller's buffer, with the real
 * line number (libconfuse 3.3 counts comment lines twice; we compensate).
 *
 * Dates are "day numbers": days since 1970-01-01 of a civil (local) date.
 * Times of day are minutes since local midnight.
 */
#ifndef RG_CONFIG_H
#define RG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum rg_membership { RG_MEMBER_MEMBER, RG_MEMBER_UNIQUEMEMBER, RG_MEMBER_MEMBERUID, RG_MEMBER_MEMBEROF };
enum rg_tls { RG_TLS_STARTTLS, RG_TLS_NONE };
enum rg_tls_require { RG_TLS_DEMAND, RG_TLS_NEVER };
enum rg_lookup { RG_LOOKUP_LIVE, RG_LOOKUP_SNAPSHOT };
enum rg_ledger_backend { RG_LEDGER_LMDB, RG_LEDGER_LDAP };
enum rg_audit_format { RG_AUDIT_RFC3164, RG_AUDIT_RFC5424 };
enum rg_health_reasons { RG_HEALTH_NEUTRAL, RG_HEALTH_EXPLICIT };
enum rg_on_dir_failure { RG_ONFAIL_CACHED, RG_ONFAIL_DENY };

#define RG_DAY_MON 0x01u  /* bit (weekday-1), weekday 1 = Monday ... 7 = Sunday */
#define RG_NO_DATE INT32_MIN

struct rg_directory_cfg {
	char *uri;                /* space-separated list, tried in order */
	char *base;
	char *bind_dn;            /* NULL: SASL EXTERNAL (ldapi) or anonymous */
	char *bind_password_file; /* NULL when bind_dn is NULL */
	bool password_file_check; /* false only via the test-only override option */
	char *user_filter;        /* contains %u */
	char *badge_attribute;    /* NULL when unset */
	enum rg_membership membership;
	unsigned nested_groups;   /* max depth followed, 0 = none */
	unsigned timeout;         /* seconds */
	enum rg_tls tls;
	char *tls_ca_file;        /* NULL = system default */
	enum rg_tls_require tls_require_cert;
	bool allow_insecure_bind;
	enum rg_lookup lookup;
	unsigned cache_ttl;       /* seconds */
	unsigned offline_max_age; /* seconds */
};

struct rg_ledger_cfg {
	enum rg_ledger_backend backend;
	char *path;               /* lmdb directory (also holds the membership snapshot) */
	char *ldap_base;          /* ldap backend */
	char *uri;                /* ldap backend; NULL: directory.uri */
	char *bind_dn;            /* ldap backend; NULL (with bind_password_file NULL): the directory's */
	char *bind_password_file; /* set exactly when bind_dn is */
	unsigned retain_days;
	size_t map_size;          /* bytes; lmdb map size */
};

struct rg_audit_cfg {
	char *target;             /* "syslog" | "unix:/path" | "tcp:host:port" */
	enum rg_audit_format format;
	int facility;             /* LOG_AUTHPRIV etc. (already shifted, as in <syslog.h>) */
	char *ident;
	char *spool;              /* directory; NULL = no spool */
	enum rg_health_reasons health_reasons;
};

struct rg_rota {
	char *name;
	char *group;              /* DN (or group name for memberUid with non-DN) */
	unsigned days;            /* RG_DAY_* bit mask; 0 = never */
	unsigned week_n, week_m;  /* week N of an M-week cycle; 1/1 = every week */
	int32_t cycle_start;      /* day number of a Monday; RG_NO_DATE when weeks is 1/1 */
	int hours_from, hours_to; /* minutes; hours_from < 0 = all day; to <= from crosses midnight */
	int32_t from, until;      /* validity window (inclusive); RG_NO_DATE = open */
};

struct rg_group_rule {
	char *name;
	char *group;
};

struct rg_site {
	char *name;
	char *timezone;           /* NULL = system local time */
	unsigned capacity;
	unsigned reserved;        /* last `reserved` places only for exempt staff */
	unsigned weekly_target;   /* percent, for reports */
	char **doors;
	size_t ndoors;
	int32_t *closed;          /* sorted day numbers */
	size_t nclosed;
	enum rg_on_dir_failure on_directory_failure;
	struct rg_rota *rotas;
	size_t nrotas;
	struct rg_group_rule *exempt;
	size_t nexempt;
	struct rg_group_rule *deny;
	size_t ndeny;
};

struct rg_config {
	char *path;
	char sha[65];             /* hex SHA-256 of the file's bytes */
	struct rg_directory_cfg directory;
	struct rg_ledger_cfg ledger;
	struct rg_audit_cfg audit;
	struct rg_site *sites;
	size_t nsites;
};

/* Parse and validate.  0 on success; -1 with "file:line: message" in err. */
int rg_config_load(const char *path, struct rg_config **out, char *err, size_t errlen);

/* The same, and *read_st = fstat() of the file opened, taken before it was
 * read (zeroed when it could not be opened): the identity of exactly the
 * bytes parsed, whatever replaces the file meanwhile. */
struct stat;
int rg_config_load_stat(const char *path, struct rg_config **out, struct stat *read_st, char *err,
			size_t errlen);

/* pthread_atfork support (api.c): hold / release the parser's lock across
 * fork() so that a child never inherits it locked by a thread it lacks. */
void rg_config_fork_prepare(void);
void rg_config_fork_release(void);

/* Same, from a string (tests); `name` is used in messages. */
int rg_config_load_string(const char *name, const char *text, struct rg_config **out, char *err,
			  size_t errlen);

void rg_config_free(struct rg_config *cfg);

/* The site that owns `door`, or NULL. */
const struct rg_site *rg_config_site_for_door(const struct rg_config *cfg, const char *door);

const struct rg_site *rg_config_site(const struct rg_config *cfg, const char *name);

/* Every distinct group DN named by any rota/exempt/deny rule (for sync).
 * Returns a NULL-terminated array of borrowed pointers; free the array only. */
const char **rg_config_all_groups(const struct rg_config *cfg, size_t *n);

/* The connection settings of the LDAP ledger: cfg->directory, with uri
 * replaced by ledger.uri where set, and then bind-dn + bind-password-file
 * ALWAYS by ledger.bind-dn + ledger.bind-password-file (NULL: SASL EXTERNAL
 * over ldapi://, the only case the loader accepts without ledger.bind-dn):
 * the directory's credentials are never sent to another server.  Without
 * ledger.uri, ledger.bind-dn + ledger.bind-password-file replace the pair
 * where set.  The ledger uses only the FIRST URI of uri (ledger.uri names
 * exactly one).  *out borrows cfg's strings: valid while cfg is; do not
 * free them. */
void rg_config_ledger_connection(const struct rg_config *cfg, struct rg_directory_cfg *out);

/* Read the bind password from d->bind_password_file into buf (NUL-terminated;
 * one trailing newline stripped).  The file must be a regular file not
 * accessible by group or others and, unless d->password_file_check is false
 * (tests only), owned by root.  An empty password is refused.  0 on success;
 * -1 with a message in err (never containing the password; buf is zeroed). */
int rg_config_read_password(const struct rg_directory_cfg *d, char *buf, size_t len, char *err,
			    size_t errlen);

#endif
