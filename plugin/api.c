/* api.c - stub */
#include "config.h"
