/* harness.c - see harness.h */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

struct rg_config *lt_config(const struct lt_backend *b)
{
	struct rg_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->ledger.backend = strcmp(b->backend, "ldap") == 0 ? RG_LEDGER_LDAP : RG_LEDGER_LMDB;
	cfg->ledger.path = dup_or_null(b->path);
	cfg->ledger.ldap_base = dup_or_null(b->base);
	cfg->ledger.retain_days = b->retain_days;
	cfg->ledger.map_size = b->map_size;
	cfg->directory.uri = dup_or_null(b->uri);
	cfg->directory.bind_dn = dup_or_null(b->bind_dn);
	cfg->directory.bind_password_file = dup_or_null(b->pwfile);
	cfg->directory.password_file_check = false; /* test files are not root's */
	cfg->directory.timeout = 10;
	cfg->directory.tls = RG_TLS_NONE;
	cfg->directory.tls_require_cert = RG_TLS_NEVER;
	return cfg;
}

void lt_config_free(struct rg_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->ledger.path);
	free(cfg->ledger.ldap_base);
	free(cfg->directory.uri);
	free(cfg->directory.bind_dn);
	free(cfg->directory.bind_password_file);
	free(cfg);
}

char *lt_tempdir(const char *prefix)
{
	const char *tmp = getenv("TMPDIR");
	char *p;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (asprintf(&p, "%s/%s.XXXXXX", tmp, prefix) < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void lt_rmtree(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
