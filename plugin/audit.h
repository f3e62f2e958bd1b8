/*
 * audit.h - audit records: built with libevtlog evt_format(), delivered by
 * rotagate's own sender (never evt_log()/openlog(), which would take over the
 * host's syslog identity).
 *
 * A record is "EVENT; key='value', key='value', ..." (evt_format's layout),
 * framed for the target (RFC 3164 to /dev/log or unix:/path, RFC 6587
 * octet-counting over tcp:), or RFC 5424 with the fields as structured data.
 * Every record carries event, seq (per process, increasing) and pid.
 *
 * Thread-safety: rg_audit_emit() may be called from any thread.  No thread
 * of the sink's own: the calls do the delivery work, under the sink's mutex,
 * in steps that never wait for the target (non-blocking sends, spool
 * appends, a replay slice of at most 0.5 ms).  What the target does not take
 * at once goes to the spool and is replayed, in order, by later calls.
 * Records a receiver that went away may not have read are sent again
 * (at-least-once: (host, pid, seq) is a record's key; the syslog-ng include
 * drops the copies).  A fork()ed child never uses its parent's sink: emit and
 * flush do nothing there.  No output to stdout/stderr.
 */
#ifndef RG_AUDIT_H
#define RG_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"

/* RFC 5424 structured-data ID of rotagate's fields.  32473 is the private
 * enterprise number RFC 5612 reserves for documentation and examples; a site
 * with its own PEN changes it here and in conf/syslog-ng/rotagate.conf. */
#define RG_AUDIT_PEN 32473
#define RG_AUDIT_SD_ID "rotagate@32473"

/* Spool cap: bytes of records waiting in the spool file. */
#define RG_AUDIT_SPOOL_MAX_DEFAULT (64u * 1024 * 1024)
/* Longest sanitised value in a record, in bytes (longer ones are cut at a
 * character/escape boundary). */
#define RG_AUDIT_VALUE_MAX 1024

struct rg_kv {
	const char *key;
	const char *value;
};

struct rg_audit;

/* Create a sink for `cfg` (copied).  Never fails for an unreachable target:
 * delivery problems are handled per record (spool). NULL only on ENOMEM or an
 * invalid target string (message in err). */
struct rg_audit *rg_audit_new(const struct rg_audit_cfg *cfg, char *err, size_t errlen);
void rg_audit_free(struct rg_audit *a);

/* Free, first trying for at most flush_ms to deliver what the spool holds
 * and to see the records sent read by the receiver (rg_audit_free waits up
 * to 1 s).  0: no wait; the spool is persistent and the next sink on the
 * same spool replays it.  Records still in memory go back to the spool when
 * the receiver is away (or they were not sent whole). */
void rg_audit_free_wait(struct rg_audit *a, int flush_ms);

/* Build and deliver one record.  `severity` is a syslog level (LOG_INFO ...).
 * The sink adds seq and pid.  Returns 0 when delivered (written to the socket,
 * or begun: a later call finishes the frame), 1 when spooled (without a
 * spool: kept in memory while the target is up but busy), -1 when lost. */
int rg_audit_emit(struct rg_audit *a, int severity, const char *event, const struct rg_kv *fields,
		  size_t nfields);

/* Deliver what waits (the spool, records to be sent again, an audit.lost
 * report) for up to timeout_ms, waiting for the target as needed (close,
 * tests, tools; never on a decision's path).  Also resolves a tcp target's
 * name not resolved yet.  Returns 0 when nothing waits any more, 1 when
 * records still wait, -1 on error. */
int rg_audit_flush(struct rg_audit *a, int timeout_ms);

/* Change the spool cap (tests); default RG_AUDIT_SPOOL_MAX_DEFAULT. */
void rg_audit_set_spool_limit(struct rg_audit *a, size_t bytes);

/* Why the last record that was not delivered at once was spooled or lost
 * ("" if none), e.g. "audit: spool ... is full". */
void rg_audit_last_error(struct rg_audit *a, char *buf, size_t len);

/* Make `in` safe as a record value: control bytes, quotes, backslashes and
 * invalid UTF-8 are rendered as \xHH escapes.  Writes at most len bytes. */
void rg_audit_sanitize(const char *in, char *out, size_t len);

/* Format a record without sending it (tests).  Returns malloc'd text. */
char *rg_audit_format(struct rg_audit *a, int severity, const char *event,
		      const struct rg_kv *fields, size_t nfields);

#endif
