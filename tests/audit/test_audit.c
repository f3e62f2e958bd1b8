/*
 * test_audit.c - unit tests of plugin/audit.c: sanitising, record layout
 * (rfc3164 and rfc5424), delivery to a socket the test reads itself, the
 * spool (order, audit.replayed, the cap) and target parsing.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "audit.h"

/* ---- sanitising: table-driven ---- */

static const struct {
	const char *in;
	const char *out;
} sanitize_cases[] = {
	{ "alice", "alice" },
	{ "", "" },
	{ "a'b", "a\\x27b" },
	{ "a\"b", "a\\x22b" },
	{ "a\\b", "a\\x5cb" },
	{ "a\\x27b", "a\\x5cx27b" }, /* a literal escape cannot pass for one */
	{ "a\nb\rc\td", "a\\x0ab\\x0dc\\x09d" },
	{ "\x1b[31m", "\\x1b[31m" },
	{ "del\x7f", "del\\x7f" },
	{ "a, b=c; d", "a, b=c; d" }, /* separators are safe inside quotes */
	{ "caf\xc3\xa9", "caf\xc3\xa9" }, /* valid UTF-8 stays readable */
	{ "\xe2\x82\xac", "\xe2\x82\xac" },
	{ "\xf0\x9f\x9a\xaa", "\xf0\x9f\x9a\xaa" },
	{ "\xff", "\\xff" },
	{ "\xc3(", "\\xc3(" },                 /* truncated sequence */
	{ "\xc0\xaf", "\\xc0\\xaf" },          /* overlong '/' */
	{ "\xed\xa0\x80", "\\xed\\xa0\\x80" }, /* surrogate */
	{ "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80" }, /* > U+10FFFF */
	{ "\xc2\x85", "\\xc2\\x85" },          /* C1 control NEL */
	{ "ab\xe2\x80\xae" "c", "ab\\xe2\\x80\\xae" "c" }, /* RIGHT-TO-LEFT OVERRIDE */
};

START_TEST(test_sanitize_renders_unsafe_bytes_as_hex_escapes)
{
	char out[256];
	rg_audit_sanitize(sanitize_cases[_i].in, out, sizeof out);
	ck_assert_str_eq(out, sanitize_cases[_i].out);
}
END_TEST

START_TEST(test_sanitize_truncates_at_escape_and_character_boundaries)
{
	char out[8];
	rg_audit_sanitize("ab'cdef", out, sizeof out); /* "ab\x27c" is 7 bytes + NUL */
	ck_assert_str_eq(out, "ab\\x27c");
	rg_audit_sanitize("abcd'", out, 8); /* the escape does not fit whole */
	ck_assert_str_eq(out, "abcd");
	rg_audit_sanitize("abcdef\xc3\xa9", out, 8); /* nor does the 2-byte character */
	ck_assert_str_eq(out, "abcdef");
	rg_audit_sanitize(NULL, out, sizeof out);
	ck_assert_str_eq(out, "");
}
END_TEST

/* ---- record layout ---- */

static struct rg_audit *sink(const char *target, enum rg_audit_format fmt, const char *spool)
{
	struct rg_audit_cfg cfg = { .target = (char *)target, .format = fmt,
				    .facility = LOG_AUTHPRIV, .ident = (char *)"rotagate",
				    .spool = (char *)spool };
	char err[256];
	struct rg_audit *a = rg_audit_new(&cfg, err, sizeof err);
	ck_assert_msg(a != NULL, "rg_audit_new: %s", err);
	return a;
}

static const struct rg_kv decision[] = {
	{ "config_sha", "abc123" },
	{ "user", "o'brien\"\\" },
	{ "door", "main]gate" },
	{ "seq", "999" },   /* reserved: ignored */
	{ "bad key!", "x" }, /* renamed bad_key_ */
};

START_TEST(test_rfc3164_record_is_header_then_evt_format_text)
{
	struct rg_audit *a = sink("unix:/nonexistent/sock", RG_AUDIT_RFC3164, NULL);
	char *r = rg_audit_format(a, LOG_NOTICE, "access.denied", decision, 5);
	ck_assert_ptr_nonnull(r);
	/* <authpriv.notice = 85>Mmm dd hh:mm:ss rotagate[PID]: */
	ck_assert_msg(strncmp(r, "<85>", 4) == 0, "%s", r);
	char hdr[128];
	snprintf(hdr, sizeof hdr, " rotagate[%ld]: access.denied; event='access.denied', seq='",
		 (long)getpid());
	ck_assert_msg(strstr(r, hdr) != NULL, "%s", r);
	ck_assert_msg(r[7] == ' ' && r[10] == ' ' && r[13] == ':' && r[16] == ':', "%s", r);
	char want[128];
	snprintf(want, sizeof want, "', pid='%ld', config_sha='abc123', ", (long)getpid());
	ck_assert_msg(strstr(r, want) != NULL, "%s", r);
	ck_assert_msg(strstr(r, "user='o\\x27brien\\x22\\x5c', door='main]gate', bad_key_='x'"),
		      "%s", r);
	ck_assert_msg(strstr(r, "999") == NULL, "reserved field overridden: %s", r);
	free(r);
	rg_audit_free(a);
}
END_TEST

