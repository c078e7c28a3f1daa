/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A dictionary function (compiled to wasm32-wasi): init parses a generated
 * "word: definition" text into a hash table with its definitions in an
 * arena, as a spell checker or tokenizer loads its vocabulary; a call
 * looks one word up, touching a bucket and one definition.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ent {
	char word[12];
	uint32_t def;		/* offset in the arena */
	uint32_t len;
};

static struct ent *tab;
static uint32_t nbuckets;
static char *arena;

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static uint32_t hash(const char *w)
{
	uint32_t h = 2166136261u;

	while (*w)
		h = (h ^ (uint8_t)*w++) * 16777619u;
	return h;
}

static void word_of(uint32_t i, char *w)
{
	snprintf(w, 12, "w%u", i * 2654435761u % 1000003u);
}

/* The text a real function would read from its package. */
static char *make_text(uint32_t n, size_t *len)
{
	size_t cap = (size_t)n * 96, off = 0;
	char *t = malloc(cap), w[12];
	uint32_t s = 7, i, k;

	for (i = 0; i < n; i++) {
		word_of(i, w);
		off += sprintf(t + off, "%s:", w);
		for (k = 0; k < 8 + lcg(&s) % 48; k++)
			t[off++] = 'a' + lcg(&s) % 26;
		t[off++] = '\n';
	}
	*len = off;
	return t;
}

__attribute__((export_name("init"))) int init(int n)
{
	size_t len, aoff = 0;
	char *text = make_text(n, &len), *p = text, *end = text + len;

	nbuckets = 1;
	while (nbuckets < (uint32_t)n * 2)
		nbuckets <<= 1;
	tab = calloc(nbuckets, sizeof(*tab));
	arena = malloc(len);
	if (!tab || !arena) {
		fprintf(stderr, "dict: out of memory for %d words\n", n);
		return -1;
	}
	while (p < end) {
		char *colon = memchr(p, ':', end - p), *nl;
		uint32_t h;

		if (!colon)
			break;
		nl = memchr(colon, '\n', end - colon);
		*colon = 0;
		h = hash(p) & (nbuckets - 1);
		while (tab[h].word[0])
			h = (h + 1) & (nbuckets - 1);
		memcpy(tab[h].word, p, strlen(p) + 1);
		tab[h].def = aoff;
		tab[h].len = nl - colon - 1;
		memcpy(arena + aoff, colon + 1, tab[h].len);
		aoff += tab[h].len;
		p = nl + 1;
	}
	free(text);
	return 0;
}

/* Looks up the word of entry @i (or a missing one when i < 0):
 * a checksum of its definition, 0 if absent. */
__attribute__((export_name("call"))) int call(int i)
{
	char w[12];
	uint32_t h, k, r = 0;

	word_of(i < 0 ? (uint32_t)-i + 77777777u : (uint32_t)i, w);
	for (h = hash(w) & (nbuckets - 1); tab[h].word[0];
	     h = (h + 1) & (nbuckets - 1)) {
		if (strcmp(tab[h].word, w))
			continue;
		for (k = 0; k < tab[h].len; k++)
			r = r * 31 + (uint8_t)arena[tab[h].def + k];
		return (int)(r | 1);
	}
	return 0;
}
