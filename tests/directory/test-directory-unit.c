/*
 * test-directory-unit.c - the pure parts of directory.c and cache.c:
 * principal checks, filter escaping, person copies, the in-memory cache and
 * the LMDB snapshot.  No server is needed (lookups refused before LDAP).
 */
#include <check.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "directory.h"

static struct rg_person *person(const char *principal, const char *uid, int64_t fetched, int ngroups, ...)
{
	struct rg_person *p = calloc(1, sizeof(*p));
	va_list ap;

	ck_assert_ptr_nonnull(p);
	p->principal = strdup(principal);
	p->uid = strdup(uid);
	p->dn = strdup("uid=x,dc=example,dc=org");
	p->fetched = fetched;
	p->groups = calloc((size_t)ngroups + 1, sizeof(char *));
	va_start(ap, ngroups);
	for (int i = 0; i < ngroups; i++)
		p->groups[p->ngroups++] = strdup(va_arg(ap, const char *));
	va_end(ap);
	return p;
}

START_TEST(test_principal_ok_refuses_bad_bytes_and_lengths)
{
	static const struct { const char *p; bool ok; } cases[] = {
		{ "alice", true }, { "ALICE", true }, { "*)(uid=*", true }, { "\\", true },
		{ "jos\xc3\xa9", true },            /* UTF-8 e-acute */
		{ "", false }, { "al\x01ice", false }, { "alice\n", false }, { "al\x7f", false },
		{ "\xc2\x85", false },              /* C1 control (NEL) */
		{ "\xff\xfe", false }, { "\xc0\xaf", false }, /* invalid / overlong UTF-8 */
		{ "\xed\xa0\x80", false },          /* surrogate */
	};
	char big[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(rg_dir_principal_ok(cases[i].p) == cases[i].ok, "case %zu", i);
	ck_assert(!rg_dir_principal_ok(NULL));
	memset(big, 'a', sizeof(big));
	big[RG_DIR_PRINCIPAL_MAX] = '\0';
	ck_assert(rg_dir_principal_ok(big));
	big[RG_DIR_PRINCIPAL_MAX] = 'a';
	big[RG_DIR_PRINCIPAL_MAX + 1] = '\0';
	ck_assert(!rg_dir_principal_ok(big));
}
END_TEST

START_TEST(test_tls_version_below_1_2_is_refused)
{
	ck_assert(rg_dir_tls_version_ok("TLSv1.2"));   /* OpenSSL */
	ck_assert(rg_dir_tls_version_ok("TLSv1.3"));
	ck_assert(rg_dir_tls_version_ok("TLS1.2"));    /* GnuTLS */
	ck_assert(rg_dir_tls_version_ok("TLS1.3"));
	ck_assert(!rg_dir_tls_version_ok("TLS1.0"));
	ck_assert(!rg_dir_tls_version_ok("TLS1.1"));
	ck_assert(!rg_dir_tls_version_ok("TLSv1"));    /* OpenSSL's TLS 1.0 */
	ck_assert(!rg_dir_tls_version_ok("TLSv1.1"));
	ck_assert(!rg_dir_tls_version_ok("SSL3.0"));
	ck_assert(!rg_dir_tls_version_ok("SSLv3"));
	ck_assert(!rg_dir_tls_version_ok("DTLS1.2"));
	ck_assert(!rg_dir_tls_version_ok("TLS1.2x"));
	ck_assert(!rg_dir_tls_version_ok("TLS"));
	ck_assert(!rg_dir_tls_version_ok(""));
	ck_assert(!rg_dir_tls_version_ok("unknown"));
	ck_assert(!rg_dir_tls_version_ok(NULL));
}
END_TEST

START_TEST(test_loopback_is_an_address_not_a_prefix)
{
	ck_assert(rg_dir_host_is_loopback("localhost"));
	ck_assert(rg_dir_host_is_loopback("127.0.0.1"));
	ck_assert(rg_dir_host_is_loopback("127.1.2.3"));
	ck_assert(rg_dir_host_is_loopback("127.255.255.255"));
	ck_assert(rg_dir_host_is_loopback("::1"));
	ck_assert(rg_dir_host_is_loopback("[::1]"));
	ck_assert(rg_dir_host_is_loopback("0:0:0:0:0:0:0:1"));
	ck_assert(!rg_dir_host_is_loopback("127.evil.example"));
	ck_assert(!rg_dir_host_is_loopback("127.0.0.1.evil.example"));
	ck_assert(!rg_dir_host_is_loopback("127."));
	ck_assert(!rg_dir_host_is_loopback("localhost.evil.example"));
	ck_assert(!rg_dir_host_is_loopback("LOCALHOST.evil"));
	ck_assert(!rg_dir_host_is_loopback("128.0.0.1"));
	ck_assert(!rg_dir_host_is_loopback("192.0.2.1"));
	ck_assert(!rg_dir_host_is_loopback("::2"));
	ck_assert(!rg_dir_host_is_loopback("::ffff:127.0.0.1x"));
	ck_assert(!rg_dir_host_is_loopback("[::1"));
	ck_assert(!rg_dir_host_is_loopback(""));
	ck_assert(!rg_dir_host_is_loopback(NULL));
}
END_TEST

START_TEST(test_build_filter_escapes_every_special_character)
{
	static const struct { const char *tmpl, *p, *want; } cases[] = {
		{ "(uid=%u)", "alice", "(uid=alice)" },
		{ "(uid=%u)", "*", "(uid=\\2A)" },
		{ "(uid=%u)", "*)(uid=*", "(uid=\\2A\\29\\28uid=\\2A)" },
		{ "(uid=%u)", "\\", "(uid=\\5C)" },
		{ "(|(uid=%u)(mail=%u))", "a*", "(|(uid=a\\2A)(mail=a\\2A))" },
		{ "(objectClass=person)", "x", "(objectClass=person)" },
		{ "(uid=%%u%)", "b", "(uid=%b%)" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *f = rg_dir_build_filter(cases[i].tmpl, cases[i].p);
		ck_assert_ptr_nonnull(f);
		ck_assert_msg(strcasecmp(f, cases[i].want) == 0, "case %zu: %s", i, f);
		free(f);
	}
	ck_assert_ptr_null(rg_dir_build_filter(NULL, "a"));
	ck_assert_ptr_null(rg_dir_build_filter("(uid=%u)", NULL));
}
END_TEST

START_TEST(test_bad_input_never_reaches_a_server)
{
	struct rg_directory_cfg cfg = { 0 };
	struct rg_person *p = (struct rg_person *)1;
	struct rg_dir *d;
	char err[256];

	cfg.uri = "ldap://192.0.2.1:389"; /* would hang if contacted */
	cfg.base = "dc=example,dc=org";
	cfg.timeout = 1;
	d = rg_dir_new(&cfg);
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(rg_dir_lookup(d, "al\x01", &p, err, sizeof(err)), RG_DIR_BAD_INPUT);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(rg_dir_lookup(d, "", &p, err, sizeof(err)), RG_DIR_BAD_INPUT);
	ck_assert_int_eq(rg_dir_searches(d), 0);
	ck_assert_str_eq(rg_dir_current_uri(d), "");
	ck_assert(!rg_dir_is_up(d));
	rg_dir_free(d);
	cfg.uri = "  ";
	ck_assert_ptr_null(rg_dir_new(&cfg));
}
END_TEST

START_TEST(test_person_dup_is_deep_and_in_group_ignores_case)
{
	struct rg_person *p = person("alice", "alice", 10, 2, "cn=A,dc=x", "cn=B,dc=x");
	struct rg_person *c = rg_person_dup(p);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_ne(c->groups[1], p->groups[1]);
	ck_assert_str_eq(c->groups[1], "cn=B,dc=x");
	ck_assert_int_eq(c->fetched, 10);
	ck_assert(rg_person_in_group(c, "CN=a,DC=X"));
	ck_assert(!rg_person_in_group(c, "cn=C,dc=x"));
	rg_person_free(p);
	rg_person_free(c);
	rg_person_free(NULL);
}
END_TEST

START_TEST(test_cache_answers_within_ttl_only)
{
	struct rg_cache *c = rg_cache_new();
	struct rg_person *p = person("alice", "alice", 1000, 1, "cn=A"), *got;

	rg_cache_put(c, p);
	got = rg_cache_get(c, "alice", 1100, 300);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->groups[0], "cn=A");
	rg_person_free(got);
	ck_assert_ptr_null(rg_cache_get(c, "alice", 1301, 300));      /* too old */
	got = rg_cache_get(c, "ALICE", 1300, 300);                    /* boundary, any case */
	ck_assert_ptr_nonnull(got);
	rg_person_free(got);
	got = rg_cache_get(c, "alice", 5000, 86400);                  /* offline-max-age */
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(got->fetched, 1000);
	rg_person_free(got);
	ck_assert_ptr_null(rg_cache_get(c, "bob", 1000, 300));
	rg_cache_clear(c);
	ck_assert_ptr_null(rg_cache_get(c, "alice", 1000, 300));
	rg_person_free(p);
	rg_cache_free(c);
}
END_TEST

START_TEST(test_cache_negative_entries_expire_and_yield_to_answers)
{
	struct rg_cache *c = rg_cache_new();
	struct rg_person *p = person("mallory", "mallory", 2000, 0);

	rg_cache_put_negative(c, "mallory", 1000);
	ck_assert(rg_cache_is_negative(c, "mallory", 1100, 300));
	ck_assert(!rg_cache_is_negative(c, "mallory", 1400, 300));
	ck_assert_ptr_null(rg_cache_get(c, "mallory", 1100, 300)); /* negative is not an answer */
	rg_cache_put(c, p);
	ck_assert(!rg_cache_is_negative(c, "mallory", 2000, 300));
	rg_person_free(p);
	rg_cache_free(c);
}
END_TEST

START_TEST(test_cache_stays_bounded)
{
	struct rg_cache *c = rg_cache_new();
	struct rg_person *p = person("keep", "keep", 1, 0), *got;
	char name[32];

	rg_cache_put(c, p);
	for (int i = 0; i < RG_CACHE_MAX_ENTRIES + 10; i++) {
		snprintf(name, sizeof(name), "junk%d", i);
		rg_cache_put_negative(c, name, 1);
	}
	got = rg_cache_get(c, "keep", 1, 10); /* negatives are dropped first */
	ck_assert_ptr_nonnull(got);
	rg_person_free(got);
	rg_person_free(p);
	rg_cache_free(c);
}
END_TEST

static char tmpdir[64];

static void mk_tmp(void)
{
	strcpy(tmpdir, "/tmp/rg-snap-unit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_snapshot_put_get_del_and_private_files)
{
	char err[256], path[128];
	struct rg_snapshot *s;
	struct rg_person *p = person("Alice", "alice", 1234, 2, "cn=A", "cn=B"), *got = NULL;
	struct stat st;
	int64_t when;

	mk_tmp();
	s = rg_snapshot_open(tmpdir, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_int_eq(rg_snapshot_get(s, "alice", &got, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_synced_at(s, &when, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_put_person(s, p, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_get(s, "alice", &got, err, sizeof(err)), 1);
	ck_assert_str_eq(got->principal, "Alice");
	ck_assert_str_eq(got->uid, "alice");
	ck_assert_int_eq(got->ngroups, 2);
	ck_assert_str_eq(got->groups[1], "cn=B");
	ck_assert_int_eq(got->fetched, 1234);
	rg_person_free(got);
	ck_assert_int_eq(rg_snapshot_count(s, err, sizeof(err)), 1);
	ck_assert_int_eq(rg_snapshot_del(s, "ALICE", err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_get(s, "alice", &got, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_del(s, "nobody", err, sizeof(err)), 0);

	snprintf(path, sizeof(path), "%s/snapshot", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/snapshot/data.mdb", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	rg_snapshot_close(s);
	rg_person_free(p);
	rm_tmp();
}
END_TEST

START_TEST(test_snapshot_replace_all_is_total_and_survives_reopen)
{
	char err[256];
	struct rg_snapshot *s, *s2;
	struct rg_person *a = person("alice", "alice", 1, 0), *b = person("bob", "bob", 2, 1, "cn=T");
	struct rg_person *c = person("carol", "carol", 3, 0), *got = NULL;
	const struct rg_person *first[] = { a, b }, *second[] = { c };
	int64_t when;

	mk_tmp();
	s = rg_snapshot_open(tmpdir, err, sizeof(err));
	ck_assert_ptr_nonnull(s);
	s2 = rg_snapshot_open(tmpdir, err, sizeof(err)); /* same path: shared environment */
	ck_assert_ptr_eq(s, s2);
	ck_assert_int_eq(rg_snapshot_replace_all(s, first, 2, 100, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_count(s, err, sizeof(err)), 2);
	ck_assert_int_eq(rg_snapshot_replace_all(s, second, 1, 200, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_count(s, err, sizeof(err)), 1);
	ck_assert_int_eq(rg_snapshot_get(s, "alice", &got, err, sizeof(err)), 0);
	ck_assert_int_eq(rg_snapshot_synced_at(s, &when, err, sizeof(err)), 1);
	ck_assert_int_eq(when, 200);
	rg_snapshot_close(s2);
	rg_snapshot_close(s);

	s = rg_snapshot_open(tmpdir, err, sizeof(err));
	ck_assert_int_eq(rg_snapshot_get(s, "carol", &got, err, sizeof(err)), 1);
	ck_assert_int_eq(got->fetched, 3);
	rg_person_free(got);
	rg_snapshot_close(s);
	rg_person_free(a);
	rg_person_free(b);
	rg_person_free(c);
	rm_tmp();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("directory");
	TCase *t = tcase_create("unit");

	tcase_add_test(t, test_principal_ok_refuses_bad_bytes_and_lengths);
	tcase_add_test(t, test_build_filter_escapes_every_special_character);
	tcase_add_test(t, test_tls_version_below_1_2_is_refused);
	tcase_add_test(t, test_loopback_is_an_address_not_a_prefix);
	tcase_add_test(t, test_bad_input_never_reaches_a_server);
	tcase_add_test(t, test_person_dup_is_deep_and_in_group_ignores_case);
	tcase_add_test(t, test_cache_answers_within_ttl_only);
	tcase_add_test(t, test_cache_negative_entries_expire_and_yield_to_answers);
	tcase_add_test(t, test_cache_stays_bounded);
	tcase_add_test(t, test_snapshot_put_get_del_and_private_files);
	tcase_add_test(t, test_snapshot_replace_all_is_total_and_survives_reopen);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed == 0 ? 0 : 1;
}
