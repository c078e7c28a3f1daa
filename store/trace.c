/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* placeholder: being written */
typedef int tier_placeholder_store_trace_c;
