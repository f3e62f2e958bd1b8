/*
 * test_config.c - rotagate.conf parsing and validation (plugin/config.c).
 *
 * Every validation error is pinned twice: as written, and with four lines of
 * comments (#, //, a two-line / * * / block) in front, where libconfuse 3.3
 * on its own would count the lines wrong.  The expected message names the
 * real line of the mistake.
 */
#include <check.h>
#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "calendar.h"

#define DIR4 "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n}\n"
/* lines 5..7 */
#define SITE3 "site \"hq\" {\n  capacity = 10\n  doors = { \"main\" }\n"
/* lines 8..9 */
#define ROTA2 "  rota \"a\" {\n    group = \"cn=a,dc=example,dc=org\"\n"

struct bad_case {
	const char *what;
	const char *text;
	int line;
	const char *msg; /* expected text after "NAME:LINE: " (substring) */
};

static const struct bad_case bad_cases[] = {
	{ "unknown key in directory",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n  colour = blue\n}\n",
	  4, "unknown key 'colour' in section directory" },
	{ "unknown key in a rota",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    colour = red\n  }\n}\n",
	  11, "unknown key 'colour' in rota \"a\"" },
	{ "unknown top-level key", DIR4 "colour = red\n", 5, "unknown key 'colour'" },
	{ "bad day name on the second line of the list",
	  DIR4 SITE3 ROTA2 "    days = { mon, Tue,\n      funday }\n  }\n}\n",
	  11, "site \"hq\" rota \"a\": unknown day 'funday' (use mon, tue, wed, thu, fri, sat, sun)" },
	{ "weeks N greater than M",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    weeks = \"3/2\"\n  }\n}\n",
	  11, "rota \"a\": weeks '3/2' must be \"N/M\" with 1 <= N <= M <= 52" },
	{ "weeks M above 52",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    weeks = \"1/53\"\n  }\n}\n",
	  11, "weeks '1/53' must be" },
	{ "weeks N zero",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    weeks = \"0/2\"\n  }\n}\n",
	  11, "weeks '0/2' must be" },
	{ "weeks not N/M",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    weeks = \"odd\"\n  }\n}\n",
	  11, "weeks 'odd' must be" },
	{ "cycle-start on a Tuesday",
	  DIR4 SITE3 ROTA2
	  "    days = { mon }\n    weeks = \"1/2\"\n    cycle-start = \"2020-09-08\"\n  }\n}\n",
	  12, "rota \"a\": cycle-start 2020-09-08 is a Tuesday, not a Monday" },
	{ "cycle-start missing for a 3-week cycle",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    weeks = \"2/3\"\n  }\n}\n",
	  11, "rota \"a\": weeks \"2/3\" needs cycle-start (the Monday of week 1)" },
	{ "until before from",
	  DIR4 SITE3 ROTA2
	  "    days = { mon }\n    from = \"2021-04-01\"\n    until = \"2021-03-31\"\n  }\n}\n",
	  12, "rota \"a\": until 2021-03-31 is before from 2021-04-01" },
	{ "from not a real date",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    from = \"2026-02-30\"\n  }\n}\n",
	  11, "rota \"a\": from '2026-02-30' is not a valid date (YYYY-MM-DD)" },
	{ "cycle-start not a date",
	  DIR4 SITE3 ROTA2
	  "    days = { mon }\n    weeks = \"1/2\"\n    cycle-start = \"7 Sep 2020\"\n  }\n}\n",
	  12, "cycle-start '7 Sep 2020' is not a valid date" },
	{ "closed day not a real date, second element on its own line",
	  DIR4 SITE3 "  closed = { \"2026-12-25\",\n    \"2026-13-01\" }\n}\n",
	  9, "site \"hq\": closed '2026-13-01' is not a valid date" },
	{ "hours without minutes",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    hours = \"7-19\"\n  }\n}\n",
	  11, "rota \"a\": hours '7-19' must be \"HH:MM-HH:MM\"" },
	{ "hours of zero length",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    hours = \"07:00-07:00\"\n  }\n}\n",
	  11, "hours '07:00-07:00' must be" },
	{ "hours past 24:00",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n    hours = \"22:00-25:00\"\n  }\n}\n",
	  11, "hours '22:00-25:00' must be" },
	{ "rota group not a DN with membership = member",
	  DIR4 SITE3 "  rota \"a\" {\n    days = { mon }\n    group = \"rota-team-a\"\n  }\n}\n",
	  10, "rota \"a\": group 'rota-team-a' is not a DN (membership = member needs group DNs)" },
	{ "exempt group not a DN with membership = uniqueMember",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  membership = uniqueMember\n}\n"
	  SITE3 "  exempt \"estates\" { group = \"facilities\" }\n}\n",
	  9, "site \"hq\" exempt \"estates\": group 'facilities' is not a DN (membership = "
	     "uniqueMember needs group DNs)" },
	{ "deny group not a DN with membership = memberOf",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  membership = memberOf\n}\n"
	  SITE3 "  deny \"isolating\" {\n    group = \"cn=x,,\"\n  }\n}\n",
	  10, "deny \"isolating\": group 'cn=x,,' is not a DN (membership = memberOf" },
	{ "door claimed by two sites",
	  DIR4 SITE3 "}\nsite \"annex\" {\n  capacity = 5\n  doors = { \"side\",\n   \"main\" }\n}\n",
	  12, "site \"annex\": door 'main' is already claimed by site \"hq\"" },
	{ "door listed twice in one site",
	  DIR4 "site \"hq\" {\n  capacity = 10\n  doors = { \"main\", \"side\",\n    \"main\" }\n}\n",
	  8, "site \"hq\": door 'main' is listed twice" },
	{ "capacity smaller than reserved",
	  DIR4 SITE3 "  reserved = 11\n}\n", 8, "site \"hq\": reserved (11) is larger than capacity (10)" },
	{ "capacity zero",
	  DIR4 "site \"hq\" {\n  doors = { \"main\" }\n  capacity = 0\n}\n", 7,
	  "site \"hq\": capacity must be at least 1" },
	{ "capacity missing", DIR4 "site \"hq\" {\n  doors = { \"main\" }\n}\n", 5,
	  "site \"hq\": capacity is required" },
	{ "capacity negative", DIR4 "site \"hq\" {\n  doors = { \"main\" }\n  capacity = -4\n}\n", 7,
	  "site \"hq\": capacity = -4 is out of range" },
	{ "unknown timezone",
	  DIR4 SITE3 "  timezone = \"Europe/Londn\"\n}\n", 8, "site \"hq\": unknown timezone 'Europe/Londn'" },
	{ "missing final brace",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n  }\n", 5,
	  "site \"hq\" is not closed (missing '}' before the end of the file)" },
	{ "missing brace of a rota at the end",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n", 8, "rota \"a\" is not closed" },
	{ "missing brace of a rota in the middle, found by indentation",
	  DIR4 SITE3 ROTA2 "    days = { mon }\n  exempt \"e\" { group = \"cn=e,dc=example,dc=org\" }\n}\n",
	  8, "rota \"a\" is not closed" },
	{ "a closing brace too many", DIR4 SITE3 "}\n}\n", 9, "unexpected closing brace" },
	{ "site without doors", DIR4 "site \"hq\" {\n  capacity = 10\n}\n", 5, "site \"hq\" has no doors" },
	{ "site with an empty door list",
	  DIR4 "site \"hq\" {\n  capacity = 10\n  doors = {}\n}\n", 7, "site \"hq\" has no doors" },
	{ "no site at all", DIR4, 4, "no site defined" },
	{ "two sites with one name", DIR4 SITE3 "}\nsite \"hq\" {\n  capacity = 1\n}\n", 9,
	  "duplicate title 'hq'" },
	{ "bind-dn without bind-password-file",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  bind-dn = \"cn=door,dc=example,dc=org\"\n}\n" SITE3 "}\n",
	  4, "directory: bind-dn is set but bind-password-file is not" },
	{ "bind-password-file without bind-dn",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  bind-password-file = \"/nonexistent/secret\"\n}\n" SITE3 "}\n",
	  4, "directory: bind-password-file is set but bind-dn is not" },
	{ "bind-password-file missing",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  bind-dn = \"cn=door,dc=example,dc=org\"\n"
	  "  bind-password-file = \"/nonexistent/secret\"\n}\n" SITE3 "}\n",
	  5, "directory: bind-password-file '/nonexistent/secret': No such file or directory" },
	{ "bind-password-file relative",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  bind-dn = \"cn=door,dc=example,dc=org\"\n"
	  "  bind-password-file = \"ldap.secret\"\n}\n" SITE3 "}\n",
	  5, "bind-password-file 'ldap.secret' must be an absolute path" },
	{ "user-filter without %u",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  user-filter = \"(uid=admin)\"\n}\n" SITE3 "}\n",
	  4, "directory: user-filter '(uid=admin)' must contain %u" },
	{ "user-filter with unbalanced parentheses",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  user-filter = \"(&(uid=%u)\"\n}\n" SITE3 "}\n",
	  4, "has unbalanced parentheses" },
	{ "uri missing", "directory {\n  base = \"dc=example,dc=org\"\n}\n" SITE3 "}\n", 1,
	  "directory: uri is required" },
	{ "uri not LDAP",
	  "directory {\n  uri = \"ldap://a.example.org http://b.example.org\"\n"
	  "  base = \"dc=example,dc=org\"\n}\n" SITE3 "}\n",
	  2, "directory: uri 'http://b.example.org' is not an LDAP URI" },
	{ "base not a DN",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"example.org\"\n}\n" SITE3 "}\n", 3,
	  "directory: base 'example.org' is not a valid DN" },
	{ "membership unknown",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  membership = members\n}\n" SITE3 "}\n",
	  4, "directory: membership 'members' is not valid (use member, uniqueMember, memberUid or "
	     "memberOf)" },
	{ "tls unknown",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n  tls = yes\n}\n" SITE3
	  "}\n",
	  4, "directory: tls 'yes' is not valid (use starttls or none)" },
	{ "tls-require-cert unknown",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  tls-require-cert = allow\n}\n" SITE3 "}\n",
	  4, "directory: tls-require-cert 'allow' is not valid (use demand or never)" },
	{ "lookup unknown",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  lookup = cached\n}\n" SITE3 "}\n",
	  4, "directory: lookup 'cached' is not valid (use live or snapshot)" },
	{ "timeout zero",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n  timeout = 0\n}\n" SITE3
	  "}\n",
	  4, "directory: timeout = 0 is out of range (1..300)" },
	{ "allow-insecure-bind not a boolean",
	  "directory {\n  uri = \"ldapi:///\"\n  base = \"dc=example,dc=org\"\n"
	  "  allow-insecure-bind = maybe\n}\n" SITE3 "}\n",
	  4, "invalid boolean value for option 'allow-insecure-bind'" },
	{ "backend unknown", DIR4 "ledger {\n  backend = sqlite\n}\n" SITE3 "}\n", 6,
	  "ledger: backend 'sqlite' is not valid (use lmdb or ldap)" },
	{ "backend ldap without ldap-base", DIR4 "ledger {\n  backend = ldap\n}\n" SITE3 "}\n", 6,
	  "ledger: backend = ldap needs ldap-base" },
	{ "relative ledger path", DIR4 "ledger {\n  path = \"var/lib/rotagate\"\n}\n" SITE3 "}\n", 6,
	  "ledger: path 'var/lib/rotagate' must be an absolute path" },
	{ "map-size zero", DIR4 "ledger {\n  map-size = 0\n}\n" SITE3 "}\n", 6,
	  "ledger: map-size = 0 is out of range" },
	{ "ledger uri not LDAP",
	  DIR4 "ledger {\n  backend = ldap\n  ldap-base = \"ou=occ,dc=example,dc=org\"\n"
	  "  uri = \"ldaps://provider.example.org https://x.example.org\"\n}\n" SITE3 "}\n",
	  8, "ledger: uri 'https://x.example.org' is not an LDAP URI" },
	{ "ledger uri naming no URI", DIR4 "ledger {\n  uri = \" , \"\n}\n" SITE3 "}\n", 6,
	  "ledger: uri names no LDAP URI" },
	{ "ledger uri naming two servers (no failover for the ledger)",
	  DIR4 "ledger {\n  backend = ldap\n  ldap-base = \"ou=occ,dc=example,dc=org\"\n"
	  "  uri = \"ldapi:/// ldapi://%2Fother%2Fsocket\"\n}\n" SITE3 "}\n",
	  8, "ledger: uri names 2 servers; the ledger writes to exactly one" },
	{ "ledger bind-dn without bind-password-file",
	  DIR4 "ledger {\n  uri = \"ldapi:///\"\n  bind-dn = \"cn=ledger,dc=example,dc=org\"\n}\n"
	  SITE3 "}\n",
	  7, "ledger: bind-dn is set but bind-password-file is not" },
	{ "ledger bind-password-file without bind-dn",
	  DIR4 "ledger {\n  bind-password-file = \"/nonexistent/secret\"\n}\n" SITE3 "}\n", 6,
	  "ledger: bind-password-file is set but bind-dn is not" },
	{ "ledger bind-dn not a DN",
	  DIR4 "ledger {\n  bind-dn = \"ledger writer\"\n"
	  "  bind-password-file = \"/nonexistent/secret\"\n}\n" SITE3 "}\n",
	  6, "ledger: bind-dn 'ledger writer' is not a valid DN" },
	{ "ledger bind-password-file missing",
	  DIR4 "ledger {\n  bind-dn = \"cn=ledger,dc=example,dc=org\"\n"
	  "  bind-password-file = \"/nonexistent/secret\"\n}\n" SITE3 "}\n",
	  7, "ledger: bind-password-file '/nonexistent/secret': No such file or directory" },
	{ "ledger bind-password-file relative",
	  DIR4 "ledger {\n  bind-dn = \"cn=ledger,dc=example,dc=org\"\n"
	  "  bind-password-file = \"ledger.secret\"\n}\n" SITE3 "}\n",
	  7, "ledger: bind-password-file 'ledger.secret' must be an absolute path" },
	{ "ledger uri set twice", DIR4 "ledger {\n  uri = \"ldapi:///\"\n  uri = \"ldapi:///\"\n}\n"
	  SITE3 "}\n", 7, "uri is set twice in this section (first on line " },
	{ "format unknown", DIR4 "audit {\n  format = json\n}\n" SITE3 "}\n", 6,
	  "audit: format 'json' is not valid (use rfc3164 or rfc5424)" },
	{ "facility unknown", DIR4 "audit {\n  facility = kernel\n}\n" SITE3 "}\n", 6,
	  "audit: facility 'kernel' is not valid (use auth, authpriv," },
	{ "health-reasons unknown", DIR4 "audit {\n  health-reasons = full\n}\n" SITE3 "}\n", 6,
	  "audit: health-reasons 'full' is not valid (use neutral or explicit)" },
	{ "audit target udp", DIR4 "audit {\n  target = \"udp:log:514\"\n}\n" SITE3 "}\n", 6,
	  "audit: target 'udp:log:514' is not valid (use syslog, unix:/absolute/path or "
	  "tcp:host:port)" },
	{ "audit target relative unix path", DIR4 "audit {\n  target = \"unix:log.sock\"\n}\n" SITE3
	  "}\n", 6, "audit: target 'unix:log.sock' is not valid" },
	{ "audit target tcp without port", DIR4 "audit {\n  target = \"tcp:loghost\"\n}\n" SITE3
	  "}\n", 6, "audit: target 'tcp:loghost' is not valid" },
	{ "audit target tcp port out of range",
	  DIR4 "audit {\n  target = \"tcp:loghost:70000\"\n}\n" SITE3 "}\n", 6,
	  "audit: target 'tcp:loghost:70000' is not valid" },
	{ "on-directory-failure unknown", DIR4 SITE3 "  on-directory-failure = open\n}\n", 8,
	  "site \"hq\": on-directory-failure 'open' is not valid (use cached or deny)" },
	{ "weekly-target above 100", DIR4 SITE3 "  weekly-target = 120\n}\n", 8,
	  "site \"hq\": weekly-target = 120 is out of range (0..100)" },
	{ "rota without days", DIR4 SITE3 ROTA2 "  }\n}\n", 8, "rota \"a\": days is required" },
	{ "exempt without group", DIR4 SITE3 "  exempt \"estates\" {\n  }\n}\n", 8,
	  "exempt \"estates\": group is required" },
	{ "deny named like a rota", DIR4 SITE3 ROTA2 "    days = { mon }\n  }\n"
	  "  deny \"a\" { group = \"cn=b,dc=example,dc=org\" }\n}\n", 12,
	  "site \"hq\": deny \"a\" has the same name as rota \"a\"" },
	{ "key set twice", DIR4 SITE3 "  capacity = 12\n}\n", 8,
	  "capacity is set twice in this section (first on line " },
	{ "directory section twice", DIR4 "directory {\n  timeout = 3\n}\n" SITE3 "}\n", 5,
	  "section directory appears twice (first on line " },
	{ "site without a title", DIR4 "site {\n  capacity = 1\n}\n", 5, "site" },
	{ "rota with an empty title",
	  DIR4 SITE3 "  rota \"\" {\n    group = \"cn=a,dc=example,dc=org\"\n    days = { mon }\n  }\n}\n",
	  8, "site \"hq\" rota \"\": not a valid rule name" },
	{ "integer not a number", DIR4 "site \"hq\" {\n  doors = { \"main\" }\n  capacity = ten\n}\n",
	  7, "invalid integer value for option 'capacity'" },
	{ "missing equal sign", DIR4 "site \"hq\" {\n  doors = { \"main\" }\n  capacity 10\n}\n", 7,
	  "capacity" },
	{ "string not closed", DIR4 SITE3 "  timezone = \"Europe/London\n}\n", 8,
	  "string is not closed (missing quote)" },
	{ "comment not closed", DIR4 SITE3 "  /* closed for works\n}\n", 8,
	  "comment is not closed (missing '*/')" },
};

