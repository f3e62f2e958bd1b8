/*
 * config.c - rotagate.conf: libconfuse schema, validation, immutable struct.
 *
 * How a file is read:
 *  1. scan_text() walks the bytes once, the way libconfuse's lexer does: it
 *     blanks out comments (keeping newlines), notes unterminated strings and
 *     comments, and records where every section and key is (real lines).
 *  2. libconfuse parses the comment-free text under a process-wide mutex.
 *     Without comments its line counter is right (libconfuse 3.3 counts a
 *     comment line twice), so its own errors carry the real line.
 *  3. build() copies every value into struct rg_config and validates it; a
 *     validation error asks the scan where the offending key or list element
 *     is, so the message names the real line.
 */
#include "config.h"
#include "calendar.h"

#include <confuse.h>
#include <ldap.h>
#include <glib.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define RG_CONFIG_MAX_BYTES (4u * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* the schema                                                          */

static cfg_opt_t directory_opts[] = {
	CFG_STR("uri", NULL, CFGF_NONE),
	CFG_STR("base", NULL, CFGF_NONE),
	CFG_STR("bind-dn", NULL, CFGF_NONE),
	CFG_STR("bind-password-file", NULL, CFGF_NONE),
	CFG_BOOL("password-file-check", cfg_true, CFGF_NONE),
	CFG_STR("user-filter", "(uid=%u)", CFGF_NONE),
	CFG_STR("badge-attribute", NULL, CFGF_NONE),
	CFG_STR("membership", "member", CFGF_NONE),
	CFG_INT("nested-groups", 0, CFGF_NONE),
	CFG_INT("timeout", 2, CFGF_NONE),
	CFG_STR("tls", "starttls", CFGF_NONE),
	CFG_STR("tls-ca-file", NULL, CFGF_NONE),
	CFG_STR("tls-require-cert", "demand", CFGF_NONE),
	CFG_BOOL("allow-insecure-bind", cfg_false, CFGF_NONE),
	CFG_STR("lookup", "live", CFGF_NONE),
	CFG_INT("cache-ttl", 300, CFGF_NONE),
	CFG_INT("offline-max-age", 86400, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t ledger_opts[] = {
	CFG_STR("backend", "lmdb", CFGF_NONE),
	CFG_STR("path", "/var/lib/rotagate", CFGF_NONE),
	CFG_STR("ldap-base", NULL, CFGF_NONE),
	CFG_STR("uri", NULL, CFGF_NONE),
	CFG_STR("bind-dn", NULL, CFGF_NONE),
	CFG_STR("bind-password-file", NULL, CFGF_NONE),
	CFG_INT("retain-days", 400, CFGF_NONE),
	CFG_INT("map-size", 64, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t audit_opts[] = {
	CFG_STR("target", "syslog", CFGF_NONE),
	CFG_STR("format", "rfc3164", CFGF_NONE),
	CFG_STR("facility", "authpriv", CFGF_NONE),
	CFG_STR("ident", "rotagate", CFGF_NONE),
	CFG_STR("spool", "/var/spool/rotagate", CFGF_NONE),
	CFG_STR("health-reasons", "neutral", CFGF_NONE),
	CFG_END()
};

static cfg_opt_t rota_opts[] = {
	CFG_STR("group", NULL, CFGF_NONE),
	CFG_STR_LIST("days", NULL, CFGF_NONE),
	CFG_STR("weeks", "1/1", CFGF_NONE),
	CFG_STR("cycle-start", NULL, CFGF_NONE),
	CFG_STR("hours", NULL, CFGF_NONE),
	CFG_STR("from", NULL, CFGF_NONE),
	CFG_STR("until", NULL, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t group_rule_opts[] = {
	CFG_STR("group", NULL, CFGF_NONE),
	CFG_END()
};

#define RG_TITLED (CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES)

static cfg_opt_t site_opts[] = {
	CFG_STR("timezone", NULL, CFGF_NONE),
	CFG_INT("capacity", 0, CFGF_NODEFAULT),
	CFG_INT("reserved", 0, CFGF_NONE),
	CFG_INT("weekly-target", 80, CFGF_NONE),
	CFG_STR_LIST("doors", NULL, CFGF_NONE),
	CFG_STR_LIST("closed", NULL, CFGF_NONE),
	CFG_STR("on-directory-failure", "cached", CFGF_NONE),
	CFG_SEC("rota", rota_opts, RG_TITLED),
	CFG_SEC("exempt", group_rule_opts, RG_TITLED),
	CFG_SEC("deny", group_rule_opts, RG_TITLED),
	CFG_END()
};

static cfg_opt_t root_opts[] = {
	CFG_SEC("directory", directory_opts, CFGF_NONE),
	CFG_SEC("ledger", ledger_opts, CFGF_NONE),
	CFG_SEC("audit", audit_opts, CFGF_NONE),
	CFG_SEC("site", site_opts, RG_TITLED),
	CFG_END()
};

/* ------------------------------------------------------------------ */
/* the text scan: comments out, positions in                          */

struct scan_key {
	const char *name;     /* points into the token store */
	int line;
	bool append;          /* "+=" rather than "=" */
	int *vlines;          /* line of each value */
	size_t nv, capv;
};

struct scan_sec {
	const char *name;     /* NULL for the root */
	const char *title;    /* NULL when untitled */
	int line;             /* line of the name */
	int close_line;       /* line of its '}' (0: none) */
	bool misindented;     /* its '}' is on another line, left of the name's indentation */
	struct scan_sec **kids;
	size_t nkids, capkids;
	struct scan_key *keys;
	size_t nkeys, capkeys;
};

enum tok_kind { TOK_WORD, TOK_LBRACE, TOK_RBRACE, TOK_LPAREN, TOK_RPAREN, TOK_EQ, TOK_PLUSEQ,
		TOK_COMMA, TOK_EOF };

struct tok {
	enum tok_kind kind;
	int line;
	char *text;           /* TOK_WORD: the word as written (quotes removed, no unescaping) */
};

struct scan {
	char *clean;          /* the text with comments blanked */
	struct tok *toks;
	size_t ntoks, captoks;
	size_t pos;
	struct scan_sec root;
	int last_line;        /* line of the last token (1 for an empty text) */
	int *indent;          /* indentation of each line (1-based), comments blanked */
	int nlines;
	int unclosed_line;    /* > 0: innermost section still open at the end */
	const struct scan_sec *unclosed;
	int error_line;       /* > 0: a lexical error the scan found itself */
	const char *error;
};

static void scan_sec_free(struct scan_sec *s)
{
	for (size_t i = 0; i < s->nkids; i++) {
		scan_sec_free(s->kids[i]);
		free(s->kids[i]);
	}
	free(s->kids);
	for (size_t i = 0; i < s->nkeys; i++)
		free(s->keys[i].vlines);
	free(s->keys);
}

static void scan_free(struct scan *sc)
{
	free(sc->clean);
	for (size_t i = 0; i < sc->ntoks; i++)
		free(sc->toks[i].text);
	free(sc->toks);
	free(sc->indent);
	scan_sec_free(&sc->root);
	memset(sc, 0, sizeof *sc);
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = realloc(*arr, ncap * size);
	if (!p)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int push_tok(struct scan *sc, enum tok_kind kind, int line, const char *start, size_t len)
{
	if (grow((void **)&sc->toks, &sc->captoks, sc->ntoks, sizeof *sc->toks) != 0)
		return -1;
	struct tok *t = &sc->toks[sc->ntoks];
	t->kind = kind;
	t->line = line;
	t->text = NULL;
	if (kind == TOK_WORD) {
		t->text = strndup(start, len);
		if (!t->text)
			return -1;
	}
	sc->ntoks++;
	return 0;
}

/* Characters that end an unquoted word (libconfuse's lexer). */
static bool word_char(const char *p)
{
	switch (*p) {
	case '\0': case ' ': case '\t': case '\n': case '\r': case '#': case '"': case '\'':
	case '=': case '{': case '}': case '(': case ')': case '+': case ',': case '*':
		return false;
	case '/':
		return p[1] != '/' && p[1] != '*';
	default:
		return true;
	}
}

static void blank(char *from, char *to)
{
	for (char *p = from; p < to; p++)
		if (*p != '\n')
			*p = ' ';
}

/* Tokenize sc->clean in place, blanking comments.  -1 only on ENOMEM. */
static int tokenize(struct scan *sc)
{
	char *p = sc->clean;
	int line = 1;

	while (*p) {
		char *start = p;
		int start_line = line;
		if (*p == '\n') {
			line++;
			p++;
		} else if (*p == ' ' || *p == '\t' || *p == '\r') {
			p++;
		} else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			while (*p && *p != '\n')
				p++;
			blank(start, p);
		} else if (p[0] == '/' && p[1] == '*') {
			p += 2;
			while (*p && !(p[0] == '*' && p[1] == '/')) {
				if (*p == '\n')
					line++;
				p++;
			}
			if (!*p) {
				if (!sc->error_line) {
					sc->error_line = start_line;
					sc->error = "comment is not closed (missing '*/')";
				}
			} else {
				p += 2;
			}
			blank(start, p);
		} else if (*p == '"' || *p == '\'') {
			char q = *p++;
			while (*p && *p != q) {
				if (*p == '\\' && p[1]) {
					if (p[1] == '\n')
						line++;
					p++;
				}
				if (*p == '\n')
					line++;
				p++;
			}
			size_t wlen = (size_t)(p - start) - 1;
			if (!*p) {
				if (!sc->error_line) {
					sc->error_line = start_line;
					sc->error = "string is not closed (missing quote)";
				}
			} else {
				p++;
			}
			if (push_tok(sc, TOK_WORD, start_line, start + 1, wlen) != 0)
				return -1;
		} else if (p[0] == '$' && p[1] == '{' && strchr(p, '}')) {
			char *end = strchr(p, '}') + 1;
			for (char *c = p; c < end; c++)
				if (*c == '\n')
					line++;
			p = end;
			if (push_tok(sc, TOK_WORD, start_line, start, (size_t)(p - start)) != 0)
				return -1;
		} else if (p[0] == '+' && p[1] == '=') {
			p += 2;
			if (push_tok(sc, TOK_PLUSEQ, line, NULL, 0) != 0)
				return -1;
		} else if (strchr("{}()=,", *p)) {
			static const enum tok_kind kinds[] = { TOK_LBRACE, TOK_RBRACE, TOK_LPAREN,
							       TOK_RPAREN, TOK_EQ, TOK_COMMA };
			enum tok_kind k = kinds[strchr("{}()=,", *p) - "{}()=,"];
			p++;
			if (push_tok(sc, k, line, NULL, 0) != 0)
				return -1;
		} else if (word_char(p)) {
			while (word_char(p))
				p++;
			if (push_tok(sc, TOK_WORD, line, start, (size_t)(p - start)) != 0)
				return -1;
		} else {
			p++; /* libconfuse ignores a stray character too */
		}
	}
	sc->last_line = sc->ntoks ? sc->toks[sc->ntoks - 1].line : 1;
	return push_tok(sc, TOK_EOF, line, NULL, 0);
}

static int line_indent(const struct scan *sc, int line)
{
	return line >= 1 && line <= sc->nlines ? sc->indent[line] : 0;
}

static struct tok *peek(struct scan *sc)
{
	return &sc->toks[sc->pos];
}

static struct tok *next(struct scan *sc)
{
	struct tok *t = &sc->toks[sc->pos];
	if (t->kind != TOK_EOF)
		sc->pos++;
	return t;
}

static int add_vline(struct scan_key *k, int line)
{
	if (grow((void **)&k->vlines, &k->capv, k->nv, sizeof *k->vlines) != 0)
		return -1;
	k->vlines[k->nv++] = line;
	return 0;
}

static int parse_value(struct scan *sc, struct scan_key *k)
{
	struct tok *t = peek(sc);
	if (t->kind == TOK_WORD) {
		next(sc);
		return add_vline(k, t->line);
	}
	if (t->kind != TOK_LBRACE)
		return 0;
	next(sc);
	for (;;) {
		t = next(sc);
		if (t->kind == TOK_RBRACE || t->kind == TOK_EOF)
			return 0;
		if (t->kind == TOK_WORD && add_vline(k, t->line) != 0)
			return -1;
	}
}

/* Record the sections and keys of one block.  Only needs to be right for
 * text libconfuse accepts; anything else gets libconfuse's own error. */
static int parse_block(struct scan *sc, struct scan_sec *sec)
{
	for (;;) {
		struct tok *t = next(sc);
		if (t->kind == TOK_EOF) {
			if (sec != &sc->root && !sc->unclosed_line) {
				sc->unclosed_line = sec->line;
				sc->unclosed = sec;
			}
			return 0;
		}
		if (t->kind == TOK_RBRACE) {
			if (sec == &sc->root)
				continue;
			sec->close_line = t->line;
			sec->misindented = t->line != sec->line &&
					   line_indent(sc, t->line) < line_indent(sc, sec->line);
			return 0;
		}
		if (t->kind != TOK_WORD)
			continue;
		struct tok *t2 = peek(sc);
		if (t2->kind == TOK_EQ || t2->kind == TOK_PLUSEQ) {
			next(sc);
			if (grow((void **)&sec->keys, &sec->capkeys, sec->nkeys, sizeof *sec->keys) != 0)
				return -1;
			struct scan_key *k = &sec->keys[sec->nkeys++];
			memset(k, 0, sizeof *k);
			k->name = t->text;
			k->line = t->line;
			k->append = t2->kind == TOK_PLUSEQ;
			if (parse_value(sc, k) != 0)
				return -1;
			continue;
		}
		const char *title = NULL;
		if (t2->kind == TOK_WORD && sc->toks[sc->pos + 1].kind == TOK_LBRACE)
			title = next(sc)->text;
		else if (t2->kind != TOK_LBRACE)
			continue;
		next(sc); /* '{' */
		if (grow((void **)&sec->kids, &sec->capkids, sec->nkids, sizeof *sec->kids) != 0)
			return -1;
		struct scan_sec *kid = calloc(1, sizeof *kid);
		if (!kid)
			return -1;
		sec->kids[sec->nkids++] = kid;
		kid->name = t->text;
		kid->title = title;
		kid->line = t->line;
		if (parse_block(sc, kid) != 0)
			return -1;
	}
}

/* A section left open at the end: when a '}' further up closed the wrong
 * section (it sits left of that section's indentation), the first such
 * section is where the '}' is missing; otherwise the innermost open one. */
static const struct scan_sec *first_misindented(const struct scan_sec *s)
{
	for (size_t i = 0; i < s->nkids; i++) {
		if (s->kids[i]->misindented)
			return s->kids[i];
		const struct scan_sec *m = first_misindented(s->kids[i]);
		if (m)
			return m;
	}
	return NULL;
}

static int scan_text(struct scan *sc, const char *text, size_t len)
{
	memset(sc, 0, sizeof *sc);
	sc->clean = malloc(len + 1);
	if (!sc->clean)
		return -1;
	memcpy(sc->clean, text, len);
	sc->clean[len] = '\0';
	if (tokenize(sc) != 0)
		return -1;
	sc->nlines = 1;
	for (const char *p = sc->clean; *p; p++)
		sc->nlines += *p == '\n';
	sc->indent = calloc((size_t)sc->nlines + 1, sizeof *sc->indent);
	if (!sc->indent)
		return -1;
	int line = 1, col = 0;
	bool lead = true;
	for (const char *p = sc->clean; *p; p++) {
		if (*p == '\n') {
			sc->indent[line++] = col;
			col = 0;
			lead = true;
		} else if (lead && (*p == ' ' || *p == '\t')) {
			col = *p == '\t' ? (col / 8 + 1) * 8 : col + 1;
		} else {
			lead = false;
		}
	}
	sc->indent[line] = col;
	if (parse_block(sc, &sc->root) != 0)
		return -1;
	if (sc->unclosed && sc->root.nkids) {
		/* the outermost open section is the last top-level one */
		const struct scan_sec *m = first_misindented(sc->root.kids[sc->root.nkids - 1]);
		if (m) {
			sc->unclosed = m;
			sc->unclosed_line = m->line;
		}
	}
	return 0;
}

/* Where is something?  A path names sections from the root; ord is the
 * index among same-named siblings (titled sections), or -1 for "the last". */
struct where {
	const char *name[3];
	int ord[3];
	int depth;
};

static const struct scan_sec *scan_find(const struct scan *sc, const struct where *w)
{
	const struct scan_sec *s = &sc->root;
	for (int d = 0; d < w->depth; d++) {
		const struct scan_sec *found = NULL;
		int seen = 0;
		for (size_t i = 0; i < s->nkids; i++) {
			if (strcmp(s->kids[i]->name, w->name[d]) != 0)
				continue;
			if (w->ord[d] < 0 || seen == w->ord[d])
				found = s->kids[i];
			if (w->ord[d] >= 0 && seen == w->ord[d])
				break;
			seen++;
		}
		if (!found)
			return NULL;
		s = found;
	}
	return s;
}

/* Line of element `idx` of key `key` (idx < 0: the key itself); falls back
 * to the section, then to the end of the file. */
static int scan_line(const struct scan *sc, const struct where *w, const char *key, int idx)
{
	const struct scan_sec *s = scan_find(sc, w);
	if (!s)
		return sc->last_line;
	if (!key)
		return s->line ? s->line : sc->last_line;
	const struct scan_key *last = NULL;
	int line = 0;
	size_t count = 0;
	for (size_t i = 0; i < s->nkeys; i++) {
		const struct scan_key *k = &s->keys[i];
		if (strcmp(k->name, key) != 0)
			continue;
		last = k;
		if (!k->append)
			count = 0;
		if (idx >= 0 && (size_t)idx >= count && (size_t)idx < count + k->nv)
			line = k->vlines[(size_t)idx - count];
		else if (idx >= 0 && (size_t)idx < count)
			; /* keep the line found in an earlier += */
		else
			line = 0;
		count += k->nv;
	}
	if (line)
		return line;
	if (last)
		return last->line;
	return s->line ? s->line : sc->last_line;
}

/* ------------------------------------------------------------------ */
/* errors                                                              */

struct ctx {
	const char *name;
	char *err;
	size_t errlen;
	const struct scan *sc;
	bool failed;
};

__attribute__((format(printf, 3, 4)))
static int fail_at(struct ctx *c, int line, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	c->failed = true;
	if (!c->err || !c->errlen)
		return -1;
	int n = snprintf(c->err, c->errlen, "%s:%d: ", c->name, line);
	if (n < 0 || (size_t)n >= c->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int fail_oom(struct ctx *c)
{
	if (!c->failed && c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->name);
	c->failed = true;
	return -1;
}

/* libconfuse reports through this, under parse_lock; the message goes to
 * the context of the parse in progress. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ctx *parse_ctx;

void rg_config_fork_prepare(void)
{
	pthread_mutex_lock(&parse_lock);
}

void rg_config_fork_release(void)
{
	pthread_mutex_unlock(&parse_lock);
}

__attribute__((format(printf, 2, 0)))
static void confuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[512];
	struct ctx *c = parse_ctx;
	if (!c || c->failed)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	int line = cfg ? cfg->line : 0;
	if (line <= 0)
		line = c->sc->last_line;

	char where[300] = "";
	if (cfg && cfg->name && strcmp(cfg->name, "root") != 0) {
		if (cfg->title)
			snprintf(where, sizeof where, " in %s \"%s\"", cfg->name, cfg->title);
		else
			snprintf(where, sizeof where, " in section %s", cfg->name);
	}
	const char *nso = "no such option '";
	if (strncmp(msg, nso, strlen(nso)) == 0) {
		const char *key = msg + strlen(nso);
		size_t klen = strcspn(key, "'");
		fail_at(c, line, "unknown key '%.*s'%s", (int)klen, key, where);
	} else {
		fail_at(c, line, "%s%s", msg, where);
	}
}

/* A key set twice in one section, or directory/ledger/audit written twice:
 * libconfuse silently keeps the last, which is too easy to misread. */
static int check_repeats(struct ctx *c, const struct scan_sec *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		if (s->keys[i].append)
			continue;
		for (size_t j = 0; j < i; j++)
			if (strcmp(s->keys[j].name, s->keys[i].name) == 0)
				return fail_at(c, s->keys[i].line,
					       "%s is set twice in this section (first on line %d)",
					       s->keys[i].name, s->keys[j].line);
	}
	for (size_t i = 0; i < s->nkids; i++) {
		const struct scan_sec *k = s->kids[i];
		for (size_t j = 0; j < i && !k->title; j++)
			if (strcmp(s->kids[j]->name, k->name) == 0)
				return fail_at(c, k->line,
					       "section %s appears twice (first on line %d)", k->name,
					       s->kids[j]->line);
		if (check_repeats(c, k))
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* value helpers                                                       */

struct enum_name {
	const char *name;
	int value;
};

static const struct enum_name membership_names[] = {
	{ "member", RG_MEMBER_MEMBER }, { "uniqueMember", RG_MEMBER_UNIQUEMEMBER },
	{ "memberUid", RG_MEMBER_MEMBERUID }, { "memberOf", RG_MEMBER_MEMBEROF }, { NULL, 0 }
};
static const struct enum_name tls_names[] = { { "starttls", RG_TLS_STARTTLS }, { "none", RG_TLS_NONE },
					      { NULL, 0 } };
static const struct enum_name require_names[] = { { "demand", RG_TLS_DEMAND },
						  { "never", RG_TLS_NEVER }, { NULL, 0 } };
static const struct enum_name lookup_names[] = { { "live", RG_LOOKUP_LIVE },
						 { "snapshot", RG_LOOKUP_SNAPSHOT }, { NULL, 0 } };
static const struct enum_name backend_names[] = { { "lmdb", RG_LEDGER_LMDB },
						  { "ldap", RG_LEDGER_LDAP }, { NULL, 0 } };
static const struct enum_name format_names[] = { { "rfc3164", RG_AUDIT_RFC3164 },
						 { "rfc5424", RG_AUDIT_RFC5424 }, { NULL, 0 } };
static const struct enum_name health_names[] = { { "neutral", RG_HEALTH_NEUTRAL },
						 { "explicit", RG_HEALTH_EXPLICIT }, { NULL, 0 } };
static const struct enum_name onfail_names[] = { { "cached", RG_ONFAIL_CACHED },
						 { "deny", RG_ONFAIL_DENY }, { NULL, 0 } };
static const struct enum_name facility_names[] = {
	{ "auth", LOG_AUTH }, { "authpriv", LOG_AUTHPRIV }, { "daemon", LOG_DAEMON },
	{ "user", LOG_USER }, { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
	{ "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 },
	{ "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 }, { NULL, 0 }
};

/* A section being read: its libconfuse handle, where it is in the scan and
 * how to name it in messages. */
struct sec {
	cfg_t *cfg;
	struct where w;
	char label[300];      /* "directory", "site \"hq\"", "site \"hq\" rota \"a\"" */
};

static int line_of(struct ctx *c, const struct sec *s, const char *key, int idx)
{
	return scan_line(c->sc, &s->w, key, idx);
}

static int get_enum(struct ctx *c, const struct sec *s, const char *key,
		    const struct enum_name *names, int *out)
{
	const char *v = cfg_getstr(s->cfg, key);
	for (const struct enum_name *n = names; n->name; n++) {
		if (v && strcasecmp(v, n->name) == 0) {
			*out = n->value;
			return 0;
		}
	}
	char choices[200] = "";
	size_t used = 0;
	for (const struct enum_name *n = names; n->name; n++) {
		int w = snprintf(choices + used, sizeof choices - used, "%s%s",
				 n == names ? "" : (n[1].name ? ", " : " or "), n->name);
		if (w < 0 || (size_t)w >= sizeof choices - used)
			break;
		used += (size_t)w;
	}
	return fail_at(c, line_of(c, s, key, -1), "%s: %s '%s' is not valid (use %s)", s->label,
		       key, v ? v : "", choices);
}

static int get_uint(struct ctx *c, const struct sec *s, const char *key, long min, long max,
		    unsigned *out)
{
	long v = cfg_getint(s->cfg, key);
	if (v < min || v > max)
		return fail_at(c, line_of(c, s, key, -1), "%s: %s = %ld is out of range (%ld..%ld)",
			       s->label, key, v, min, max);
	*out = (unsigned)v;
	return 0;
}

/* Copy an optional string; absent stays NULL. */
static int get_str(struct ctx *c, const struct sec *s, const char *key, char **out)
{
	const char *v = cfg_getstr(s->cfg, key);
	*out = NULL;
	if (!v)
		return 0;
	*out = strdup(v);
	return *out ? 0 : fail_oom(c);
}

static bool has_ctl(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

/* Site and rule names appear in decisions and audit records. */
static bool name_ok(const char *v)
{
	return *v && strlen(v) <= 64 && !has_ctl(v);
}

static bool is_dn(const char *v)
{
	LDAPDN dn = NULL;
	if (!v || !*v)
		return false;
	if (ldap_str2dn(v, &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return false;
	bool ok = dn != NULL;
	ldap_dnfree(dn);
	return ok;
}

static int need_dn(struct ctx *c, const struct sec *s, const char *key, const char *v)
{
	if (v && !is_dn(v))
		return fail_at(c, line_of(c, s, key, -1), "%s: %s '%s' is not a valid DN", s->label,
			       key, v);
	return 0;
}

static int need_abs(struct ctx *c, const struct sec *s, const char *key, const char *v)
{
	if (v && v[0] != '/')
		return fail_at(c, line_of(c, s, key, -1), "%s: %s '%s' must be an absolute path",
			       s->label, key, v);
	return 0;
}

static int get_date(struct ctx *c, const struct sec *s, const char *key, int idx, const char *v,
		    int32_t *out)
{
	if (rg_cal_parse_date(v, out) != 0)
		return fail_at(c, line_of(c, s, key, idx),
			       "%s: %s '%s' is not a valid date (YYYY-MM-DD)", s->label, key, v);
	return 0;
}

static void sub_sec(const struct sec *parent, struct sec *s, cfg_t *cfg, const char *name, int ord)
{
	s->cfg = cfg;
	s->w = parent->w;
	s->w.name[s->w.depth] = name;
	s->w.ord[s->w.depth] = ord;
	s->w.depth++;
	const char *title = cfg_title(cfg);
	int n;
	if (title && parent->w.depth > 0)
		n = snprintf(s->label, sizeof s->label, "%s %s \"%.100s\"", parent->label, name,
			     title);
	else if (title)
		n = snprintf(s->label, sizeof s->label, "%s \"%.100s\"", name, title);
	else
		n = snprintf(s->label, sizeof s->label, "%s", name);
	if (n < 0)
		s->label[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* the bind password file                                              */

static int secret_mode_ok(const char *path, const struct stat *st, bool owner_check, char *msg,
			  size_t len)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(msg, len, "bind-password-file '%s' is not a regular file", path);
		return -1;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(msg, len,
			 "bind-password-file '%s' is accessible by group or others (mode %04o); "
			 "chmod 0600 it",
			 path, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	if (owner_check && st->st_uid != 0) {
		snprintf(msg, len, "bind-password-file '%s' is owned by uid %u, not root", path,
			 (unsigned)st->st_uid);
		return -1;
	}
	return 0;
}

int rg_config_read_password(const struct rg_directory_cfg *d, char *buf, size_t len, char *err,
			    size_t errlen)
{
	char msg[512];
	struct stat st;
	int rc = -1;

	if (!d || !d->bind_password_file || !buf || len < 2) {
		snprintf(err, errlen, "no bind-password-file configured");
		return -1;
	}
	const char *path = d->bind_password_file;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "bind-password-file '%s': %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "bind-password-file '%s': %s", path, strerror(errno));
		goto out;
	}
	if (secret_mode_ok(path, &st, d->password_file_check, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "%s", msg);
		goto out;
	}
	size_t n = 0;
	bool more = false;
	for (;;) {
		char extra;
		ssize_t r = n < len ? read(fd, buf + n, len - n) : read(fd, &extra, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "bind-password-file '%s': %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		if (n == len) {
			more = true;
			break;
		}
		n += (size_t)r;
	}
	if (!more && n > 0 && buf[n - 1] == '\n')
		n--;
	if (more || n == len) {
		snprintf(err, errlen, "bind-password-file '%s' is too long (max %zu bytes)", path,
			 len - 1);
		goto out;
	}
	buf[n] = '\0';
	if (n == 0) {
		snprintf(err, errlen, "bind-password-file '%s' is empty", path);
		goto out;
	}
	if (memchr(buf, '\0', n) || memchr(buf, '\n', n)) {
		snprintf(err, errlen, "bind-password-file '%s' must hold one line without NUL bytes",
			 path);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		explicit_bzero(buf, len);
	close(fd);
	return rc;
}

void rg_config_ledger_connection(const struct rg_config *cfg, struct rg_directory_cfg *out)
{
	*out = cfg->directory;
	if (cfg->ledger.uri)
		out->uri = cfg->ledger.uri;
	/* another server never gets the directory's credentials (without
	 * ledger.bind-dn, only an ldapi:// one is accepted: SASL EXTERNAL) */
	if (cfg->ledger.uri || cfg->ledger.bind_dn) {
		out->bind_dn = cfg->ledger.bind_dn;
		out->bind_password_file = cfg->ledger.bind_password_file;
	}
}

/* ------------------------------------------------------------------ */
/* building the struct                                                 */

static bool uri_ok(const char *u, char *why, size_t len)
{
	LDAPURLDesc *lud = NULL;
	if (ldap_url_parse(u, &lud) != LDAP_URL_SUCCESS) {
		snprintf(why, len, "'%s' is not an LDAP URI", u);
		return false;
	}
	bool ok = lud->lud_scheme && (strcasecmp(lud->lud_scheme, "ldap") == 0 ||
				      strcasecmp(lud->lud_scheme, "ldaps") == 0 ||
				      strcasecmp(lud->lud_scheme, "ldapi") == 0);
	if (!ok)
		snprintf(why, len, "'%s' is not an ldap://, ldaps:// or ldapi:// URI", u);
	ldap_free_urldesc(lud);
	return ok;
}

/* Is the (single) URI in `list` an ldapi:// one?  (libldap's own test of
 * the scheme, after the separators check_uris() accepts) */
static bool uri_is_ldapi(const char *list)
{
	return ldap_is_ldapi_url(list + strspn(list, " \t\n,")) != 0;
}

static bool filter_ok(const char *f, char *why, size_t len)
{
	int depth = 0;
	if (f[0] != '(') {
		snprintf(why, len, "must be an LDAP filter in parentheses");
		return false;
	}
	for (const char *p = f; *p; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			continue;
		}
		if (*p == '(')
			depth++;
		if (*p == ')' && --depth < 0)
			break;
	}
	if (depth != 0) {
		snprintf(why, len, "has unbalanced parentheses");
		return false;
	}
	if (!strstr(f, "%u")) {
		snprintf(why, len, "must contain %%u (the escaped user name)");
		return false;
	}
	return true;
}

static bool attr_ok(const char *a)
{
	if (!isalpha((unsigned char)a[0]) && !isdigit((unsigned char)a[0]))
		return false;
	for (const char *p = a; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != ';')
			return false;
	return true;
}

/* A list of LDAP URIs (spaces or commas between them); `none` is the
 * message when it names none. */
static int check_uris(struct ctx *c, const struct sec *s, const char *list, const char *none,
		      int *count)
{
	char why[300], *copy = strdup(list), *save = NULL;
	int n = 0;

	if (!copy)
		return fail_oom(c);
	for (char *u = strtok_r(copy, " \t\n,", &save); u; u = strtok_r(NULL, " \t\n,", &save)) {
		n++;
		if (!uri_ok(u, why, sizeof why)) {
			free(copy);
			return fail_at(c, line_of(c, s, "uri", -1), "%s: uri %s", s->label, why);
		}
	}
	free(copy);
	if (n == 0)
		return fail_at(c, line_of(c, s, "uri", -1), "%s: %s", s->label, none);
	if (count)
		*count = n;
	return 0;
}

/* bind-dn and bind-password-file: both or neither; a DN; an absolute path
 * to a private regular file (owned by root unless owner_check is off). */
static int check_bind(struct ctx *c, const struct sec *s, const char *dn, const char *pwfile,
		      bool owner_check)
{
	char why[300];
	struct stat st;

	if (need_dn(c, s, "bind-dn", dn))
		return -1;
	if (dn && !pwfile)
		return fail_at(c, line_of(c, s, "bind-dn", -1),
			       "%s: bind-dn is set but bind-password-file is not", s->label);
	if (!dn && pwfile)
		return fail_at(c, line_of(c, s, "bind-password-file", -1),
			       "%s: bind-password-file is set but bind-dn is not", s->label);
	if (!pwfile)
		return 0;
	int line = line_of(c, s, "bind-password-file", -1);
	if (need_abs(c, s, "bind-password-file", pwfile))
		return -1;
	if (stat(pwfile, &st) != 0)
		return fail_at(c, line, "%s: bind-password-file '%s': %s", s->label, pwfile,
			       strerror(errno));
	if (secret_mode_ok(pwfile, &st, owner_check, why, sizeof why) != 0)
		return fail_at(c, line, "%s: %s", s->label, why);
	return 0;
}

static int build_directory(struct ctx *c, cfg_t *root, struct rg_directory_cfg *d)
{
	struct sec s = { .cfg = cfg_getsec(root, "directory"), .w = { { "directory" }, { -1 }, 1 },
			 .label = "directory" };
	char why[300];
	int v;

	if (!s.cfg)
		return fail_at(c, c->sc->last_line, "no directory section");
	if (get_str(c, &s, "uri", &d->uri) || get_str(c, &s, "base", &d->base) ||
	    get_str(c, &s, "bind-dn", &d->bind_dn) ||
	    get_str(c, &s, "bind-password-file", &d->bind_password_file) ||
	    get_str(c, &s, "user-filter", &d->user_filter) ||
	    get_str(c, &s, "badge-attribute", &d->badge_attribute) ||
	    get_str(c, &s, "tls-ca-file", &d->tls_ca_file))
		return -1;
	d->password_file_check = cfg_getbool(s.cfg, "password-file-check");
	d->allow_insecure_bind = cfg_getbool(s.cfg, "allow-insecure-bind");

	if (!d->uri || !*d->uri)
		return fail_at(c, line_of(c, &s, "uri", -1), "directory: uri is required");
	if (check_uris(c, &s, d->uri, "uri is required", NULL))
		return -1;
	if (!d->base)
		return fail_at(c, line_of(c, &s, "base", -1), "directory: base is required");
	if (need_dn(c, &s, "base", d->base) ||
	    check_bind(c, &s, d->bind_dn, d->bind_password_file, d->password_file_check))
		return -1;
	if (!filter_ok(d->user_filter, why, sizeof why))
		return fail_at(c, line_of(c, &s, "user-filter", -1), "directory: user-filter '%s' %s",
			       d->user_filter, why);
	if (d->badge_attribute && !attr_ok(d->badge_attribute))
		return fail_at(c, line_of(c, &s, "badge-attribute", -1),
			       "directory: badge-attribute '%s' is not an attribute name",
			       d->badge_attribute);
	if (need_abs(c, &s, "tls-ca-file", d->tls_ca_file))
		return -1;

	if (get_enum(c, &s, "membership", membership_names, &v))
		return -1;
	d->membership = (enum rg_membership)v;
	if (get_enum(c, &s, "tls", tls_names, &v))
		return -1;
	d->tls = (enum rg_tls)v;
	if (get_enum(c, &s, "tls-require-cert", require_names, &v))
		return -1;
	d->tls_require_cert = (enum rg_tls_require)v;
	if (get_enum(c, &s, "lookup", lookup_names, &v))
		return -1;
	d->lookup = (enum rg_lookup)v;

	if (get_uint(c, &s, "nested-groups", 0, 32, &d->nested_groups) ||
	    get_uint(c, &s, "timeout", 1, 300, &d->timeout) ||
	    get_uint(c, &s, "cache-ttl", 0, 7L * 86400, &d->cache_ttl) ||
	    get_uint(c, &s, "offline-max-age", 0, 366L * 86400, &d->offline_max_age))
		return -1;
	return 0;
}

/* ledger.uri, bind-dn, bind-password-file: where the ldap backend writes,
 * when that is not where the directory is read.  Validated like the
 * directory's keys (the directory's password-file-check applies).
 * ledger.uri names exactly ONE server: the ledger never fails over, since
 * controllers writing to different servers could exceed the capacity. */
static int build_ledger_connection(struct ctx *c, const struct sec *s, struct rg_ledger_cfg *l,
				   const struct rg_directory_cfg *d)
{
	int n = 0;

	if (get_str(c, s, "uri", &l->uri) || get_str(c, s, "bind-dn", &l->bind_dn) ||
	    get_str(c, s, "bind-password-file", &l->bind_password_file))
		return -1;
	if (l->uri && check_uris(c, s, l->uri, "uri names no LDAP URI", &n))
		return -1;
	if (l->uri && n > 1)
		return fail_at(c, line_of(c, s, "uri", -1),
			       "ledger: uri names %d servers; the ledger writes to exactly one"
			       " (no failover: two controllers writing to different servers"
			       " could exceed the capacity)", n);
	if (check_bind(c, s, l->bind_dn, l->bind_password_file, d->password_file_check))
		return -1;
	/* the directory's bind DN and password are never sent to another
	 * server: a ledger.uri needs its own account, unless it is ldapi://
	 * (SASL EXTERNAL, no password) */
	if (l->uri && !l->bind_dn && !uri_is_ldapi(l->uri))
		return fail_at(c, line_of(c, s, "uri", -1),
			       "ledger: uri is set but bind-dn is not: a separate ledger server needs"
			       " ledger.bind-dn and ledger.bind-password-file (the directory's"
			       " credentials are never sent to it; only an ldapi:// uri may go"
			       " without, binding with SASL EXTERNAL)");
	return 0;
}

static int build_ledger(struct ctx *c, cfg_t *root, struct rg_ledger_cfg *l,
			const struct rg_directory_cfg *d)
{
	struct sec s = { .cfg = cfg_getsec(root, "ledger"), .w = { { "ledger" }, { -1 }, 1 },
			 .label = "ledger" };
	int v;
	unsigned mib;

	if (!s.cfg) /* an absent section still has its defaults */
		return fail_at(c, c->sc->last_line, "internal error: no ledger defaults");
	if (get_enum(c, &s, "backend", backend_names, &v))
		return -1;
	l->backend = (enum rg_ledger_backend)v;
	if (get_str(c, &s, "path", &l->path) || get_str(c, &s, "ldap-base", &l->ldap_base))
		return -1;
	if (!l->path || !*l->path)
		return fail_at(c, line_of(c, &s, "path", -1), "ledger: path is required");
	if (need_abs(c, &s, "path", l->path) || need_dn(c, &s, "ldap-base", l->ldap_base))
		return -1;
	if (l->backend == RG_LEDGER_LDAP && !l->ldap_base)
		return fail_at(c, line_of(c, &s, "backend", -1),
			       "ledger: backend = ldap needs ldap-base");
	if (build_ledger_connection(c, &s, l, d))
		return -1;
	if (get_uint(c, &s, "retain-days", 1, 36600, &l->retain_days) ||
	    get_uint(c, &s, "map-size", 1, 1024L * 1024, &mib))
		return -1;
	l->map_size = (size_t)mib * 1024 * 1024;
	return 0;
}

static bool target_ok(const char *t)
{
	if (strcmp(t, "syslog") == 0)
		return true;
	if (strncmp(t, "unix:", 5) == 0)
		return t[5] == '/' && t[6] != '\0' && !has_ctl(t);
	if (strncmp(t, "tcp:", 4) != 0)
		return false;
	const char *host = t + 4;
	const char *colon = strrchr(host, ':');
	if (!colon || colon == host)
		return false;
	if (host[0] == '[' && colon[-1] != ']')
		return false;
	for (const char *p = host; p < colon; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) || *p == '/')
			return false;
	char *end = NULL;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	return colon[1] && *end == '\0' && errno == 0 && port >= 1 && port <= 65535 &&
	       isdigit((unsigned char)colon[1]);
}

static int build_audit(struct ctx *c, cfg_t *root, struct rg_audit_cfg *a)
{
	struct sec s = { .cfg = cfg_getsec(root, "audit"), .w = { { "audit" }, { -1 }, 1 },
			 .label = "audit" };
	int v;

	if (!s.cfg)
		return fail_at(c, c->sc->last_line, "internal error: no audit defaults");
	if (get_str(c, &s, "target", &a->target) || get_str(c, &s, "ident", &a->ident) ||
	    get_str(c, &s, "spool", &a->spool))
		return -1;
	if (!a->target || !target_ok(a->target))
		return fail_at(c, line_of(c, &s, "target", -1),
			       "audit: target '%s' is not valid (use syslog, unix:/absolute/path or "
			       "tcp:host:port)",
			       a->target ? a->target : "");
	if (get_enum(c, &s, "format", format_names, &v))
		return -1;
	a->format = (enum rg_audit_format)v;
	if (get_enum(c, &s, "facility", facility_names, &a->facility))
		return -1;
	if (get_enum(c, &s, "health-reasons", health_names, &v))
		return -1;
	a->health_reasons = (enum rg_health_reasons)v;
	if (!a->ident || !*a->ident || strlen(a->ident) > 48 || strpbrk(a->ident, " :[]") ||
	    has_ctl(a->ident))
		return fail_at(c, line_of(c, &s, "ident", -1),
			       "audit: ident '%s' must be 1..48 characters without spaces, ':' or "
			       "brackets",
			       a->ident ? a->ident : "");
	if (a->spool && !*a->spool) { /* spool = "" turns the spool off */
		free(a->spool);
		a->spool = NULL;
	}
	return need_abs(c, &s, "spool", a->spool);
}

static int parse_days(struct ctx *c, const struct sec *s, unsigned *mask)
{
	static const char *const names[7][2] = {
		{ "mon", "monday" }, { "tue", "tuesday" }, { "wed", "wednesday" },
		{ "thu", "thursday" }, { "fri", "friday" }, { "sat", "saturday" },
		{ "sun", "sunday" },
	};
	unsigned n = cfg_size(s->cfg, "days");
	*mask = 0;
	if (n == 0)
		return fail_at(c, line_of(c, s, "days", -1),
			       "%s: days is required (e.g. days = { mon, wed, fri })", s->label);
	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(s->cfg, "days", i);
		int day = -1;
		for (int d = 0; d < 7 && day < 0; d++)
			if (v && (strcasecmp(v, names[d][0]) == 0 || strcasecmp(v, names[d][1]) == 0))
				day = d;
		if (day < 0)
			return fail_at(c, line_of(c, s, "days", (int)i),
				       "%s: unknown day '%s' (use mon, tue, wed, thu, fri, sat, sun)",
				       s->label, v ? v : "");
		*mask |= RG_DAY_MON << day;
	}
	return 0;
}

static int parse_weeks(struct ctx *c, const struct sec *s, struct rg_rota *r)
{
	const char *v = cfg_getstr(s->cfg, "weeks");
	unsigned n = 0, m = 0;
	int used = 0;
	if (!v || sscanf(v, "%2u/%2u%n", &n, &m, &used) != 2 || v[used] != '\0' ||
	    !isdigit((unsigned char)v[0]) || n < 1 || m > 52 || n > m)
		return fail_at(c, line_of(c, s, "weeks", -1),
			       "%s: weeks '%s' must be \"N/M\" with 1 <= N <= M <= 52", s->label,
			       v ? v : "");
	r->week_n = n;
	r->week_m = m;
	return 0;
}

static int parse_hours(struct ctx *c, const struct sec *s, struct rg_rota *r)
{
	const char *v = cfg_getstr(s->cfg, "hours");
	r->hours_from = r->hours_to = -1;
	if (!v)
		return 0;
	char a[8], b[8];
	const char *dash = strchr(v, '-');
	if (dash && (size_t)(dash - v) < sizeof a && strlen(dash + 1) < sizeof b) {
		memcpy(a, v, (size_t)(dash - v));
		a[dash - v] = '\0';
		strcpy(b, dash + 1);
		if (rg_cal_parse_hhmm(a, &r->hours_from) == 0 && r->hours_from < 24 * 60 &&
		    rg_cal_parse_hhmm(b, &r->hours_to) == 0 && r->hours_to != r->hours_from)
			return 0;
	}
	r->hours_from = r->hours_to = -1;
	return fail_at(c, line_of(c, s, "hours", -1),
		       "%s: hours '%s' must be \"HH:MM-HH:MM\" (e.g. 07:00-19:00; 22:00-06:00 "
		       "crosses midnight)",
		       s->label, v);
}

static bool membership_needs_dn(enum rg_membership m)
{
	return m != RG_MEMBER_MEMBERUID;
}

static int get_group(struct ctx *c, const struct sec *s, const struct rg_config *cfg, char **out)
{
	if (get_str(c, s, "group", out))
		return -1;
	if (!*out || !**out)
		return fail_at(c, line_of(c, s, "group", -1), "%s: group is required", s->label);
	if (has_ctl(*out))
		return fail_at(c, line_of(c, s, "group", -1),
			       "%s: group contains control characters", s->label);
	if (membership_needs_dn(cfg->directory.membership) && !is_dn(*out)) {
		const char *mname = "member";
		for (const struct enum_name *n = membership_names; n->name; n++)
			if (n->value == (int)cfg->directory.membership)
				mname = n->name;
		return fail_at(c, line_of(c, s, "group", -1),
			       "%s: group '%s' is not a DN (membership = %s needs group DNs)",
			       s->label, *out, mname);
	}
	return 0;
}

static int build_rota(struct ctx *c, const struct sec *s, const struct rg_config *cfg,
		      struct rg_rota *r)
{
	const char *v;
	char buf[16];

	r->cycle_start = r->from = r->until = RG_NO_DATE;
	r->hours_from = r->hours_to = -1;
	r->name = strdup(cfg_title(s->cfg));
	if (!r->name)
		return fail_oom(c);
	if (!name_ok(r->name))
		return fail_at(c, line_of(c, s, NULL, -1), "%s: not a valid rule name", s->label);
	if (get_group(c, s, cfg, &r->group) || parse_days(c, s, &r->days) || parse_weeks(c, s, r) ||
	    parse_hours(c, s, r))
		return -1;

	if ((v = cfg_getstr(s->cfg, "cycle-start"))) {
		int32_t day;
		if (get_date(c, s, "cycle-start", -1, v, &day))
			return -1;
		if (rg_cal_weekday(day) != 1)
			return fail_at(c, line_of(c, s, "cycle-start", -1),
				       "%s: cycle-start %s is a %s, not a Monday", s->label, v,
				       rg_cal_weekday_name(rg_cal_weekday(day)));
		if (r->week_m > 1)
			r->cycle_start = day;
	} else if (r->week_m > 1) {
		return fail_at(c, line_of(c, s, "weeks", -1),
			       "%s: weeks \"%u/%u\" needs cycle-start (the Monday of week 1)",
			       s->label, r->week_n, r->week_m);
	}
	if ((v = cfg_getstr(s->cfg, "from")) && get_date(c, s, "from", -1, v, &r->from))
		return -1;
	if ((v = cfg_getstr(s->cfg, "until")) && get_date(c, s, "until", -1, v, &r->until))
		return -1;
	if (r->from != RG_NO_DATE && r->until != RG_NO_DATE && r->until < r->from) {
		rg_cal_format_date(r->from, buf, sizeof buf);
		return fail_at(c, line_of(c, s, "until", -1), "%s: until %s is before from %s",
			       s->label, cfg_getstr(s->cfg, "until"), buf);
	}
	return 0;
}

static int build_group_rules(struct ctx *c, const struct sec *site, const struct rg_config *cfg,
			     const char *kind, struct rg_group_rule **out, size_t *nout)
{
	unsigned n = cfg_size(site->cfg, kind);
	*nout = 0;
	*out = NULL;
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof **out);
	if (!*out)
		return fail_oom(c);
	for (unsigned i = 0; i < n; i++) {
		struct sec s;
		sub_sec(site, &s, cfg_getnsec(site->cfg, kind, i), kind, (int)i);
		struct rg_group_rule *g = &(*out)[i];
		(*nout)++;
		g->name = strdup(cfg_title(s.cfg));
		if (!g->name)
			return fail_oom(c);
		if (!name_ok(g->name))
			return fail_at(c, line_of(c, &s, NULL, -1), "%s: not a valid rule name",
				       s.label);
		if (get_group(c, &s, cfg, &g->group))
			return -1;
	}
	return 0;
}

static int cmp_day(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

static int build_doors(struct ctx *c, const struct sec *s, const struct rg_config *cfg,
		       struct rg_site *site)
{
	unsigned n = cfg_size(s->cfg, "doors");
	if (n == 0)
		return fail_at(c, line_of(c, s, "doors", -1), "%s has no doors", s->label);
	site->doors = calloc(n, sizeof *site->doors);
	if (!site->doors)
		return fail_oom(c);
	for (unsigned i = 0; i < n; i++) {
		const char *d = cfg_getnstr(s->cfg, "doors", i);
		int line = line_of(c, s, "doors", (int)i);
		if (!d || !*d || has_ctl(d) || strlen(d) > 255)
			return fail_at(c, line, "%s: door '%s' is not a valid door name", s->label,
				       d ? d : "");
		for (size_t j = 0; j < site->ndoors; j++)
			if (strcmp(site->doors[j], d) == 0)
				return fail_at(c, line, "%s: door '%s' is listed twice", s->label, d);
		for (size_t k = 0; k < cfg->nsites; k++) {
			const struct rg_site *o = &cfg->sites[k];
			for (size_t j = 0; j < o->ndoors; j++)
				if (strcmp(o->doors[j], d) == 0)
					return fail_at(c, line,
						       "%s: door '%s' is already claimed by site \"%s\"",
						       s->label, d, o->name);
		}
		site->doors[i] = strdup(d);
		if (!site->doors[i])
			return fail_oom(c);
		site->ndoors++;
	}
	return 0;
}

static int build_closed(struct ctx *c, const struct sec *s, struct rg_site *site)
{
	unsigned n = cfg_size(s->cfg, "closed");
	if (n == 0)
		return 0;
	site->closed = calloc(n, sizeof *site->closed);
	if (!site->closed)
		return fail_oom(c);
	for (unsigned i = 0; i < n; i++) {
		const char *v = cfg_getnstr(s->cfg, "closed", i);
		if (get_date(c, s, "closed", (int)i, v ? v : "", &site->closed[i]))
			return -1;
	}
	qsort(site->closed, n, sizeof *site->closed, cmp_day);
	size_t out = 0;
	for (size_t i = 0; i < n; i++)
		if (out == 0 || site->closed[out - 1] != site->closed[i])
			site->closed[out++] = site->closed[i];
	site->nclosed = out;
	return 0;
}

static int unique_rule_names(struct ctx *c, const struct sec *s, const struct rg_site *site)
{
	/* names are unique per kind (libconfuse); refuse the same name across kinds,
	 * since audit records name a rule only by its title */
	for (size_t i = 0; i < site->nexempt + site->ndeny; i++) {
		bool is_deny = i >= site->nexempt;
		const char *name = is_deny ? site->deny[i - site->nexempt].name : site->exempt[i].name;
		const char *kind = is_deny ? "deny" : "exempt";
		int ord = (int)(is_deny ? i - site->nexempt : i);
		const char *clash = NULL;
		for (size_t r = 0; r < site->nrotas && !clash; r++)
			if (strcmp(site->rotas[r].name, name) == 0)
				clash = "rota";
		for (size_t e = 0; is_deny && e < site->nexempt && !clash; e++)
			if (strcmp(site->exempt[e].name, name) == 0)
				clash = "exempt";
		if (clash) {
			struct sec k = *s;
			k.w.name[k.w.depth] = kind;
			k.w.ord[k.w.depth] = ord;
			k.w.depth++;
			return fail_at(c, scan_line(c->sc, &k.w, NULL, -1),
				       "%s: %s \"%s\" has the same name as %s \"%s\"", s->label, kind,
				       name, clash, name);
		}
	}
	return 0;
}

static int build_site(struct ctx *c, const struct sec *s, struct rg_config *cfg,
		      struct rg_site *site)
{
	int v;

	site->name = strdup(cfg_title(s->cfg));
	if (!site->name)
		return fail_oom(c);
	if (!name_ok(site->name))
		return fail_at(c, line_of(c, s, NULL, -1), "site name '%s' is not valid", site->name);
	if (get_str(c, s, "timezone", &site->timezone))
		return -1;
	if (site->timezone && !rg_cal_tz_valid(site->timezone))
		return fail_at(c, line_of(c, s, "timezone", -1), "%s: unknown timezone '%s'",
			       s->label, site->timezone);
	if (get_uint(c, s, "capacity", 0, 10000000, &site->capacity) ||
	    get_uint(c, s, "reserved", 0, 10000000, &site->reserved) ||
	    get_uint(c, s, "weekly-target", 0, 100, &site->weekly_target))
		return -1;
	if (cfg_size(s->cfg, "capacity") == 0)
		return fail_at(c, line_of(c, s, NULL, -1), "%s: capacity is required", s->label);
	if (site->capacity == 0)
		return fail_at(c, line_of(c, s, "capacity", -1), "%s: capacity must be at least 1",
			       s->label);
	if (site->reserved > site->capacity)
		return fail_at(c, line_of(c, s, "reserved", -1),
			       "%s: reserved (%u) is larger than capacity (%u)", s->label,
			       site->reserved, site->capacity);
	if (get_enum(c, s, "on-directory-failure", onfail_names, &v))
		return -1;
	site->on_directory_failure = (enum rg_on_dir_failure)v;
	if (build_doors(c, s, cfg, site) || build_closed(c, s, site))
		return -1;

	unsigned n = cfg_size(s->cfg, "rota");
	if (n) {
		site->rotas = calloc(n, sizeof *site->rotas);
		if (!site->rotas)
			return fail_oom(c);
	}
	for (unsigned i = 0; i < n; i++) {
		struct sec r;
		sub_sec(s, &r, cfg_getnsec(s->cfg, "rota", i), "rota", (int)i);
		site->nrotas++;
		if (build_rota(c, &r, cfg, &site->rotas[i]))
			return -1;
	}
	if (build_group_rules(c, s, cfg, "exempt", &site->exempt, &site->nexempt) ||
	    build_group_rules(c, s, cfg, "deny", &site->deny, &site->ndeny))
		return -1;
	return unique_rule_names(c, s, site);
}

static int build(struct ctx *c, cfg_t *root, struct rg_config *cfg)
{
	struct sec top = { .cfg = root, .w = { { NULL }, { 0 }, 0 }, .label = "" };

	if (build_directory(c, root, &cfg->directory) || build_ledger(c, root, &cfg->ledger, &cfg->directory) ||
	    build_audit(c, root, &cfg->audit))
		return -1;
	unsigned n = cfg_size(root, "site");
	if (n == 0)
		return fail_at(c, c->sc->last_line,
			       "no site defined (add a site \"NAME\" { ... } section)");
	cfg->sites = calloc(n, sizeof *cfg->sites);
	if (!cfg->sites)
		return fail_oom(c);
	for (unsigned i = 0; i < n; i++) {
		struct sec s;
		sub_sec(&top, &s, cfg_getnsec(root, "site", i), "site", (int)i);
		/* count the site only once its doors are known: door checks read sites[0..nsites) */
		int rc = build_site(c, &s, cfg, &cfg->sites[i]);
		cfg->nsites++;
		if (rc)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* loading                                                             */

static void free_rule(struct rg_group_rule *g)
{
	free(g->name);
	free(g->group);
}

void rg_config_free(struct rg_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	struct rg_directory_cfg *d = &cfg->directory;
	free(d->uri);
	free(d->base);
	free(d->bind_dn);
	free(d->bind_password_file);
	free(d->user_filter);
	free(d->badge_attribute);
	free(d->tls_ca_file);
	free(cfg->ledger.path);
	free(cfg->ledger.ldap_base);
	free(cfg->ledger.uri);
	free(cfg->ledger.bind_dn);
	free(cfg->ledger.bind_password_file);
	free(cfg->audit.target);
	free(cfg->audit.ident);
	free(cfg->audit.spool);
	for (size_t i = 0; i < cfg->nsites; i++) {
		struct rg_site *s = &cfg->sites[i];
		free(s->name);
		free(s->timezone);
		for (size_t j = 0; j < s->ndoors; j++)
			free(s->doors[j]);
		free(s->doors);
		free(s->closed);
		for (size_t j = 0; j < s->nrotas; j++) {
			free(s->rotas[j].name);
			free(s->rotas[j].group);
		}
		free(s->rotas);
		for (size_t j = 0; j < s->nexempt; j++)
			free_rule(&s->exempt[j]);
		free(s->exempt);
		for (size_t j = 0; j < s->ndeny; j++)
			free_rule(&s->deny[j]);
		free(s->deny);
	}
	free(cfg->sites);
	free(cfg);
}

static int load_text(const char *name, const char *path, const char *text, size_t len,
		     struct rg_config **out, char *err, size_t errlen)
{
	struct ctx c = { .name = name, .err = err, .errlen = errlen };
	struct scan sc;
	struct rg_config *cfg = NULL;
	cfg_t *root = NULL;
	int rc = -1;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (memchr(text, '\0', len)) {
		snprintf(err, errlen, "%s: contains a NUL byte (not a text file?)", name);
		return -1;
	}
	if (scan_text(&sc, text, len) != 0) {
		fail_oom(&c);
		goto out;
	}
	c.sc = &sc;
	if (sc.error_line) {
		fail_at(&c, sc.error_line, "%s", sc.error);
		goto out;
	}
	/* before libconfuse: a missing brace explains the errors it would report */
	if (sc.unclosed_line) {
		const struct scan_sec *u = sc.unclosed;
		fail_at(&c, sc.unclosed_line,
			"%s%s%.100s%s is not closed (missing '}' before the end of the file)",
			u->name, u->title ? " \"" : "", u->title ? u->title : "",
			u->title ? "\"" : "");
		goto out;
	}

	cfg = calloc(1, sizeof *cfg);
	if (!cfg || (path && !(cfg->path = strdup(path)))) {
		fail_oom(&c);
		goto out;
	}
	gchar *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)text, len);
	if (!sha) {
		fail_oom(&c);
		goto out;
	}
	snprintf(cfg->sha, sizeof cfg->sha, "%s", sha);
	g_free(sha);

	pthread_mutex_lock(&parse_lock);
	root = cfg_init(root_opts, CFGF_NO_TITLE_DUPES);
	if (root) {
		parse_ctx = &c;
		cfg_set_error_function(root, confuse_error);
		int prc = cfg_parse_buf(root, sc.clean);
		parse_ctx = NULL;
		if (prc != CFG_SUCCESS && !c.failed)
			fail_at(&c, sc.last_line, "cannot parse the file");
	}
	/* the getters in build() may report through the global error function */
	bool built = false;
	if (root && !c.failed) {
		parse_ctx = &c;
		built = check_repeats(&c, &sc.root) == 0 && build(&c, root, cfg) == 0;
		parse_ctx = NULL;
	}
	pthread_mutex_unlock(&parse_lock);
	if (!root) {
		fail_oom(&c);
		goto out;
	}
	if (!built)
		goto out;
	*out = cfg;
	cfg = NULL;
	rc = 0;
out:
	if (root) {
		/* cfg_free() of a root resets libconfuse's global lexer too */
		pthread_mutex_lock(&parse_lock);
		cfg_free(root);
		pthread_mutex_unlock(&parse_lock);
	}
	rg_config_free(cfg);
	scan_free(&sc);
	return rc;
}

int rg_config_load_string(const char *name, const char *text, struct rg_config **out, char *err,
			  size_t errlen)
{
	if (!name)
		name = "(string)";
	if (!text || !out) {
		snprintf(err, errlen, "%s: no configuration text", name);
		return -1;
	}
	return load_text(name, NULL, text, strlen(text), out, err, errlen);
}

int rg_config_load(const char *path, struct rg_config **out, char *err, size_t errlen)
{
	return rg_config_load_stat(path, out, NULL, err, errlen);
}

int rg_config_load_stat(const char *path, struct rg_config **out, struct stat *read_st, char *err,
			size_t errlen)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int rc = -1;

	if (read_st)
		memset(read_st, 0, sizeof *read_st);
	if (!path || !out) {
		snprintf(err, errlen, "no configuration file given");
		return -1;
	}
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (read_st)
		*read_st = st; /* before reading: a later change always looks new */
	if ((uintmax_t)st.st_size > RG_CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: file too large (more than %u bytes)", path,
			 RG_CONFIG_MAX_BYTES);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, text + len, (size_t)st.st_size + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > (size_t)st.st_size) {
			snprintf(err, errlen, "%s: file changed while being read", path);
			goto out;
		}
	}
	rc = load_text(path, path, text, len, out, err, errlen);
out:
	free(text);
	close(fd);
	return rc;
}

const struct rg_site *rg_config_site_for_door(const struct rg_config *cfg, const char *door)
{
	if (!cfg || !door)
		return NULL;
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].ndoors; j++)
			if (strcmp(cfg->sites[i].doors[j], door) == 0)
				return &cfg->sites[i];
	return NULL;
}

const struct rg_site *rg_config_site(const struct rg_config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->nsites; i++)
		if (strcmp(cfg->sites[i].name, name) == 0)
			return &cfg->sites[i];
	return NULL;
}

static bool add_group(const char **arr, size_t *n, const char *g)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp(arr[i], g) == 0)
			return false;
	arr[(*n)++] = g;
	return true;
}

const char **rg_config_all_groups(const struct rg_config *cfg, size_t *n)
{
	size_t total = 0, count = 0;
	if (n)
		*n = 0;
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < cfg->nsites; i++)
		total += cfg->sites[i].nrotas + cfg->sites[i].nexempt + cfg->sites[i].ndeny;
	const char **arr = calloc(total + 1, sizeof *arr);
	if (!arr)
		return NULL;
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct rg_site *s = &cfg->sites[i];
		for (size_t j = 0; j < s->nrotas; j++)
			add_group(arr, &count, s->rotas[j].group);
		for (size_t j = 0; j < s->nexempt; j++)
			add_group(arr, &count, s->exempt[j].group);
		for (size_t j = 0; j < s->ndeny; j++)
			add_group(arr, &count, s->deny[j].group);
	}
	arr[count] = NULL;
	if (n)
		*n = count;
	return arr;
}
