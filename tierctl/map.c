/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page map of "tierctl show --map": one cell per k pages, coloured by
 * the majority of (tier, class) among them. SVG is written directly; PNG
 * goes through rsvg-convert when it is installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/err.h"
#include "util/file.h"

extern char **environ;

enum cat {
	CAT_ZERO,	/* nowhere: the kernel's zero page */
	CAT_CXL_RO,
	CAT_CXL_OTHER,	/* rw or cold bytes kept on CXL (aquifer's hot set) */
	CAT_POOL_RW,
	CAT_POOL_COLD,
	CAT_POOL_RO,	/* ro spilled to the pool: CXL full */
	CAT_LOCAL,
	CAT_IMAGE,
	CAT_MAX,
};

static const struct {
	const char *colour, *label;
} cats[CAT_MAX] = {
	[CAT_ZERO]      = { "#eeeeee", "zero: nowhere" },
	[CAT_CXL_RO]    = { "#1f77b4", "read-only on CXL" },
	[CAT_CXL_OTHER] = { "#9ecae1", "read-write or cold on CXL" },
	[CAT_POOL_RW]   = { "#ff7f0e", "read-write in the pool" },
	[CAT_POOL_COLD] = { "#8b1a1a", "cold in the pool" },
	[CAT_POOL_RO]   = { "#c994c7", "read-only in the pool (CXL full)" },
	[CAT_LOCAL]     = { "#2ca02c", "compact local file" },
	[CAT_IMAGE]     = { "#8c8c8c", "image file" },
};

static enum cat page_cat(uint8_t v)
{
	unsigned cls = v & 0xf, tier = v >> 4;

	switch (tier) {
	case TIER_TIER_CXL:
		return cls == TIER_CLASS_RO ? CAT_CXL_RO : CAT_CXL_OTHER;
	case TIER_TIER_POOL:
		if (cls == TIER_CLASS_RW)
			return CAT_POOL_RW;
		if (cls == TIER_CLASS_RO)
			return CAT_POOL_RO;
		return CAT_POOL_COLD;
	case TIER_TIER_LOCAL:
		return CAT_LOCAL;
	case TIER_TIER_IMAGE:
		return CAT_IMAGE;
	default:
		return CAT_ZERO;
	}
}

#define MAX_CELLS	16384	/* at most 128 x 128 cells */
#define COLS		128
#define GRID_PX		768	/* the grid's width, about */
#define MARGIN		16U

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else
			fputc(*s, f);
	}
}

