/* value_text.h — one record's value of a batch column as text: in full as
 * JSON (nested lists by shape), or shortened the way numpy prints a large
 * array ("[0 1 2 ... 7 8 9]") for a table cell. */
#ifndef EXPBUS_TOOLS_VALUE_TEXT_H
#define EXPBUS_TOOLS_VALUE_TEXT_H

#include <stdio.h>

#include "expbus.h"

/* Writes record i of col as JSON: a number (true/false for bool, null for
 * a NaN or an infinity), or nested lists for a field with a shape. */
void value_json(FILE *out, const struct expbus_column *col, uint32_t i);

/* Writes record i of col for a table cell: scalars as numbers, arrays
 * numpy-style on one line, the last dimension longer than 2 * edge items
 * shown as its first and last edge items around "...", outer dimensions
 * longer than 2 as their first and last item. */
void value_short(FILE *out, const struct expbus_column *col, uint32_t i,
		 uint32_t edge);

#endif