START_TEST(test_rfc5424_record_carries_fields_as_escaped_structured_data)
{
	struct rg_audit *a = sink("unix:/nonexistent/sock", RG_AUDIT_RFC5424, NULL);
	char *r = rg_audit_format(a, LOG_INFO, "access.granted", decision, 5);
	ck_assert_ptr_nonnull(r);
	/* <86>1 YYYY-MM-DDTHH:MM:SS.uuuuuuZ HOST rotagate PID access.granted [rotagate@32473 ...] MSG */
	ck_assert_msg(strncmp(r, "<86>1 ", 6) == 0, "%s", r);
	ck_assert_msg(r[10] == '-' && r[16] == 'T' && r[25] == '.' && r[32] == 'Z', "%s", r);
	char want[96];
	snprintf(want, sizeof want, " rotagate %ld access.granted [" RG_AUDIT_SD_ID " event=\"access.granted\"",
		 (long)getpid());
	ck_assert_msg(strstr(r, want) != NULL, "%s", r);
	/* sanitised value, then RFC 5424 escaping of \ and ] */
	ck_assert_msg(strstr(r, " user=\"o\\\\x27brien\\\\x22\\\\x5c\" door=\"main\\]gate\""), "%s",
		      r);
	ck_assert_msg(strstr(r, "] access.granted; event='access.granted'"), "%s", r);
	free(r);
	rg_audit_free(a);
}
END_TEST

START_TEST(test_seq_increases_across_sinks_of_one_process)
{
	struct rg_audit *a = sink("unix:/nonexistent/a", RG_AUDIT_RFC3164, NULL);
	struct rg_audit *b = sink("unix:/nonexistent/b", RG_AUDIT_RFC3164, NULL);
	unsigned long s1, s2, s3;
	char *r1 = rg_audit_format(a, LOG_INFO, "x", NULL, 0);
	char *r2 = rg_audit_format(b, LOG_INFO, "x", NULL, 0);
	char *r3 = rg_audit_format(a, LOG_INFO, "x", NULL, 0);
	ck_assert(sscanf(strstr(r1, "seq='"), "seq='%lu'", &s1) == 1);
	ck_assert(sscanf(strstr(r2, "seq='"), "seq='%lu'", &s2) == 1);
	ck_assert(sscanf(strstr(r3, "seq='"), "seq='%lu'", &s3) == 1);
	ck_assert_uint_eq(s2, s1 + 1);
	ck_assert_uint_eq(s3, s2 + 1);
	free(r1);
	free(r2);
	free(r3);
	rg_audit_free(a);
	rg_audit_free(b);
}
END_TEST

START_TEST(test_invalid_targets_are_refused)
{
	static const char *bad[] = { "udp:host:514", "unix:", "tcp:host", "tcp::514",
				     "tcp:host:port", "tcp:[::1]514", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rg_audit_cfg cfg = { .target = (char *)bad[i], .ident = (char *)"x" };
		char err[256] = "";
		ck_assert_msg(rg_audit_new(&cfg, err, sizeof err) == NULL, "accepted %s", bad[i]);
		ck_assert_msg(strstr(err, "not valid") != NULL, "%s", err);
	}
	struct rg_audit_cfg ok = { .target = (char *)"tcp:[::1]:514", .ident = (char *)"x" };
	char err[256];
	struct rg_audit *a = rg_audit_new(&ok, err, sizeof err);
	ck_assert_ptr_nonnull(a);
	rg_audit_free(a);
}
END_TEST

/* ---- delivery and spool against a socket the test owns ---- */

static char tmpdir[64];

static void mk_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/rg-audit-unit.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int dgram_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

