/*
 * harness.h - helpers shared by the ledger tests: a struct rg_config built by
 * hand with only the ledger and directory fields the ledger reads, and
 * throwaway directories.
 */
#ifndef RG_LEDGER_HARNESS_H
#define RG_LEDGER_HARNESS_H

#include <stdbool.h>
#include "config.h"
#include "ledger.h"

struct lt_backend {
	const char *backend;  /* "lmdb" | "ldap" */
	const char *path;     /* lmdb: ledger.path */
	const char *uri;      /* ldap: directory.uri */
	const char *base;     /* ldap: ledger.ldap-base */
	const char *bind_dn;  /* ldap: NULL = SASL EXTERNAL */
	const char *pwfile;   /* ldap: with bind_dn */
	unsigned retain_days;
	size_t map_size;
};

/* A config for `b` (all strings copied); free with lt_config_free(). */
struct rg_config *lt_config(const struct lt_backend *b);
void lt_config_free(struct rg_config *cfg);

/* mkdtemp under $TMPDIR (or /tmp) with `prefix`; malloc'd path. */
char *lt_tempdir(const char *prefix);
/* rm -rf */
void lt_rmtree(const char *path);

#endif
