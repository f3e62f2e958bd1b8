/* config.c - stub */
#include "config.h"
