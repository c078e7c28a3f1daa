/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* placeholder: being written */
typedef int tier_placeholder_rdma_verbs_stub_c;
