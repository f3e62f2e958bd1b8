/*
 * api.h - internals of the decision pipeline shared with the PAM adapter and
 * the CLI (things that are not part of the public C API).
 */
#ifndef RG_API_H
#define RG_API_H

#include "rotagate.h"
#include "config.h"

/* The process-wide registry used by the PAM adapter: one handle per config
 * path, created on first use and kept for the life of the process (the
 * module is linked -z nodelete).  Returns NULL with a message on failure. */
struct rotagate *rg_registry_get(const char *conf_path, char *err, size_t errlen);

/* The config in force (reloaded first if the file changed) and the ledger
 * built from it, for the CLI.  Valid until rg_api_view_put(). */
struct rg_ledger;
struct rg_generation;
struct rg_api_view {
	const struct rg_config *cfg;
	struct rg_ledger *ledger;
	struct rg_generation *gen_; /* private */
};
void rg_api_view_get(struct rotagate *h, struct rg_api_view *v);
void rg_api_view_put(struct rotagate *h, struct rg_api_view *v);

#endif
