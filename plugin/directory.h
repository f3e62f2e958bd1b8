/*
 * directory.h - LDAP sessions, failover, membership resolution, escaping.
 *
 * One struct rg_dir is one LDAP session and belongs to one thread at a time
 * (libldap handles are never shared between threads).  The api layer keeps a
 * pool: a thread checks a session out, uses it, checks it back in.
 *
 * No global libldap option is changed; every option is set on the handle.
 * Nothing is printed; the bind password is never put into a message.
 * SIGPIPE raised by a write to a server that went away is blocked in the
 * calling thread for the duration of each call and discarded, so a host
 * process that does not ignore SIGPIPE is not killed by it.
 *
 * Connections
 *   The `uri` list is tried in order.  Each URI gets its own LDAP handle with
 *   explicit options: protocol 3, referrals off, restart on EINTR, deref
 *   never, network timeout = operation time limit = `timeout`, and every
 *   ldap_result() wait bounded by `timeout`; a TLS handshake (ldaps:// or
 *   StartTLS) is bounded as a whole by `timeout` (one deadline, however
 *   slowly the server dribbles bytes).  A server that does not answer
 *   in time is abandoned (abandon + unbind) and the next URI is tried.
 *   A URI that failed is skipped for a backoff period (1 s, doubling to 60 s;
 *   reset by success).  When every URI is in backoff a call fails at once with
 *   RG_DIR_UNAVAILABLE instead of making the person at the door wait.
 *   While connected to a later URI, the earlier (preferred) ones are retried
 *   at most every 30 s; the session moves back as soon as one connects.
 *   A connection that was reused and fails is reconnected once without
 *   penalty (servers close idle connections).
 *
 * Security
 *   ldaps:// is TLS; ldap:// with tls = starttls must complete StartTLS (no
 *   fallback to plain text).  tls-ca-file and tls-require-cert are set on
 *   the handle (LDAP_OPT_X_TLS_NEWCTX); tls-require-cert = never is refused
 *   except for ldapi:// and loopback hosts.  tls-ca-file unset means
 *   libldap's defaults (ldap.conf TLS_CACERT).  TLS 1.2 or later only:
 *   the negotiated version is checked after every handshake (see
 *   rg_dir_tls_version_ok) and an older one fails the connection.
 *   Binding:  bind-dn set      -> simple bind with bind-password-file
 *                                 (empty password refused);
 *             no bind-dn, ldapi:// -> SASL EXTERNAL (peer credentials);
 *             no bind-dn, otherwise -> anonymous (no bind request).
 *   A connection that is neither TLS nor ldapi:// is refused for any bind,
 *   simple or anonymous, unless allow-insecure-bind = true: without TLS both
 *   the password and the answers (which open doors) are exposed.
 *
 * Lookup (principal -> person + groups)
 *   The person is searched under `base` (subtree) with user-filter, or, when
 *   badge-attribute is set, with "(&(objectClass=*)(ATTR=%u))" (user-filter is
 *   then not used); %u is the escaped principal.  Exactly one entry must
 *   match: none is RG_DIR_NOT_FOUND (only on a successful, complete search),
 *   more than one is RG_DIR_AMBIGUOUS (never pick one).  The person's uid is read
 *   from the entry's `uid` (in badge mode it must exist).
 *   Searches ("round trips") per lookup:
 *     member        2: person; groups (member=DN)
 *     uniqueMember  2: person; groups (uniqueMember=DN)
 *     memberUid     2: person; groups (&(objectClass=posixGroup)(memberUid=uid))
 *     memberOf      1: person with its memberOf values
 *   plus, with nested-groups = N, at most N more: each level is one search
 *   (|(A=g1)(A=g2)...) over the groups found at the previous level (A is
 *   uniqueMember for uniqueMember, member for all other models), split in
 *   chunks of 200 DNs.  Groups already seen are not followed again (cycles);
 *   the walk stops early when a level finds nothing new.
 *   Any incomplete answer (size/time limit, referral) is an error: a partial
 *   group list could hide a deny group.
 *
 * Health (directory.down / directory.up audit records)
 *   RG_DIR_UNAVAILABLE means "down"; RG_DIR_OK and RG_DIR_NOT_FOUND mean "up";
 *   BAD_INPUT and ERROR say nothing about reachability.  rg_dir_is_up()
 *   gives the same for the last call on a session; the api layer keeps one
 *   flag per handle and emits a record when it flips.
 */
#ifndef RG_DIRECTORY_H
#define RG_DIRECTORY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <ldap.h>
#include "config.h"

#define RG_DIR_PRINCIPAL_MAX 256 /* bytes */

