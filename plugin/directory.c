/* directory.c - stub */
#include "config.h"
