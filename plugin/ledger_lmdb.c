/* ledger_lmdb.c - stub */
#include "config.h"
