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

/* The config currently in force (reloaded if the file changed).  The caller
 * holds a reference until rg_api_config_put(). */
const struct rg_config *rg_api_config_get(struct rotagate *h);
void rg_api_config_put(struct rotagate *h, const struct rg_config *cfg);

#endif
