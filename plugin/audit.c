/* audit.c - stub */
#include "config.h"