enum rg_dir_status {
	RG_DIR_OK = 0,
	RG_DIR_NOT_FOUND,    /* no such person (definitive answer from a server) */
	RG_DIR_UNAVAILABLE,  /* no server answered usefully within the timeouts */
	RG_DIR_BAD_INPUT,    /* principal refused before reaching LDAP */
	RG_DIR_ERROR,        /* configuration / protocol error */
	RG_DIR_AMBIGUOUS,    /* the name matches more than one entry: never pick one */
};

/* "ok", "not-found", "unavailable", "bad-input", "error", "ambiguous" */
const char *rg_dir_status_name(enum rg_dir_status st);

/* A person as the directory knows them.  All strings are owned by the struct
 * (plain malloc; rg_person_free() frees them and the struct). */
struct rg_person {
	char *principal;     /* the name asked for */
	char *dn;
	char *uid;
	char **groups;       /* group DNs the person belongs to (all, not only configured ones) */
	size_t ngroups;
	int64_t fetched;     /* Unix time the answer came from the directory */
};

void rg_person_free(struct rg_person *p);            /* NULL is fine */
struct rg_person *rg_person_dup(const struct rg_person *p); /* NULL on allocation failure */

/* Is `group_dn` among p->groups?  DNs compared case-insensitively (ASCII). */
bool rg_person_in_group(const struct rg_person *p, const char *group_dn);

struct rg_dir;

/* Create a session for `cfg` (a deep copy is kept: the config may be freed
 * afterwards).  No connection yet; connects lazily.  NULL on allocation
 * failure or when cfg->uri names no URI. */
struct rg_dir *rg_dir_new(const struct rg_directory_cfg *cfg);

/* The same, on a shared target (see rg_dir_target_new below): its URIs and
 * connection settings are used (cfg's must match; cfg still supplies base,
 * filters, membership), and so is its backoff state, so once one session
 * found a server down no other session on the target waits for it again.
 * Build the target from the same cfg.  The target is not owned: it must
 * outlive every session on it.  target NULL: like rg_dir_new. */
struct rg_dir_target;
struct rg_dir *rg_dir_new_shared(const struct rg_directory_cfg *cfg, struct rg_dir_target *target);
void rg_dir_free(struct rg_dir *d);

/* Look up `principal` (uid, or badge number when badge-attribute is set) and
 * the groups it belongs to.  On RG_DIR_OK *out is a new person (caller frees).
 * err receives a message for anything but OK/NOT_FOUND. */
enum rg_dir_status rg_dir_lookup(struct rg_dir *d, const char *principal, struct rg_person **out,
				 char *err, size_t errlen);

/* All members (principals: uid, or badge number with badge-attribute) of
 * `group_dn`, following nested groups to nested-groups depth, for sync.
 * NULL-terminated array in *members, caller frees each string and the array
 * (free()).  A group that does not exist gives RG_DIR_NOT_FOUND.
 * member/uniqueMember/memberOf models read the group's member (uniqueMember)
 * values and then each member entry (one search per member); memberUid reads
 * memberUid values (plus member values for nesting). */
enum rg_dir_status rg_dir_group_members(struct rg_dir *d, const char *group_dn, char ***members,
					char *err, size_t errlen);

/* Is a principal acceptable at all?  Non-empty, at most RG_DIR_PRINCIPAL_MAX
 * bytes, valid UTF-8, no control characters (C0, DEL, C1).  Pure. */
bool rg_dir_principal_ok(const char *principal);

/* Is a negotiated TLS version as libldap names it (LDAP_OPT_X_TLS_VERSION:
 * "TLSv1.2" with OpenSSL, "TLS1.2" with GnuTLS) TLS 1.2 or later?  NULL,
 * SSL and unknown names are not.  Pure.  Every TLS connection (ldaps:// and
 * StartTLS) is refused after its handshake unless this holds; with GnuTLS
 * (which ignores LDAP_OPT_X_TLS_PROTOCOL_MIN) the priority string
 * "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" is also set on the handle. */
bool rg_dir_tls_version_ok(const char *v);

/* Is a URI's host loopback, so that tls-require-cert = never may be used?
 * Exactly "localhost", an IPv4 address in 127.0.0.0/8, or ::1 ("[::1]").
 * Host names are not resolved (127.evil.example is not loopback).  Pure. */
bool rg_dir_host_is_loopback(const char *host);

/* Expand user-filter: every %u replaced by the escaped principal
 * (ldap_bv2escaped_filter_value); nothing else is interpreted.
 * Returns a malloc'd string or NULL (allocation failure, NULL argument). */
char *rg_dir_build_filter(const char *tmpl, const char *principal);

/* The URI currently in use ("" when not connected); for audit records. */
const char *rg_dir_current_uri(const struct rg_dir *d);

/* Did the last call on this session reach a server (OK / NOT_FOUND)?
 * false before the first call and after RG_DIR_UNAVAILABLE. */
bool rg_dir_is_up(const struct rg_dir *d);

/* Number of search requests sent by this session so far (tests pin the
 * round-trip counts above with it). */
unsigned long rg_dir_searches(const struct rg_dir *d);