#define COMMENTS4 "# rotagate.conf\n// door rules\n/* maintained by facilities,\n   see the wiki */\n"

static void expect_error(const char *name, const char *text, int line, const char *msg)
{
	struct rg_config *cfg = (struct rg_config *)1;
	char err[1024];
	char prefix[256];

	int rc = rg_config_load_string(name, text, &cfg, err, sizeof err);
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_null(cfg);
	snprintf(prefix, sizeof prefix, "%s:%d: ", name, line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "expected prefix '%s', got '%s'",
		      prefix, err);
	ck_assert_msg(strstr(err, msg) != NULL, "expected '%s' in '%s'", msg, err);
}

START_TEST(test_each_mistake_names_its_line)
{
	const struct bad_case *bc = &bad_cases[_i];
	expect_error("t.conf", bc->text, bc->line, bc->msg);
}
END_TEST

START_TEST(test_each_mistake_names_its_real_line_after_comments)
{
	const struct bad_case *bc = &bad_cases[_i];
	char *text = g_strconcat(COMMENTS4, bc->text, NULL);
	expect_error("t.conf", text, bc->line + 4, bc->msg);
	g_free(text);
}
END_TEST

START_TEST(test_comments_inside_sections_do_not_shift_lines)
{
	const char *text =
		"directory { # the LDAP side\n"                 /* 1 */
		"  uri = \"ldapi:///\" // local socket\n"        /* 2 */
		"  # a comment line\n"                           /* 3 */
		"  base = \"dc=example,dc=org\" /* the base */\n" /* 4 */
		"}\n"                                            /* 5 */
		"/*\n"                                           /* 6 */
		" * many lines\n"                                /* 7 */
		" */\n"                                          /* 8 */
		"site \"hq\" {\n"                                /* 9 */
		"  ## several hashes\n"                          /* 10 */
		"  //// several slashes\n"                       /* 11 */
		"  capacity = 10 # ten\n"                        /* 12 */
		"  doors = { \"main\", # first\n"                /* 13 */
		"            \"side\" /* second\n"               /* 14 */
		"            */ }\n"                             /* 15 */
		"  rota \"a\" {\n"                               /* 16 */
		"    # who\n"                                    /* 17 */
		"    group = \"cn=a,dc=example,dc=org\"\n"       /* 18 */
		"    # when\n"                                   /* 19 */
		"    days = { mon, # monday\n"                   /* 20 */
		"      // and\n"                                 /* 21 */
		"      thu, frx }\n"                             /* 22 */
		"  }\n"
		"}\n";
	expect_error("inner.conf", text, 22, "unknown day 'frx'");
}
END_TEST

