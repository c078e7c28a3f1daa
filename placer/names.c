/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Names of policies and classes, as the CLI, plans and stats print them. */
#include <errno.h>
#include <stddef.h>
#include <strings.h>

#include "tier.h"
#include "util/err.h"

static const char *const policy_names[TIER_POLICY_MAX] = {
	[TIER_POLICY_TIERED] = "tiered",
	[TIER_POLICY_VANILLA] = "vanilla",
	[TIER_POLICY_REAP] = "reap",
	[TIER_POLICY_FAASNAP] = "faasnap",
	[TIER_POLICY_AQUIFER] = "aquifer",
	[TIER_POLICY_EAGER] = "eager",
};

static const char *const class_names[TIER_CLASS_MAX] = {
	[TIER_CLASS_ZERO] = "zero",
	[TIER_CLASS_RO] = "ro",
	[TIER_CLASS_RW] = "rw",
	[TIER_CLASS_COLD] = "cold",
};

const char *tier_policy_name(enum tier_policy policy)
{
	if ((unsigned)policy >= TIER_POLICY_MAX)
		return NULL;
	return policy_names[policy];
}

int tier_policy_parse(const char *name, enum tier_policy *ret)
{
	unsigned i;

	if (!name || !ret)
		return tier_err(-EINVAL, "policy: no name given");
	for (i = 0; i < TIER_POLICY_MAX; i++) {
		if (!strcasecmp(name, policy_names[i])) {
			*ret = i;
			return 0;
		}
	}
	return tier_err(-EINVAL, "unknown policy \"%s\" (want tiered, vanilla, "
			"reap, faasnap, aquifer or eager)", name);
}

const char *tier_class_name(enum tier_class cls)
{
	if ((unsigned)cls >= TIER_CLASS_MAX)
		return NULL;
	return class_names[cls];
}
