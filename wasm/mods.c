/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "wasm/host.h"

const struct wasm_mod *const wasm_mods[] = {
	&wasm_mod_dict, &wasm_mod_image, &wasm_mod_index, NULL,
};
