/* rules.c - stub */
#include "config.h"
