/*
 * host-app - a door controller in miniature, for tests/audit/host-ident.sh.
 *
 *   host-app MODULE CONF TAG USER:DOOR:WHEN...
 *
 * Like a real controller it has its own syslog identity: openlog("door-controller",
 * LOG_PID, LOG_LOCAL3).  It syslog()s "host.before; tag='TAG'", dlopen()s MODULE
 * (RTLD_LOCAL), takes rotagate_plugin_v1(), opens CONF, decides each USER:DOOR:WHEN
 * (WHEN in Unix seconds), closes the handle, dlclose()s the module and then syslog()s
 * "host.after; tag='TAG', n='1'" .. n='3' (main thread, then a new thread), so a
 * host whose ident or facility the module had changed, or whose ident pointed into
 * unloaded memory, shows it.  (The lines have the "EVENT; key='value'" shape so that
 * the test's syslog-ng, built from the shipped include, parses and stores them too.)
 *
 * stdout, one line each: "pid PID", "decision USER DOOR VERDICT REASON" per request,
 * "mapped-after-dlclose 0|1" (1 by design: the module is linked -z nodelete),
 * and "done" when it got to the end.  Exit 0 on success, 2 on a usage or load error.
 * It is linked only with libdl/libpthread: nothing of rotagate's is linked in.
 */
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "rotagate.h"

static const char *tag;

static void *log_from_thread(void *arg)
{
	(void)arg;
	syslog(LOG_INFO, "host.after; tag='%s', n='3'", tag);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s MODULE CONF TAG USER:DOOR:WHEN...\n", argv[0]);
		return 2;
	}
	const char *module = argv[1], *conf = argv[2];
	tag = argv[3];
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid %ld\n", (long)getpid());

	openlog("door-controller", LOG_PID, LOG_LOCAL3);
	syslog(LOG_INFO, "host.before; tag='%s'", tag);

	void *dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		fprintf(stderr, "host-app: dlopen %s: %s\n", module, dlerror());
		return 2;
	}
	const struct rotagate_plugin_v1 *(*entry)(void);
	*(void **)&entry = dlsym(dl, "rotagate_plugin_v1");
	if (!entry) {
		fprintf(stderr, "host-app: dlsym rotagate_plugin_v1: %s\n", dlerror());
		return 2;
	}
	const struct rotagate_plugin_v1 *p = entry();
	if (!p || p->abi_version != ROTAGATE_ABI_VERSION ||
	    p->decision_size != sizeof(struct rotagate_decision)) {
		fprintf(stderr, "host-app: unexpected plugin table\n");
		return 2;
	}

	struct rotagate *h = NULL;
	char err[512];
	if (p->open(conf, &h, err, sizeof err) != 0) {
		fprintf(stderr, "host-app: open %s: %s\n", conf, err);
		return 2;
	}
	for (int i = 4; i < argc; i++) {
		char buf[512];
		snprintf(buf, sizeof buf, "%s", argv[i]);
		char *door = strchr(buf, ':');
		char *when = door ? strchr(door + 1, ':') : NULL;
		if (!when) {
			fprintf(stderr, "host-app: bad request %s (USER:DOOR:WHEN)\n", argv[i]);
			return 2;
		}
		*door++ = '\0';
		*when++ = '\0';
		struct rotagate_request req = {
			.principal = buf,
			.door = door,
			.when = (int64_t)strtoll(when, NULL, 10),
		};
		struct rotagate_decision dec;
		enum rotagate_verdict v = p->decide(h, &req, &dec);
		printf("decision %s %s %s %s\n", buf, door, p->verdict_name(v),
		       p->reason_name(dec.reason));
	}
	p->close(h);

	if (dlclose(dl) != 0) {
		fprintf(stderr, "host-app: dlclose: %s\n", dlerror());
		return 2;
	}
	/* -z nodelete: the module stays mapped after dlclose, by design (PAM state) */
	void *still = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
	printf("mapped-after-dlclose %d\n", still != NULL);
	if (still)
		dlclose(still);

	/* the host keeps logging with its own identity */
	syslog(LOG_INFO, "host.after; tag='%s', n='1'", tag);
	syslog(LOG_INFO, "host.after; tag='%s', n='2'", tag);
	pthread_t t;
	if (pthread_create(&t, NULL, log_from_thread, NULL) != 0 || pthread_join(t, NULL) != 0) {
		fprintf(stderr, "host-app: pthread\n");
		return 2;
	}
	closelog();
	printf("done\n");
	return 0;
}