/* Writes the SVG document into a malloc()ed buffer. */
static int map_svg(struct tier_snap *snap, enum tier_policy policy,
		   const uint8_t *pages, char **ret, size_t *ret_len)
{
	uint64_t npages = tier_snap_npages(snap), total[CAT_MAX] = { 0 };
	uint64_t k, ncells, cell, p, count[CAT_MAX];
	unsigned cols, rows, width, height, legend_y, x, y, run, i, n, cell_px;
	enum cat *cellcat;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	k = npages ? (npages + MAX_CELLS - 1) / MAX_CELLS : 1;
	ncells = (npages + k - 1) / k;
	cols = ncells < COLS ? (ncells ? ncells : 1) : COLS;
	rows = (ncells + cols - 1) / cols;
	if (!rows)
		rows = 1;
	/* small plans get bigger cells, up to 24 pixels */
	cell_px = GRID_PX / cols;
	cell_px = cell_px < 6 ? 6 : cell_px > 24 ? 24 : cell_px;
	cellcat = calloc(ncells ? ncells : 1, sizeof(*cellcat));
	if (!cellcat)
		return tier_err(-ENOMEM, "out of memory");

	for (cell = 0; cell < ncells; cell++) {
		enum cat best = CAT_ZERO;

		memset(count, 0, sizeof(count));
		for (p = cell * k; p < (cell + 1) * k && p < npages; p++) {
			count[page_cat(pages[p])]++;
			total[page_cat(pages[p])]++;
		}
		for (i = 0; i < CAT_MAX; i++)
			if (count[i] > count[best])
				best = i;
		cellcat[cell] = best;
	}

	f = open_memstream(&buf, &len);
	if (!f) {
		free(cellcat);
		return tier_err(-errno, "open_memstream: %m");
	}
	width = 2 * MARGIN + cols * cell_px;
	if (width < 420)
		width = 420;
	legend_y = 2 * MARGIN + 24 + rows * cell_px;
	for (i = 0, n = 0; i < CAT_MAX; i++)
		n += !!total[i];
	height = legend_y + n * 18 + MARGIN;

	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%u\" "
		"viewBox=\"0 0 %u %u\" font-family=\"sans-serif\" font-size=\"12\">\n",
		width, height, width, height);
	fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
	fprintf(f, "<text x=\"%u\" y=\"%u\" font-size=\"14\" font-weight=\"bold\">",
		MARGIN, MARGIN + 4);
	xml_text(f, tier_snap_name(snap));
	fprintf(f, ": plan %s</text>\n", tier_policy_name(policy));
	fprintf(f, "<text x=\"%u\" y=\"%u\" fill=\"#555\">%llu pages, "
		"%llu page%s per cell, %u cells per row</text>\n",
		MARGIN, MARGIN + 22, (unsigned long long)npages,
		(unsigned long long)k, k == 1 ? "" : "s", cols);

	/* one rect per run of equal cells in a row keeps the file small */
	for (cell = 0; cell < ncells; cell += run) {
		x = cell % cols;
		y = cell / cols;
		for (run = 1; x + run < cols && cell + run < ncells &&
			      cellcat[cell + run] == cellcat[cell]; run++)
			;
		fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"%u\" "
			"fill=\"%s\"/>\n", MARGIN + x * cell_px,
			2 * MARGIN + 16 + y * cell_px, run * cell_px, cell_px,
			cats[cellcat[cell]].colour);
	}

	for (i = 0, n = 0; i < CAT_MAX; i++) {
		if (!total[i])
			continue;
		y = legend_y + n++ * 18;
		fprintf(f, "<rect x=\"%u\" y=\"%u\" width=\"12\" height=\"12\" "
			"fill=\"%s\" stroke=\"#444\" stroke-width=\"0.5\"/>\n",
			MARGIN, y, cats[i].colour);
		fprintf(f, "<text x=\"%u\" y=\"%u\">%s: %llu pages (%.1f%%)</text>\n",
			MARGIN + 18, y + 10, cats[i].label,
			(unsigned long long)total[i], pct(total[i], npages));
	}
	fprintf(f, "</svg>\n");
	free(cellcat);
	if (fclose(f))
		return tier_err(-ENOMEM, "out of memory");
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcasecmp(s + n - m, suffix);
}

/* rsvg-convert SVG -> PNG into a temporary next to @path, renamed over it. */
static int svg_to_png(const char *svg, size_t len, const char *path)
{
	char svgtmp[] = "/tmp/tierctl-map-XXXXXX.svg", pngtmp[4200];
	char *argv[] = { "rsvg-convert", "-f", "png", "-o", pngtmp, svgtmp, NULL };
	pid_t pid;
	int fd, rc, status;

	fd = mkstemps(svgtmp, 4);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", svgtmp);
	rc = write_full(fd, svg, len, svgtmp);
	close(fd);
	if (rc)
		goto out;
	snprintf(pngtmp, sizeof(pngtmp), "%s.tmp.%d", path, getpid());
	rc = posix_spawnp(&pid, "rsvg-convert", NULL, NULL, argv, environ);
	if (rc == ENOENT) {
		rc = tier_err(-ENOENT, "%s: rsvg-convert not found (install librsvg2-bin), "
			      "or write the map as .svg", path);
		goto out;
	}
	if (rc) {
		rc = tier_err(-rc, "rsvg-convert: %s", strerror(rc));
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			rc = tier_err(-errno, "rsvg-convert: %m");
			goto out_png;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		rc = tier_err(-EIO, "%s: rsvg-convert failed", path);
		goto out_png;
	}
	if (rename(pngtmp, path)) {
		rc = tier_err(-errno, "%s: %m", path);
		goto out_png;
	}
	rc = 0;
	goto out;
out_png:
	unlink(pngtmp);
out:
	unlink(svgtmp);
	return rc;
}

int map_write(struct tier_snap *snap, enum tier_policy policy,
	      const char *path)
{
	uint8_t *pages;
	char *svg = NULL;
	size_t len = 0;
	int rc;

	if (!has_suffix(path, ".svg") && !has_suffix(path, ".png"))
		return tier_err(-EINVAL, "\"%s\": a map is written as .svg or .png", path);
	rc = tier_plan_pages(snap, policy, &pages);
	if (rc)
		return rc;
	rc = map_svg(snap, policy, pages, &svg, &len);
	free(pages);
	if (rc)
		return rc;
	if (has_suffix(path, ".png"))
		rc = svg_to_png(svg, len, path);
	else
		rc = write_file_atomic(path, svg, len);
	free(svg);
	return rc;
}
