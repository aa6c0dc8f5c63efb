/* safetensors, written: an 8-byte little-endian header length, a JSON header
 * (padded with spaces to a multiple of 8, as the safetensors library pads it)
 * naming each tensor's dtype, shape and byte range, then the tensors' bytes
 * back to back. Tensors in name order, as the library's own writer puts
 * tensors of one dtype. */
#include <stdlib.h>
#include <string.h>

#include "models/export.h"
#include "models/export_util.h"

static int cmp_param(const void *a, const void *b) {
  return strcmp((*(const graft_param *const *)a)->name, (*(const graft_param *const *)b)->name);
}

static void put_u64_le(uint8_t out[8], uint64_t v) {
  for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (8 * i));
}

/* The header: metadata, then every tensor at its offset in the data. */
static graft_status header(graft__buf *h, const graft_model *m, const graft_param *const *sorted) {
  graft__meta meta;
  GRAFT_TRY(graft__meta_init(&meta, m));
  graft__buf_str(h, "{\"__metadata__\":{\"format\":\"pt\"");
  for (int i = 0; i < meta.n; i++) {
    graft__buf_put(h, ",", 1);
    graft__buf_json_string(h, meta.key[i]);
    graft__buf_put(h, ":", 1);
    graft__buf_json_string(h, meta.value[i]);
  }
  graft__buf_put(h, "}", 1);
  graft__meta_free(&meta);
  uint64_t at = 0;
  for (int i = 0; i < m->arch.n_params; i++) {
    const graft_param *p = sorted[i];
    graft__buf_put(h, ",", 1);
    graft__buf_json_string(h, p->name);
    graft__buf_str(h, ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < p->rank; d++)
      graft__buf_printf(h, "%s%lld", d ? "," : "", (long long)p->dims[d]);
    uint64_t end = at + 4 * (uint64_t)p->count;
    graft__buf_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)at,
                      (unsigned long long)end);
    at = end;
  }
  graft__buf_put(h, "}", 1);
  while (h->len % 8) graft__buf_put(h, " ", 1);
  return graft__buf_status(h);
}

graft_status graft_model_save_safetensors(const char *path, const graft_model *m) {
  GRAFT_TRY(graft__export_check(m));
  const graft_param *sorted[GRAFT_MAX_PARAMS];
  for (int i = 0; i < m->arch.n_params; i++) sorted[i] = &m->arch.params[i];
  qsort(sorted, (size_t)m->arch.n_params, sizeof *sorted, cmp_param);

  graft__buf h = {0};
  graft_status s = header(&h, m, sorted);
  graft__out out;
  if (s == GRAFT_OK) s = graft__out_open(&out, path);
  if (s != GRAFT_OK) {
    graft__buf_free(&h);
    return s;
  }
  uint8_t len[8];
  put_u64_le(len, h.len);
  graft__out_write(&out, len, sizeof len);
  graft__out_write(&out, h.data, h.len);
  graft__buf_free(&h);
  for (int i = 0; i < m->arch.n_params; i++)
    graft__out_floats_le(&out, graft_model_param(m, sorted[i]), sorted[i]->count);
  return graft__out_commit(&out);
}
