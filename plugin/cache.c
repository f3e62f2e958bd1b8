/* cache.c - stub */
#include "config.h"
