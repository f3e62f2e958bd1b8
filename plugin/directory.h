/*
 * directory.h - LDAP sessions, failover, membership resolution, escaping.
 *
 * One struct rg_dir is one LDAP session and belongs to one thread at a time
 * (libldap handles are never shared between threads).  The api layer keeps a
 * pool: a thread checks a session out, uses it, checks it back in.
 *
 * No global libldap option is changed; every option is set on the handle.
 * Nothing is printed; the bind password is never put into a message.
 */
#ifndef RG_DIRECTORY_H
#define RG_DIRECTORY_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

enum rg_dir_status {
	RG_DIR_OK = 0,
	RG_DIR_NOT_FOUND,    /* no such person (definitive answer from a server) */
	RG_DIR_UNAVAILABLE,  /* no server answered usefully within the timeouts */
	RG_DIR_BAD_INPUT,    /* principal refused before reaching LDAP */
	RG_DIR_ERROR,        /* configuration / protocol error */
};

/* A person as the directory knows them.  All strings are owned by the struct. */
struct rg_person {
	char *principal;     /* the name asked for */
	char *dn;
	char *uid;
	char **groups;       /* group DNs the person belongs to (all, not only configured ones) */
	size_t ngroups;
	int64_t fetched;     /* Unix time the answer came from the directory */
};

void rg_person_free(struct rg_person *p);
struct rg_person *rg_person_dup(const struct rg_person *p);

struct rg_dir;

/* Create a session for `cfg->directory` (no connection yet; connects lazily). */
struct rg_dir *rg_dir_new(const struct rg_directory_cfg *cfg);
void rg_dir_free(struct rg_dir *d);

/* Look up `principal` (uid, or badge number when badge-attribute is set) and
 * the groups it belongs to.  On RG_DIR_OK *out is a new person (caller frees).
 * err receives a message for anything but OK/NOT_FOUND. */
enum rg_dir_status rg_dir_lookup(struct rg_dir *d, const char *principal, struct rg_person **out,
				 char *err, size_t errlen);

/* All members (principals) of `group_dn`, for `rotagatectl sync`.  NULL-terminated
 * array in *members, caller frees each string and the array. */
enum rg_dir_status rg_dir_group_members(struct rg_dir *d, const char *group_dn, char ***members,
					char *err, size_t errlen);

/* Is a principal acceptable at all?  (length, bytes, UTF-8) */
bool rg_dir_principal_ok(const char *principal);

/* Expand user-filter: every %u replaced by the escaped principal
 * (ldap_bv2escaped_filter_value).  Returns a malloc'd string or NULL. */
char *rg_dir_build_filter(const char *tmpl, const char *principal);

/* The URI currently in use ("" when not connected); for audit records. */
const char *rg_dir_current_uri(const struct rg_dir *d);

#endif
