/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_TESTS_T_H
#define TIER_TESTS_T_H

/* Exit codes meson (and automake) understand; no framework beyond this. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"

enum { T_PASS = 0, T_FAIL = 1, T_SKIP = 77, T_ERROR = 99 };

/* Skip the whole test, saying what was missing and how to get it. */
#define t_skip(...) do {						\
		printf("skip: " __VA_ARGS__);				\
		putchar('\n');						\
		exit(T_SKIP);						\
	} while (0)

#define t_assert(cond) do {						\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: %s\n",			\
				__FILE__, __LINE__, #cond);		\
			exit(T_FAIL);					\
		}							\
	} while (0)

/* Assert two integers are equal, printing both if not. */
#define t_eq(a, b) do {							\
		long long t_a_ = (long long)(a), t_b_ = (long long)(b);	\
		if (t_a_ != t_b_) {					\
			fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, t_a_, t_b_); \
			exit(T_FAIL);					\
		}							\
	} while (0)

/* Assert a tier call returned 0, printing tier_errmsg() if not. */
#define t_ok(call) do {							\
		int t_rc_ = (call);					\
		if (t_rc_) {						\
			fprintf(stderr, "%s:%d: %s = %d: %s\n",		\
				__FILE__, __LINE__, #call, t_rc_,	\
				tier_errmsg());				\
			exit(T_FAIL);					\
		}							\
	} while (0)

/* Assert a call failed with @err. */
#define t_fails(call, err) do {						\
		int t_rc_ = (call);					\
		if (t_rc_ != (err)) {					\
			fprintf(stderr, "%s:%d: %s = %d, want %d (%s)\n", \
				__FILE__, __LINE__, #call, t_rc_, (err), \
				tier_errmsg());				\
			exit(T_FAIL);					\
		}							\
	} while (0)

/* Runs a shell command made from @fmt; any failure fails the test. */
static inline void t_sh(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void t_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0) {
		fprintf(stderr, "failed: %s\n", cmd);
		exit(T_FAIL);
	}
}

/* Fills a 4 KiB page with xorshift bytes of @seed: test images whose
 * every page differs from every other. */
static inline void t_fill_page(void *page, uint64_t seed)
{
	uint64_t x = seed;
	size_t i;

	for (i = 0; i < 4096 / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy((char *)page + i * 8, &x, 8);
	}
}

#endif
