/* ledger.c - stub */
#include "config.h"