/* next datagram as text, or NULL if none is waiting */
static char *dgram_read(int fd)
{
	static char buf[8192];
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static const char *field(const char *rec, const char *key, char *out, size_t len)
{
	char pat[64];
	snprintf(pat, sizeof pat, " %s='", key);
	const char *p = strstr(rec, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	size_t n = strcspn(p, "'");
	snprintf(out, len, "%.*s", (int)n, p);
	return out;
}

START_TEST(test_unreachable_target_without_spool_loses_the_record)
{
	mk_tmpdir();
	char target[128];
	snprintf(target, sizeof target, "unix:%s/nobody-listens", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, NULL);
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.x", NULL, 0), -1);
	char err[256];
	rg_audit_last_error(a, err, sizeof err);
	ck_assert_msg(strstr(err, "nobody-listens") != NULL, "%s", err);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

START_TEST(test_spooled_records_are_replayed_in_order_before_new_ones)
{
	mk_tmpdir();
	char path[128], target[140], spool[128], v[64];
	snprintf(path, sizeof path, "%s/log.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	snprintf(spool, sizeof spool, "%s/spool/deeper", tmpdir);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, spool);

	/* nobody listening: spooled, directory created 0700 */
	for (int i = 0; i < 5; i++) {
		char n[8];
		snprintf(n, sizeof n, "%d", i);
		struct rg_kv kv[] = { { "n", n } };
		ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.down", kv, 1), 1);
	}
	struct stat st;
	ck_assert_int_eq(stat(spool, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);

	/* listener back: the 5 come first, in order, then audit.replayed, then the new one */
	int fd = dgram_listen(path);
	struct rg_kv kv[] = { { "n", "new" } };
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.up", kv, 1), 0);
	for (int i = 0; i < 5; i++) {
		char *r = dgram_read(fd);
		ck_assert_ptr_nonnull(r);
		ck_assert_msg(strstr(r, "test.down;") != NULL, "%s", r);
		char want[8];
		snprintf(want, sizeof want, "%d", i);
		ck_assert_str_eq(field(r, "n", v, sizeof v), want);
	}
	char *r = dgram_read(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, "audit.replayed;") != NULL, "%s", r);
	ck_assert_str_eq(field(r, "count", v, sizeof v), "5");
	r = dgram_read(fd);
	ck_assert_ptr_nonnull(r);
	ck_assert_msg(strstr(r, "test.up;") != NULL, "%s", r);
	ck_assert_ptr_null(dgram_read(fd));
	close(fd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

START_TEST(test_full_spool_loses_with_a_clear_error_and_reports_the_loss)
{
	mk_tmpdir();
	char path[128], target[140], v[64];
	snprintf(path, sizeof path, "%s/log.sock", tmpdir);
	snprintf(target, sizeof target, "unix:%s", path);
	struct rg_audit *a = sink(target, RG_AUDIT_RFC3164, tmpdir);
	rg_audit_set_spool_limit(a, 400); /* room for about two records */

	int rc, spooled = 0, lost = 0;
	for (int i = 0; i < 6; i++) {
		rc = rg_audit_emit(a, LOG_INFO, "test.down", NULL, 0);
		spooled += rc == 1;
		lost += rc == -1;
	}
	ck_assert_int_ge(spooled, 1);
	ck_assert_int_ge(lost, 1);
	ck_assert_int_eq(spooled + lost, 6);
	char err[256];
	rg_audit_last_error(a, err, sizeof err);
	ck_assert_msg(strstr(err, "spool") && strstr(err, "full"), "%s", err);

	/* once the target is back: spooled records, audit.replayed, then audit.lost */
	int fd = dgram_listen(path);
	ck_assert_int_eq(rg_audit_emit(a, LOG_INFO, "test.up", NULL, 0), 0);
	char *r;
	int seen_lost = 0;
	while ((r = dgram_read(fd)) != NULL) {
		if (strstr(r, "audit.lost;")) {
			seen_lost = 1;
			/* the emits that failed, plus audit.lost reports that had no room either */
			ck_assert_int_ge(atoi(field(r, "count", v, sizeof v)), lost);
			ck_assert_ptr_nonnull(field(r, "first_seq", v, sizeof v));
		}
	}
	ck_assert_int_eq(seen_lost, 1);
	close(fd);
	rg_audit_free(a);
	rm_tmpdir();
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("format");
	tcase_add_loop_test(tc, test_sanitize_renders_unsafe_bytes_as_hex_escapes, 0,
			    sizeof sanitize_cases / sizeof sanitize_cases[0]);
	tcase_add_test(tc, test_sanitize_truncates_at_escape_and_character_boundaries);
	tcase_add_test(tc, test_rfc3164_record_is_header_then_evt_format_text);
	tcase_add_test(tc, test_rfc5424_record_carries_fields_as_escaped_structured_data);
	tcase_add_test(tc, test_seq_increases_across_sinks_of_one_process);
	tcase_add_test(tc, test_invalid_targets_are_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("delivery");
	tcase_add_test(tc, test_unreachable_target_without_spool_loses_the_record);
	tcase_add_test(tc, test_spooled_records_are_replayed_in_order_before_new_ones);
	tcase_add_test(tc, test_full_spool_loses_with_a_clear_error_and_reports_the_loss);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(audit_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