/* Tune the retry timing (tests; the defaults above suit production).
 * Milliseconds; 0 leaves a value unchanged.  The backoff values belong to
 * the target: on a shared one they apply to every session. */
void rg_dir_set_retry(struct rg_dir *d, unsigned backoff_min_ms, unsigned backoff_max_ms,
		      unsigned prefer_retry_ms);

/* ---- LDAP connections, shared with the LDAP ledger (ledger_ldap.c) -------
 * Everything "Connections" and "Security" above promise, for any user of
 * LDAP in the plugin: URIs in order with failover and backoff, explicit
 * per-handle options, the TLS policy, the bounded handshake, and the bind.
 * A struct rg_dir session is built on these; the ledger keeps a pool of
 * struct rg_dir_conn over one shared struct rg_dir_target.
 *
 * The SIGPIPE guard is the caller's job around any libldap call that may
 * write (operations, connecting, unbinding): rg_dir_sigpipe_block() ...
 * rg_dir_sigpipe_restore() in the same thread.  rg_dir_conn_close() guards
 * itself. */

/* Block SIGPIPE in the calling thread; restore discards a SIGPIPE raised in
 * between (one that was already pending before is left alone). */
struct rg_dir_sigpipe {
	sigset_t old;
	bool was_pending;
};
void rg_dir_sigpipe_block(struct rg_dir_sigpipe *g);
void rg_dir_sigpipe_restore(struct rg_dir_sigpipe *g);

/* Where and how to connect: a deep copy of cfg's uri list, timeout, tls,
 * tls-ca-file, tls-require-cert, allow-insecure-bind, bind-dn,
 * bind-password-file and password-file-check (other fields are ignored).
 * The per-URI backoff state is under an internal mutex, so one target may
 * be shared by threads that each open their own connections.
 * NULL on allocation failure or when cfg->uri names no URI. */
struct rg_dir_target;
struct rg_dir_target *rg_dir_target_new(const struct rg_directory_cfg *cfg);
void rg_dir_target_free(struct rg_dir_target *t); /* NULL is fine; no open connection may remain */

/* Backoff after a failure (milliseconds; 0 leaves a value unchanged). */
void rg_dir_target_set_backoff(struct rg_dir_target *t, unsigned min_ms, unsigned max_ms);

/* Report how an operation on a connection to URI i went: RG_DIR_UNAVAILABLE
 * (the server failed: back off from it; `why` becomes the "last" error) or
 * RG_DIR_OK (reset its backoff).  Other statuses are ignored. */
void rg_dir_target_note(struct rg_dir_target *t, size_t i, enum rg_dir_status st, const char *why);

/* One LDAP handle, opened, secured and bound; used by one thread at a time. */
struct rg_dir_conn;

/* Connect to the first of URIs [0, upto) that works, in order, skipping
 * those in backoff (upto larger than the list: all).  RG_DIR_OK with a new
 * connection in *out (the caller closes it); else RG_DIR_UNAVAILABLE (no
 * server answered in time) or RG_DIR_ERROR (refused by the settings or by a
 * server, e.g. a bad password), with a message in err.  Call it with SIGPIPE
 * blocked. */
enum rg_dir_status rg_dir_conn_open(struct rg_dir_target *t, size_t upto, struct rg_dir_conn **out,
				    char *err, size_t errlen);

LDAP *rg_dir_conn_ld(const struct rg_dir_conn *c);          /* owned by c */
size_t rg_dir_conn_index(const struct rg_dir_conn *c);      /* which URI of the target */
const char *rg_dir_conn_uri(const struct rg_dir_conn *c);   /* owned by the target */

/* Unbind and free (SIGPIPE-guarded).  NULL is fine. */
void rg_dir_conn_close(struct rg_dir_conn *c);

/* Is an LDAP result code a failure of the server rather than an answer
 * (another server, or the same one later, may well do better)?  Server down,
 * timeout, connect error, busy, unavailable, time limit, admin limit, loop
 * detected.  The one definition for the directory and the LDAP ledger. */
bool rg_dir_server_failure(int rc);

/* In a child after fork(): close this process's copy of the connection's
 * socket, WITHOUT unbinding or any other write (the session belongs to the
 * parent, which keeps using it).  c is not freed and must not be used again
 * (its small allocation is abandoned).  NULL is fine. */
void rg_dir_conn_forget_after_fork(struct rg_dir_conn *c);

/* Wait at most timeout_s seconds for the complete answer to msgid (timeout_s
 * 0 counts as 1).  LDAP_SUCCESS with *res set (caller frees with
 * ldap_msgfree), LDAP_TIMEOUT after abandoning the request, or the handle's
 * error (LDAP_SERVER_DOWN when it has none). */
int rg_dir_wait_result(LDAP *ld, int msgid, unsigned timeout_s, LDAPMessage **res);

#endif
