/* calendar.c - stub */
#include "config.h"
