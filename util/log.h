/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_LOG_H
#define TIER_UTIL_LOG_H

/*
 * The library's only output (util/log.c): handed to the hook of
 * tier_set_log_fn(), or written to stderr when TIER_LOG=debug|info|err
 * asks for it; tier_dbg() is the shorthand for a debug line.
 */
void tier_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define tier_dbg(...) tier_log(TIER_LOG_DEBUG, __VA_ARGS__)

#endif
