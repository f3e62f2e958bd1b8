/*
 * pam_rotagate.c - PAM adapter (account phase): argument parsing,
 * return-code mapping, nothing else.
 *
 *   account required pam_rotagate.so conf=/etc/rotagate/rotagate.conf door=main-entrance [debug]
 *
 * The handle for a config path comes from the process-wide registry in
 * api.c and outlives the PAM transaction (the module is linked -z nodelete),
 * so LDAP sessions, the membership cache and the parsed config are reused.
 * Every failure maps to a refusal: never PAM_IGNORE, never PAM_SUCCESS.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "api.h"
#include "rotagate.h"

#define RG_EXPORT __attribute__((visibility("default")))
#define DOOR_TTY_PREFIX "door:"

struct pam_options {
	const char *conf;
	const char *door;
	bool debug;
};

static int parse_args(pam_handle_t *pamh, int argc, const char **argv, struct pam_options *o)
{
	memset(o, 0, sizeof *o);
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "conf=", 5) == 0 && argv[i][5])
			o->conf = argv[i] + 5;
		else if (strncmp(argv[i], "door=", 5) == 0 && argv[i][5])
			o->door = argv[i] + 5;
		else if (strcmp(argv[i], "debug") == 0)
			o->debug = true;
		else {
			pam_syslog(pamh, LOG_ERR, "unknown module argument: %s", argv[i]);
			return -1;
		}
	}
	return 0;
}

/* door= wins; else PAM_TTY of the form "door:NAME". */
static const char *door_of(pam_handle_t *pamh, const struct pam_options *o)
{
	if (o->door)
		return o->door;
	const void *tty = NULL;
	if (pam_get_item(pamh, PAM_TTY, &tty) == PAM_SUCCESS && tty &&
	    strncmp(tty, DOOR_TTY_PREFIX, strlen(DOOR_TTY_PREFIX)) == 0)
		return (const char *)tty + strlen(DOOR_TTY_PREFIX);
	return NULL;
}

/* The controller may pass the time of the swipe (Unix seconds) in the PAM
 * environment as ROTAGATE_WHEN, e.g. for events it buffered; default: now.
 * A malformed value is refused (-1), never silently replaced by "now". */
static int when_of(pam_handle_t *pamh, int64_t *when)
{
	const char *s = pam_getenv(pamh, "ROTAGATE_WHEN");
	*when = 0;
	if (!s)
		return 0;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0)
		return -1;
	*when = v;
	return 0;
}

static int pam_code(const struct rotagate_decision *dec)
{
	switch (dec->verdict) {
	case ROTAGATE_GRANT:
		return PAM_SUCCESS;
	case ROTAGATE_DENY:
		return dec->reason == ROTAGATE_R_UNKNOWN_PERSON ? PAM_USER_UNKNOWN : PAM_PERM_DENIED;
	case ROTAGATE_ERROR:
	default:
		if (dec->reason == ROTAGATE_R_DIRECTORY_UNAVAILABLE)
			return PAM_AUTHINFO_UNAVAIL;
		return PAM_SERVICE_ERR;
	}
}

RG_EXPORT int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct pam_options o;
	if (parse_args(pamh, argc, argv, &o) != 0)
		return PAM_SERVICE_ERR;

	const char *user = NULL;
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || !user) {
		pam_syslog(pamh, LOG_ERR, "cannot determine the user");
		return PAM_SERVICE_ERR;
	}

	char err[1024] = "";
	struct rotagate *h = rg_registry_get(o.conf, err, sizeof err);
	if (!h) {
		pam_syslog(pamh, LOG_ERR, "%s", err);
		return PAM_SERVICE_ERR;
	}

	/* no door: still decided (and audited), as bad input */
	struct rotagate_request req = { .principal = user, .door = door_of(pamh, &o) };
	if (when_of(pamh, &req.when) != 0) {
		pam_syslog(pamh, LOG_ERR, "ROTAGATE_WHEN is not a Unix time");
		return PAM_SERVICE_ERR;
	}
	struct rotagate_decision dec;
	rotagate_decide(h, &req, &dec);
	if (o.debug)
		pam_syslog(pamh, LOG_DEBUG, "%s reason=%s site=%s rule=%s occupancy=%u/%u",
			   rotagate_verdict_name(dec.verdict), rotagate_reason_name(dec.reason),
			   dec.site, dec.rule, dec.occupancy, dec.capacity);
	return pam_code(&dec);
}
