/* ledger_ldap.c - stub */
#include "config.h"
