/*
 * rg-dirtool - drives one directory session (plugin/directory.c) and one
 * snapshot (plugin/cache.c) for the shell tests in tests/directory/.
 *
 * The session is configured from the environment (RGT_*, see cfg_from_env)
 * and lives for the whole run, so a script can stop and restart slapd between
 * commands.  Commands come one per line on stdin; each prints one line:
 *
 *   lookup NAME          -> "<status> ms=N searches=N uri=U uid=X dn=D groups=G1|G2"
 *   lookuphex HEX        -> same, NAME given as hex bytes (any byte but NUL)
 *   members GROUPDN      -> "<status> n=N P1,P2,..." (sorted)
 *   sync DN [DN...]      -> "ok n=N" | "fail ERR"        (needs RGT_SNAPDIR)
 *   snapget NAME         -> "found uid=X fetched=T groups=..." | "absent" | "fail ERR"
 *   uri                  -> "uri U"
 *   up                   -> "up 1|0"
 *   sleep MS             -> "slept"
 *   fresh                -> "fresh": the session is replaced by a new one on
 *                           the same target (as the api layer's pool does),
 *                           which shares the backoff state
 *   quit
 * A status line other than ok carries " err=MESSAGE" at its end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache.h"
#include "directory.h"

static const char *env(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? v : def;
}

static unsigned env_u(const char *name, unsigned def)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : def;
}

static void cfg_from_env(struct rg_directory_cfg *c)
{
	const char *m = env("RGT_MEMBERSHIP", "member");

	memset(c, 0, sizeof(*c));
	c->uri = (char *)env("RGT_URI", "");
	c->base = (char *)env("RGT_BASE", "dc=example,dc=org");
	c->bind_dn = (char *)env("RGT_BIND_DN", NULL);
	c->bind_password_file = (char *)env("RGT_PWFILE", NULL);
	c->password_file_check = env_u("RGT_PWCHECK", 1) != 0;
	c->user_filter = (char *)env("RGT_FILTER", "(&(objectClass=inetOrgPerson)(uid=%u))");
	c->badge_attribute = (char *)env("RGT_BADGE", NULL);
	c->membership = strcasecmp(m, "uniqueMember") == 0 ? RG_MEMBER_UNIQUEMEMBER
		      : strcasecmp(m, "memberUid") == 0  ? RG_MEMBER_MEMBERUID
		      : strcasecmp(m, "memberOf") == 0   ? RG_MEMBER_MEMBEROF
							 : RG_MEMBER_MEMBER;
	c->nested_groups = env_u("RGT_NESTED", 0);
	c->timeout = env_u("RGT_TIMEOUT", 2);
	c->tls = strcmp(env("RGT_TLS", "starttls"), "none") == 0 ? RG_TLS_NONE : RG_TLS_STARTTLS;
	c->tls_ca_file = (char *)env("RGT_CA", NULL);
	c->tls_require_cert = strcmp(env("RGT_REQCERT", "demand"), "never") == 0 ? RG_TLS_NEVER : RG_TLS_DEMAND;
	c->allow_insecure_bind = env_u("RGT_INSECURE", 0) != 0;
	c->cache_ttl = 300;
	c->offline_max_age = 86400;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmp_str(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

static void print_groups(char **g, size_t n)
{
	if (n > 1)
		qsort(g, n, sizeof(*g), cmp_str);
	printf(" groups=");
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? "|" : "", g[i]);
}

static void do_lookup(struct rg_dir *d, const char *name)
{
	struct rg_person *p = NULL;
	char err[1024];
	int64_t t0 = mono_ms();
	unsigned long s0 = rg_dir_searches(d);
	enum rg_dir_status st = rg_dir_lookup(d, name, &p, err, sizeof(err));

	printf("%s ms=%lld searches=%lu uri=%s", rg_dir_status_name(st), (long long)(mono_ms() - t0),
	       rg_dir_searches(d) - s0, *rg_dir_current_uri(d) ? rg_dir_current_uri(d) : "-");
	if (st == RG_DIR_OK) {
		printf(" uid=%s dn=%s", p->uid, p->dn);
		print_groups(p->groups, p->ngroups);
	} else {
		printf(" err=%s", err);
	}
	printf("\n");
	rg_person_free(p);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void do_lookuphex(struct rg_dir *d, const char *hex)
{
	size_t n = strlen(hex) / 2;
	char *buf = malloc(n + 1);

	if (buf == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
	buf[n] = '\0';
	do_lookup(d, buf);
	free(buf);
}

static void do_members(struct rg_dir *d, const char *group)
{
	char **m = NULL, err[1024];
	enum rg_dir_status st = rg_dir_group_members(d, group, &m, err, sizeof(err));
	size_t n = 0;

	if (st != RG_DIR_OK) {
		printf("%s err=%s\n", rg_dir_status_name(st), err);
		return;
	}
	while (m[n] != NULL)
		n++;
	if (n > 1)
		qsort(m, n, sizeof(*m), cmp_str);
	printf("ok n=%zu ", n);
	for (size_t i = 0; i < n; i++) {
		printf("%s%s", i ? "," : "", m[i]);
		free(m[i]);
	}
	printf("\n");
	free(m);
}

static struct rg_snapshot *the_snapshot;

static struct rg_snapshot *snap(void)
{
	char err[512];

	if (the_snapshot == NULL &&
	    (the_snapshot = rg_snapshot_open(env("RGT_SNAPDIR", NULL), err, sizeof(err))) == NULL)
		printf("fail %s\n", err);
	return the_snapshot;
}

static void do_sync(struct rg_dir *d, char *args)
{
	const char *groups[64];
	size_t n = 0, np = 0;
	char err[1024];
	struct rg_snapshot *s = snap();

	if (s == NULL)
		return;
	for (char *save = NULL, *t = strtok_r(args, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		groups[n++] = t;
	if (rg_dir_sync(d, groups, n, s, &np, NULL, NULL, err, sizeof(err)) != 0)
		printf("fail %s\n", err);
	else
		printf("ok n=%zu\n", np);
}

static void do_snapget(const char *name)
{
	struct rg_snapshot *s = snap();
	struct rg_person *p = NULL;
	char err[512];
	int r;

	if (s == NULL)
		return;
	r = rg_snapshot_get(s, name, &p, err, sizeof(err));
	if (r < 0) {
		printf("fail %s\n", err);
	} else if (r == 0) {
		printf("absent\n");
	} else {
		printf("found uid=%s fetched=%lld", p->uid, (long long)p->fetched);
		print_groups(p->groups, p->ngroups);
		printf("\n");
	}
	rg_person_free(p);
}

static struct rg_dir *new_session(const struct rg_directory_cfg *cfg, struct rg_dir_target *t)
{
	struct rg_dir *d = rg_dir_new_shared(cfg, t);

	if (d == NULL) {
		fprintf(stderr, "rg-dirtool: rg_dir_new_shared failed (RGT_URI=%s)\n", cfg->uri);
		exit(2);
	}
	rg_dir_set_retry(d, env_u("RGT_BACKOFF_MIN_MS", 0), env_u("RGT_BACKOFF_MAX_MS", 0), env_u("RGT_PREFER_MS", 0));
	return d;
}

int main(void)
{
	struct rg_directory_cfg cfg;
	struct rg_dir_target *t;
	struct rg_dir *d;
	char line[4096];

	cfg_from_env(&cfg);
	/* one target for every session of the run, as the api layer keeps one
	 * per configuration generation */
	if ((t = rg_dir_target_new(&cfg)) == NULL) {
		fprintf(stderr, "rg-dirtool: rg_dir_target_new failed (RGT_URI=%s)\n", cfg.uri);
		return 2;
	}
	d = new_session(&cfg, t);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *arg;
		line[strcspn(line, "\n")] = '\0';
		arg = strchr(line, ' ');
		if (arg != NULL)
			*arg++ = '\0';
		else
			arg = line + strlen(line);
		if (strcmp(line, "lookup") == 0)
			do_lookup(d, arg);
		else if (strcmp(line, "lookuphex") == 0)
			do_lookuphex(d, arg);
		else if (strcmp(line, "members") == 0)
			do_members(d, arg);
		else if (strcmp(line, "sync") == 0)
			do_sync(d, arg);
		else if (strcmp(line, "snapget") == 0)
			do_snapget(arg);
		else if (strcmp(line, "uri") == 0)
			printf("uri %s\n", *rg_dir_current_uri(d) ? rg_dir_current_uri(d) : "-");
		else if (strcmp(line, "up") == 0)
			printf("up %d\n", rg_dir_is_up(d) ? 1 : 0);
		else if (strcmp(line, "sleep") == 0) {
			struct timespec ts = { atoi(arg) / 1000, (long)(atoi(arg) % 1000) * 1000000L };
			nanosleep(&ts, NULL);
			printf("slept\n");
		} else if (strcmp(line, "fresh") == 0) {
			rg_dir_free(d);
			d = new_session(&cfg, t);
			printf("fresh\n");
		} else if (strcmp(line, "quit") == 0)
			break;
		else
			printf("unknown-command %s\n", line);
	}
	rg_snapshot_close(the_snapshot);
	rg_dir_free(d);
	rg_dir_target_free(t);
	return 0;
}
