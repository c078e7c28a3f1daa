/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_SIZE_H
#define TIER_UTIL_SIZE_H

/*
 * Numbers as people type them (util/size.c): the CLI's options, the
 * region tables of tierctl import and bench's tier-gen. Errors are
 * -EINVAL with the reason in tier_errmsg().
 */

#include <stdint.h>

/* "4096", "0x1000", "4K", "1.5G" (K/M/G/T, powers of 1024). */
int parse_size(const char *s, uint64_t *ret);
/* A plain unsigned decimal or 0x number, at most @max. */
int parse_uint(const char *s, uint64_t max, uint64_t *ret);
/* The value of a hex digit (either case), or -1. */
int hex_digit(char c);

#endif
