/* safetensors files read in memory: an 8-byte little-endian header length,
 * a JSON header naming each tensor's dtype, shape and byte range, then the
 * data. Only F32, F16 and BF16 tensors are accepted. The whole header is
 * checked before anything is handed out: its length (at most
 * GRAFT_SAFETENSORS_MAX_HEADER, within the file), the JSON (io/json.h),
 * each tensor's dtype against its shape and byte range, and the ranges
 * tiling the data exactly, without gaps or overlaps, to the end of the
 * file. An optional __metadata__ object must map strings to strings. */
#ifndef GRAFT_SAFETENSORS_H
#define GRAFT_SAFETENSORS_H

#include <stdbool.h>

#include "io/json.h"
#include "io/tensors.h"

#define GRAFT_SAFETENSORS_MAX_HEADER (16u << 20)
#define GRAFT_SAFETENSORS_MAX_TENSORS 10000

/* Whether the first bytes look like a safetensors file: 8 bytes of header
 * length (checked by the parse, not here), then '{'. */
bool graft_safetensors_detect(const uint8_t *buf, size_t n);

/* Parse buf (n bytes; it must outlive the references). *t (malloc'd, *count
 * entries) point into buf; *meta is the parsed header and *meta_obj its
 * __metadata__ object or -1 (graft_json_free(*meta) when done). */
graft_status graft_safetensors_parse(const uint8_t *buf, size_t n, graft_tensor_ref **t, int *count,
                                     graft_json **meta, graft_json_ref *meta_obj);

#endif