START_TEST(test_comment_marks_inside_strings_are_not_comments)
{
	const char *text = "directory {\n"
			   "  uri = \"ldap://ldap1.example.org/#x ldap://ldap2.example.org\"\n"
			   "  base = 'dc=example,dc=org'\n"
			   "  user-filter = \"(&(description=/*x*/)(uid=%u))\"\n"
			   "}\n"
			   "site \"hq\" { capacity = 3 doors = { \"a#b\", 'c//d' } }\n";
	struct rg_config *cfg = NULL;
	char err[512] = "";
	ck_assert_msg(rg_config_load_string("s.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(cfg->directory.user_filter, "(&(description=/*x*/)(uid=%u))");
	ck_assert_uint_eq(cfg->sites[0].ndoors, 2);
	ck_assert_str_eq(cfg->sites[0].doors[0], "a#b");
	ck_assert_str_eq(cfg->sites[0].doors[1], "c//d");
	rg_config_free(cfg);
}
END_TEST

static const char full_text[] =
	"directory {\n"
	"  uri = \"ldaps://ldap1.example.org ldaps://ldap2.example.org\"\n"
	"  base = \"dc=example,dc=org\"\n"
	"  user-filter = \"(&(objectClass=inetOrgPerson)(uid=%u))\"\n"
	"  badge-attribute = \"employeeNumber\"\n"
	"  membership = uniqueMember\n"
	"  nested-groups = 3\n"
	"  timeout = 5\n"
	"  tls = none\n"
	"  tls-ca-file = \"/etc/ssl/certs/ca-certificates.crt\"\n"
	"  tls-require-cert = never\n"
	"  allow-insecure-bind = true\n"
	"  lookup = snapshot\n"
	"  cache-ttl = 60\n"
	"  offline-max-age = 3600\n"
	"}\n"
	"ledger {\n"
	"  backend = ldap\n"
	"  path = \"/srv/rotagate\"\n"
	"  ldap-base = \"ou=occupancy,dc=example,dc=org\"\n"
	"  uri = \"ldapi://%2Fvar%2Frun%2Fslapd%2Fledger.sock\"\n"
	"  retain-days = 30\n"
	"  map-size = 16\n"
	"}\n"
	"audit {\n"
	"  target = \"tcp:[::1]:6514\"\n"
	"  format = rfc5424\n"
	"  facility = local3\n"
	"  ident = \"doors\"\n"
	"  spool = \"\"\n"
	"  health-reasons = explicit\n"
	"}\n"
	"site \"hq\" {\n"
	"  timezone = \"Europe/London\"\n"
	"  capacity = 400\n"
	"  reserved = 20\n"
	"  weekly-target = 75\n"
	"  doors = { \"main-entrance\", \"side-gate\" }\n"
	"  closed = { \"2026-12-26\", \"2026-12-25\", \"2026-12-25\" }\n"
	"  on-directory-failure = deny\n"
	"  rota \"team-a\" {\n"
	"    group = \"cn=rota-team-a,ou=groups,dc=example,dc=org\"\n"
	"    days = { MON, wed, Friday }\n"
	"    weeks = \"2/3\"\n"
	"    cycle-start = \"2020-09-07\"\n"
	"    hours = \"22:00-06:00\"\n"
	"    from = \"2020-09-01\"\n"
	"    until = \"2021-03-31\"\n"
	"  }\n"
	"  rota \"team-b\" {\n"
	"    group = \"cn=rota-team-b,ou=groups,dc=example,dc=org\"\n"
	"    days = { sat, sun }\n"
	"  }\n"
	"  exempt \"estates\" { group = \"cn=facilities,ou=groups,dc=example,dc=org\" }\n"
	"  deny \"isolating\" { group = \"cn=self-isolating,ou=groups,dc=example,dc=org\" }\n"
	"}\n"
	"site \"annex\" {\n"
	"  capacity = 5\n"
	"  doors = { \"annex-door\" }\n"
	"  exempt \"estates\" { group = \"CN=Facilities,OU=groups,DC=example,DC=org\" }\n"
	"}\n";

static int32_t day_of(const char *ymd)
{
	int32_t d = 0;
	ck_assert_int_eq(rg_cal_parse_date(ymd, &d), 0);
	return d;
}

START_TEST(test_full_config_parses_into_the_expected_struct)
{
	struct rg_config *cfg = NULL;
	char err[512] = "";
	ck_assert_msg(rg_config_load_string("full.conf", full_text, &cfg, err, sizeof err) == 0, "%s",
		      err);

	const struct rg_directory_cfg *d = &cfg->directory;
	ck_assert_str_eq(d->uri, "ldaps://ldap1.example.org ldaps://ldap2.example.org");
	ck_assert_str_eq(d->base, "dc=example,dc=org");
	ck_assert_ptr_null(d->bind_dn);
	ck_assert_ptr_null(d->bind_password_file);
	ck_assert_str_eq(d->user_filter, "(&(objectClass=inetOrgPerson)(uid=%u))");
	ck_assert_str_eq(d->badge_attribute, "employeeNumber");
	ck_assert_int_eq(d->membership, RG_MEMBER_UNIQUEMEMBER);
	ck_assert_uint_eq(d->nested_groups, 3);
	ck_assert_uint_eq(d->timeout, 5);
	ck_assert_int_eq(d->tls, RG_TLS_NONE);
	ck_assert_str_eq(d->tls_ca_file, "/etc/ssl/certs/ca-certificates.crt");
	ck_assert_int_eq(d->tls_require_cert, RG_TLS_NEVER);
	ck_assert(d->allow_insecure_bind);
	ck_assert_int_eq(d->lookup, RG_LOOKUP_SNAPSHOT);
	ck_assert_uint_eq(d->cache_ttl, 60);
	ck_assert_uint_eq(d->offline_max_age, 3600);

	ck_assert_int_eq(cfg->ledger.backend, RG_LEDGER_LDAP);
	ck_assert_str_eq(cfg->ledger.path, "/srv/rotagate");
	ck_assert_str_eq(cfg->ledger.ldap_base, "ou=occupancy,dc=example,dc=org");
	ck_assert_str_eq(cfg->ledger.uri, "ldapi://%2Fvar%2Frun%2Fslapd%2Fledger.sock");
	ck_assert_ptr_null(cfg->ledger.bind_dn);
	ck_assert_ptr_null(cfg->ledger.bind_password_file);
	ck_assert_uint_eq(cfg->ledger.retain_days, 30);
	ck_assert_uint_eq(cfg->ledger.map_size, 16u * 1024 * 1024);

	ck_assert_str_eq(cfg->audit.target, "tcp:[::1]:6514");
	ck_assert_int_eq(cfg->audit.format, RG_AUDIT_RFC5424);
	ck_assert_int_eq(cfg->audit.facility, LOG_LOCAL3);
	ck_assert_str_eq(cfg->audit.ident, "doors");
	ck_assert_ptr_null(cfg->audit.spool);
	ck_assert_int_eq(cfg->audit.health_reasons, RG_HEALTH_EXPLICIT);

	ck_assert_uint_eq(cfg->nsites, 2);
	const struct rg_site *s = &cfg->sites[0];
	ck_assert_str_eq(s->name, "hq");
	ck_assert_str_eq(s->timezone, "Europe/London");
	ck_assert_uint_eq(s->capacity, 400);
	ck_assert_uint_eq(s->reserved, 20);
	ck_assert_uint_eq(s->weekly_target, 75);
	ck_assert_uint_eq(s->ndoors, 2);
	ck_assert_str_eq(s->doors[0], "main-entrance");
	ck_assert_str_eq(s->doors[1], "side-gate");
	ck_assert_uint_eq(s->nclosed, 2); /* sorted, duplicate dropped */
	ck_assert_int_eq(s->closed[0], day_of("2026-12-25"));
	ck_assert_int_eq(s->closed[1], day_of("2026-12-26"));
	ck_assert_int_eq(s->on_directory_failure, RG_ONFAIL_DENY);

	ck_assert_uint_eq(s->nrotas, 2);
	const struct rg_rota *r = &s->rotas[0];
	ck_assert_str_eq(r->name, "team-a");
	ck_assert_str_eq(r->group, "cn=rota-team-a,ou=groups,dc=example,dc=org");
	ck_assert_uint_eq(r->days, RG_DAY_MON | RG_DAY_MON << 2 | RG_DAY_MON << 4);
	ck_assert_uint_eq(r->week_n, 2);
	ck_assert_uint_eq(r->week_m, 3);
	ck_assert_int_eq(r->cycle_start, day_of("2020-09-07"));
	ck_assert_int_eq(r->hours_from, 22 * 60);
	ck_assert_int_eq(r->hours_to, 6 * 60);
	ck_assert_int_eq(r->from, day_of("2020-09-01"));
	ck_assert_int_eq(r->until, day_of("2021-03-31"));

	r = &s->rotas[1];
	ck_assert_str_eq(r->name, "team-b");
	ck_assert_uint_eq(r->days, RG_DAY_MON << 5 | RG_DAY_MON << 6);
	ck_assert_uint_eq(r->week_n, 1);
	ck_assert_uint_eq(r->week_m, 1);
	ck_assert_int_eq(r->cycle_start, RG_NO_DATE);
	ck_assert_int_lt(r->hours_from, 0);
	ck_assert_int_eq(r->from, RG_NO_DATE);
	ck_assert_int_eq(r->until, RG_NO_DATE);

	ck_assert_uint_eq(s->nexempt, 1);
	ck_assert_str_eq(s->exempt[0].name, "estates");
	ck_assert_str_eq(s->exempt[0].group, "cn=facilities,ou=groups,dc=example,dc=org");
	ck_assert_uint_eq(s->ndeny, 1);
	ck_assert_str_eq(s->deny[0].name, "isolating");

	ck_assert_ptr_eq(rg_config_site_for_door(cfg, "side-gate"), &cfg->sites[0]);
	ck_assert_ptr_eq(rg_config_site_for_door(cfg, "annex-door"), &cfg->sites[1]);
	ck_assert_ptr_null(rg_config_site_for_door(cfg, "back-door"));
	ck_assert_ptr_eq(rg_config_site(cfg, "annex"), &cfg->sites[1]);
	ck_assert_ptr_null(rg_config_site(cfg, "HQ2"));

	size_t n = 0;
	const char **groups = rg_config_all_groups(cfg, &n);
	ck_assert_ptr_nonnull(groups);
	ck_assert_uint_eq(n, 4); /* the annex's estates group differs only in case */
	ck_assert_str_eq(groups[0], "cn=rota-team-a,ou=groups,dc=example,dc=org");
	ck_assert_str_eq(groups[3], "cn=self-isolating,ou=groups,dc=example,dc=org");
	ck_assert_ptr_null(groups[4]);
	free(groups);
	rg_config_free(cfg);
}
END_TEST

START_TEST(test_minimal_config_gets_the_documented_defaults)
{
	struct rg_config *cfg = NULL;
	char err[512] = "";
	const char *text = DIR4 "site \"hq\" {\n  capacity = 1\n  doors = { \"d\" }\n}\n";
	ck_assert_msg(rg_config_load_string("min.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_ptr_null(cfg->path);
	const struct rg_directory_cfg *d = &cfg->directory;
	ck_assert_str_eq(d->user_filter, "(uid=%u)");
	ck_assert_ptr_null(d->badge_attribute);
	ck_assert_int_eq(d->membership, RG_MEMBER_MEMBER);
	ck_assert_uint_eq(d->nested_groups, 0);
	ck_assert_uint_eq(d->timeout, 2);
	ck_assert_int_eq(d->tls, RG_TLS_STARTTLS);
	ck_assert_ptr_null(d->tls_ca_file);
	ck_assert_int_eq(d->tls_require_cert, RG_TLS_DEMAND);
	ck_assert(!d->allow_insecure_bind);
	ck_assert(d->password_file_check);
	ck_assert_int_eq(d->lookup, RG_LOOKUP_LIVE);
	ck_assert_uint_eq(d->cache_ttl, 300);
	ck_assert_uint_eq(d->offline_max_age, 86400);
	ck_assert_int_eq(cfg->ledger.backend, RG_LEDGER_LMDB);
	ck_assert_str_eq(cfg->ledger.path, "/var/lib/rotagate");
	ck_assert_ptr_null(cfg->ledger.ldap_base);
	ck_assert_ptr_null(cfg->ledger.uri);
	ck_assert_ptr_null(cfg->ledger.bind_dn);
	ck_assert_ptr_null(cfg->ledger.bind_password_file);
	ck_assert_uint_eq(cfg->ledger.retain_days, 400);
	ck_assert_uint_eq(cfg->ledger.map_size, 64u * 1024 * 1024);
	ck_assert_str_eq(cfg->audit.target, "syslog");
	ck_assert_int_eq(cfg->audit.format, RG_AUDIT_RFC3164);
	ck_assert_int_eq(cfg->audit.facility, LOG_AUTHPRIV);
	ck_assert_str_eq(cfg->audit.ident, "rotagate");
	ck_assert_str_eq(cfg->audit.spool, "/var/spool/rotagate");
	ck_assert_int_eq(cfg->audit.health_reasons, RG_HEALTH_NEUTRAL);
	const struct rg_site *s = &cfg->sites[0];
	ck_assert_ptr_null(s->timezone);
	ck_assert_uint_eq(s->reserved, 0);
	ck_assert_uint_eq(s->weekly_target, 80);
	ck_assert_uint_eq(s->nclosed, 0);
	ck_assert_int_eq(s->on_directory_failure, RG_ONFAIL_CACHED);
	ck_assert_uint_eq(s->nrotas + s->nexempt + s->ndeny, 0);
	rg_config_free(cfg);
}
END_TEST

START_TEST(test_memberuid_accepts_group_names)
{
	struct rg_config *cfg = NULL;
	char err[512] = "";
	const char *text = "directory {\n  uri = \"ldap://127.0.0.1:3890\"\n"
			   "  base = \"dc=example,dc=org\"\n  membership = memberUid\n}\n" SITE3
			   "  rota \"a\" { group = \"rota-team-a\" days = { tue } }\n}\n";
	ck_assert_msg(rg_config_load_string("uid.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(cfg->sites[0].rotas[0].group, "rota-team-a");
	ck_assert_int_eq(cfg->directory.membership, RG_MEMBER_MEMBERUID);
	rg_config_free(cfg);
}
END_TEST

START_TEST(test_list_append_adds_to_the_list)
{
	struct rg_config *cfg = NULL;
	char err[512] = "";
	const char *text = DIR4 SITE3 "  doors += { \"side\" }\n  closed = { \"2026-01-01\" }\n"
			   "  closed += { \"2025-12-31\",\n  \"2026-13-13\" }\n}\n";
	ck_assert_int_eq(rg_config_load_string("a.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_str_eq(err, "a.conf:11: site \"hq\": closed '2026-13-13' is not a valid date "
			      "(YYYY-MM-DD)");
	text = DIR4 SITE3 "  doors += { \"side\" }\n  closed = { \"2026-01-01\" }\n"
	       "  closed += { \"2025-12-31\" }\n}\n";
	ck_assert_msg(rg_config_load_string("a.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(cfg->sites[0].ndoors, 2);
	ck_assert_str_eq(cfg->sites[0].doors[1], "side");
	ck_assert_uint_eq(cfg->sites[0].nclosed, 2);
	ck_assert_int_eq(cfg->sites[0].closed[0], day_of("2025-12-31"));
	rg_config_free(cfg);
}
END_TEST

START_TEST(test_reserved_equal_to_capacity_is_allowed)
{
	struct rg_config *cfg = NULL;
	char err[512] = "";
	ck_assert_msg(rg_config_load_string("r.conf", DIR4 SITE3 "  reserved = 10\n}\n", &cfg, err,
					    sizeof err) == 0,
		      "%s", err);
	ck_assert_uint_eq(cfg->sites[0].reserved, 10);
	rg_config_free(cfg);
}
END_TEST

/* ---- files on disk ---- */

static char tmpdir[256];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/rg-config-XXXXXX", g_get_tmp_dir());
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	GDir *dir = g_dir_open(tmpdir, 0, NULL);
	const char *e;
	while (dir && (e = g_dir_read_name(dir))) {
		char *p = g_build_filename(tmpdir, e, NULL);
		unlink(p);
		g_free(p);
	}
	if (dir)
		g_dir_close(dir);
	rmdir(tmpdir);
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
	char *p = g_build_filename(tmpdir, name, NULL);
	ck_assert(g_file_set_contents(p, text, -1, NULL));
	ck_assert_int_eq(chmod(p, mode), 0);
	return p;
}

START_TEST(test_load_from_file_names_the_path_and_real_line)
{
	char *path = write_file("broken.conf",
				COMMENTS4 DIR4 "# the site\n" SITE3 "  timezone = \"Mars/Olympus\"\n}\n",
				0644);
	struct rg_config *cfg = NULL;
	char err[1024], want[600];
	ck_assert_int_eq(rg_config_load(path, &cfg, err, sizeof err), -1);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof want, "%s:13: site \"hq\": unknown timezone 'Mars/Olympus'", path);
	ck_assert_str_eq(err, want);
	g_free(path);
}
END_TEST

START_TEST(test_load_from_file_hashes_the_file_bytes)
{
	/* sha256 of exactly these bytes, computed with sha256sum(1) */
	static const char text[] = "directory { uri = \"ldapi:///\" base = \"dc=example,dc=org\" }\n"
				   "site \"hq\" { capacity = 1 doors = { \"d\" } } # end\n";
	char *path = write_file("good.conf", text, 0644);
	struct rg_config *cfg = NULL;
	char err[1024] = "";
	ck_assert_msg(rg_config_load(path, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(cfg->path, path);
	ck_assert_str_eq(cfg->sha, "5caad5e95958dae49e5da95da6c8f02e3e697bdd94c750dc577ac616ec5f7d27");
	struct rg_config *again = NULL;
	ck_assert_int_eq(rg_config_load_string("x", text, &again, err, sizeof err), 0);
	ck_assert_str_eq(again->sha, cfg->sha);
	rg_config_free(again);
	rg_config_free(cfg);
	g_free(path);
}
END_TEST

START_TEST(test_load_of_a_missing_file_fails_with_the_reason)
{
	struct rg_config *cfg = NULL;
	char err[512], *path = g_build_filename(tmpdir, "absent.conf", NULL), want[600];
	ck_assert_int_eq(rg_config_load(path, &cfg, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	g_free(path);
}
END_TEST

static char *secret_config(const char *secret_path, bool check)
{
	return g_strdup_printf("directory {\n  uri = \"ldap://127.0.0.1:3890\"\n"
			       "  base = \"dc=example,dc=org\"\n"
			       "  bind-dn = \"cn=door,dc=example,dc=org\"\n"
			       "  bind-password-file = \"%s\"\n"
			       "  password-file-check = %s\n}\n" SITE3 "}\n",
			       secret_path, check ? "true" : "false");
}

START_TEST(test_group_readable_password_file_is_refused)
{
	char *secret = write_file("secret", "s3cret\n", 0640);
	char *text = secret_config(secret, false);
	struct rg_config *cfg = NULL;
	char err[1024];
	ck_assert_int_eq(rg_config_load_string("p.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "p.conf:5: directory: bind-password-file") == err, "%s", err);
	ck_assert_msg(strstr(err, "is accessible by group or others (mode 0640)"), "%s", err);
	ck_assert_msg(!strstr(err, "s3cret"), "%s", err);
	g_free(text);
	g_free(secret);
}
END_TEST

START_TEST(test_password_file_not_owned_by_root_is_refused_unless_check_is_off)
{
	char *secret = write_file("secret", "s3cret\n", 0600);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(secret, 65534, 65534), 0);
	char *text = secret_config(secret, true);
	struct rg_config *cfg = NULL;
	char err[1024];
	ck_assert_int_eq(rg_config_load_string("p.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "p.conf:5: ") == err && strstr(err, "not root"), "%s", err);
	g_free(text);

	text = secret_config(secret, false);
	ck_assert_msg(rg_config_load_string("p.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert(!cfg->directory.password_file_check);
	rg_config_free(cfg);
	g_free(text);
	g_free(secret);
}
END_TEST

/* directory bound as cn=door with dir_secret; a ledger section with `ledger` inside */
static char *ledger_config(const char *dir_secret, const char *ledger)
{
	return g_strdup_printf("directory {\n  uri = \"ldaps://replica.example.org\"\n"
			       "  base = \"dc=example,dc=org\"\n"
			       "  bind-dn = \"cn=door,dc=example,dc=org\"\n"
			       "  bind-password-file = \"%s\"\n"
			       "  password-file-check = false\n  timeout = 3\n}\n"
			       "ledger {\n  backend = ldap\n"
			       "  ldap-base = \"ou=occupancy,dc=example,dc=org\"\n%s}\n" SITE3 "}\n",
			       dir_secret, ledger);
}

START_TEST(test_ledger_connection_defaults_to_the_directory)
{
	char *secret = write_file("secret", "s3cret\n", 0600);
	char *text = ledger_config(secret, "");
	struct rg_config *cfg = NULL;
	struct rg_directory_cfg conn;
	char err[1024] = "";
	ck_assert_msg(rg_config_load_string("l.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	rg_config_ledger_connection(cfg, &conn);
	ck_assert_str_eq(conn.uri, "ldaps://replica.example.org");
	ck_assert_str_eq(conn.bind_dn, "cn=door,dc=example,dc=org");
	ck_assert_str_eq(conn.bind_password_file, secret);
	ck_assert_uint_eq(conn.timeout, 3);
	rg_config_free(cfg);
	g_free(text);
	g_free(secret);
}
END_TEST

/* The directory's bind DN and password are never sent to another server:
 * a ledger.uri without ledger.bind-dn is refused, unless it is ldapi://
 * (then SASL EXTERNAL: no DN, no password). */
START_TEST(test_ledger_uri_alone_never_gets_the_directory_credentials)
{
	char *secret = write_file("secret", "s3cret\n", 0600);
	char *text = ledger_config(secret, "  uri = \"ldaps://provider.example.org\"\n");
	struct rg_config *cfg = NULL;
	struct rg_directory_cfg conn;
	char err[1024] = "";
	ck_assert_int_eq(rg_config_load_string("l.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "l.conf:12: ledger: uri is set but bind-dn is not") == err, "%s", err);
	ck_assert_msg(!strstr(err, "s3cret"), "%s", err);
	g_free(text);

	text = ledger_config(secret, "  uri = \"ldap://provider.example.org\"\n");
	ck_assert_int_eq(rg_config_load_string("l.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "l.conf:12: ledger: uri is set but bind-dn is not") == err, "%s", err);
	g_free(text);

	text = ledger_config(secret, "  uri = \"ldapi://%2Frun%2Fslapd%2Fledger.sock\"\n");
	ck_assert_msg(rg_config_load_string("l.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	rg_config_ledger_connection(cfg, &conn);
	ck_assert_str_eq(conn.uri, "ldapi://%2Frun%2Fslapd%2Fledger.sock");
	ck_assert_ptr_null(conn.bind_dn); /* SASL EXTERNAL */
	ck_assert_ptr_null(conn.bind_password_file);
	/* the directory itself is unchanged */
	ck_assert_str_eq(cfg->directory.uri, "ldaps://replica.example.org");
	ck_assert_str_eq(cfg->directory.bind_dn, "cn=door,dc=example,dc=org");
	rg_config_free(cfg);
	g_free(text);
	g_free(secret);
}
END_TEST

START_TEST(test_ledger_has_its_own_server_and_credentials)
{
	char *secret = write_file("secret", "s3cret\n", 0600);
	char *lsecret = write_file("ledger.secret", "l3dger\n", 0400);
	char *keys = g_strdup_printf("  uri = \"ldaps://provider.example.org\"\n"
				     "  bind-dn = \"cn=ledger,ou=services,dc=example,dc=org\"\n"
				     "  bind-password-file = \"%s\"\n",
				     lsecret);
	char *text = ledger_config(secret, keys);
	struct rg_config *cfg = NULL;
	struct rg_directory_cfg conn;
	char err[1024] = "", pw[64];
	ck_assert_msg(rg_config_load_string("l.conf", text, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(cfg->ledger.uri, "ldaps://provider.example.org");
	ck_assert_str_eq(cfg->ledger.bind_dn, "cn=ledger,ou=services,dc=example,dc=org");
	ck_assert_str_eq(cfg->ledger.bind_password_file, lsecret);
	rg_config_ledger_connection(cfg, &conn);
	ck_assert_str_eq(conn.uri, "ldaps://provider.example.org");
	ck_assert_str_eq(conn.bind_dn, "cn=ledger,ou=services,dc=example,dc=org");
	ck_assert_int_eq(rg_config_read_password(&conn, pw, sizeof pw, err, sizeof err), 0);
	ck_assert_str_eq(pw, "l3dger");
	ck_assert_str_eq(cfg->directory.bind_dn, "cn=door,dc=example,dc=org");
	rg_config_free(cfg);
	g_free(text);
	g_free(keys);
	g_free(lsecret);
	g_free(secret);
}
END_TEST

START_TEST(test_ledger_password_file_readable_by_others_is_refused)
{
	char *secret = write_file("secret", "s3cret\n", 0600);
	char *lsecret = write_file("ledger.secret", "l3dger\n", 0644);
	char *keys = g_strdup_printf("  bind-dn = \"cn=ledger,ou=services,dc=example,dc=org\"\n"
				     "  bind-password-file = \"%s\"\n",
				     lsecret);
	char *text = ledger_config(secret, keys);
	struct rg_config *cfg = NULL;
	char err[1024];
	ck_assert_int_eq(rg_config_load_string("l.conf", text, &cfg, err, sizeof err), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "l.conf:13: ledger: bind-password-file") == err, "%s", err);
	ck_assert_msg(strstr(err, "is accessible by group or others (mode 0644)"), "%s", err);
	ck_assert_msg(!strstr(err, "l3dger"), "%s", err);
	g_free(text);
	g_free(keys);
	g_free(lsecret);
	g_free(secret);
}
END_TEST

static int read_secret(const char *content, mode_t mode, char *buf, size_t len, char *err,
		       size_t errlen)
{
	char *secret = write_file("secret", content, mode);
	struct rg_directory_cfg d = { .bind_dn = (char *)"cn=door,dc=example,dc=org",
				      .bind_password_file = secret,
				      .password_file_check = false };
	int rc = rg_config_read_password(&d, buf, len, err, errlen);
	unlink(secret);
	g_free(secret);
	return rc;
}

START_TEST(test_read_password_strips_one_trailing_newline)
{
	char buf[64], err[256];
	ck_assert_int_eq(read_secret("s3cret\n", 0600, buf, sizeof buf, err, sizeof err), 0);
	ck_assert_str_eq(buf, "s3cret");
	ck_assert_int_eq(read_secret("with space", 0400, buf, sizeof buf, err, sizeof err), 0);
	ck_assert_str_eq(buf, "with space");
}
END_TEST

START_TEST(test_read_password_refuses_empty_and_multiline_without_leaking)
{
	char buf[64], err[256];
	ck_assert_int_eq(read_secret("\n", 0600, buf, sizeof buf, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "is empty"), "%s", err);
	ck_assert_int_eq(read_secret("", 0600, buf, sizeof buf, err, sizeof err), -1);
	ck_assert_int_eq(read_secret("s3cret\n\n", 0600, buf, sizeof buf, err, sizeof err), -1);
	ck_assert_msg(!strstr(err, "s3cret"), "%s", err);
	ck_assert_int_eq(read_secret("s3cret\n", 0604, buf, sizeof buf, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "mode 0604") && !strstr(err, "s3cret"), "%s", err);
	ck_assert_str_eq(buf, ""); /* zeroed on failure */
	ck_assert_int_eq(read_secret("0123456\n", 0600, buf, 8, err, sizeof err), 0);
	ck_assert_str_eq(buf, "0123456"); /* exactly fits */
	ck_assert_int_eq(read_secret("01234567", 0600, buf, 8, err, sizeof err), -1);
	ck_assert_int_eq(read_secret("0123456789", 0600, buf, 8, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "too long") && !strstr(err, "0123"), "%s", err);
}
END_TEST

START_TEST(test_shipped_example_loads_cleanly)
{
	const char *top = getenv("top_srcdir");
	ck_assert_msg(top != NULL, "top_srcdir is not set (run through make check)");
	char *path = g_build_filename(top, "conf", "rotagate.conf.example", NULL);
	char *text = NULL;
	ck_assert_msg(g_file_get_contents(path, &text, NULL, NULL), "cannot read %s", path);

	/* The example names /etc/rotagate/ldap.secret, which is absent (and not
	 * ours) on a test machine: point it at a file we made, and relax only the
	 * owner check, since the test does not run as root. */
	char *secret = write_file("ldap.secret", "s3cret\n", 0600);
	const char *from = "bind-password-file = \"/etc/rotagate/ldap.secret\"";
	ck_assert_msg(strstr(text, from), "the example no longer names %s", from);
	char *repl = g_strdup_printf("bind-password-file = \"%s\" password-file-check = false",
				     secret);
	char **parts = g_strsplit(text, from, 2);
	char *patched = g_strjoinv(repl, parts);

	struct rg_config *cfg = NULL;
	char err[1024] = "";
	ck_assert_msg(rg_config_load_string(path, patched, &cfg, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_ge(cfg->nsites, 1);
	ck_assert_ptr_nonnull(rg_config_site_for_door(cfg, "main-entrance"));
	ck_assert_uint_ge(cfg->sites[0].nrotas, 1);
	rg_config_free(cfg);

	g_strfreev(parts);
	g_free(patched);
	g_free(repl);
	g_free(secret);
	g_free(text);
	g_free(path);
}
END_TEST

/* ---- threads ---- */

static void *load_many(void *arg)
{
	long bad = (long)(intptr_t)arg;
	for (int i = 0; i < 40; i++) {
		struct rg_config *cfg = NULL;
		char err[512];
		int rc = rg_config_load_string("th.conf", bad ? bad_cases[i % 10].text : full_text, &cfg,
					       err, sizeof err);
		if ((rc == 0) == (bad != 0))
			return (void *)1;
		rg_config_free(cfg);
	}
	return NULL;
}

START_TEST(test_parallel_loads_from_many_threads_are_safe)
{
	pthread_t th[8];
	for (long i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, load_many, (void *)(intptr_t)(i % 2)), 0);
	for (int i = 0; i < 8; i++) {
		void *res = (void *)1;
		ck_assert_int_eq(pthread_join(th[i], &res), 0);
		ck_assert_ptr_null(res);
	}
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("validation");
	int n = (int)(sizeof bad_cases / sizeof bad_cases[0]);
	tcase_add_loop_test(tc, test_each_mistake_names_its_line, 0, n);
	tcase_add_loop_test(tc, test_each_mistake_names_its_real_line_after_comments, 0, n);
	tcase_add_test(tc, test_comments_inside_sections_do_not_shift_lines);
	tcase_add_test(tc, test_comment_marks_inside_strings_are_not_comments);
	tcase_add_test(tc, test_full_config_parses_into_the_expected_struct);
	tcase_add_test(tc, test_minimal_config_gets_the_documented_defaults);
	tcase_add_test(tc, test_memberuid_accepts_group_names);
	tcase_add_test(tc, test_reserved_equal_to_capacity_is_allowed);
	tcase_add_test(tc, test_list_append_adds_to_the_list);
	tcase_add_test(tc, test_parallel_loads_from_many_threads_are_safe);
	suite_add_tcase(s, tc);

	TCase *files = tcase_create("files");
	tcase_add_checked_fixture(files, make_tmpdir, remove_tmpdir);
	tcase_add_test(files, test_load_from_file_names_the_path_and_real_line);
	tcase_add_test(files, test_load_from_file_hashes_the_file_bytes);
	tcase_add_test(files, test_load_of_a_missing_file_fails_with_the_reason);
	tcase_add_test(files, test_group_readable_password_file_is_refused);
	tcase_add_test(files, test_password_file_not_owned_by_root_is_refused_unless_check_is_off);
	tcase_add_test(files, test_read_password_strips_one_trailing_newline);
	tcase_add_test(files, test_read_password_refuses_empty_and_multiline_without_leaking);
	tcase_add_test(files, test_shipped_example_loads_cleanly);
	tcase_add_test(files, test_ledger_connection_defaults_to_the_directory);
	tcase_add_test(files, test_ledger_uri_alone_never_gets_the_directory_credentials);
	tcase_add_test(files, test_ledger_has_its_own_server_and_credentials);
	tcase_add_test(files, test_ledger_password_file_readable_by_others_is_refused);
	suite_add_tcase(s, files);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	/* 160 small cases: a fork each costs more than the tests (CK_FORK=yes to isolate) */
	if (!getenv("CK_FORK"))
		srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
