/* Zip archives read in memory, as torch.save writes them (models/pth.c):
 * the central directory (ZIP64 records included), STORED entries only. A
 * compressed entry is refused, which also rules out zip bombs; every
 * entry's offsets and sizes are checked against the buffer, its local
 * header against the central one, and its bytes against its CRC-32, when
 * the archive is opened; two entries of one name are refused. */
#ifndef GRAFT_ZIP_H
#define GRAFT_ZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

#define GRAFT_ZIP_MAX_ENTRIES 100000
#define GRAFT_ZIP_MAX_NAME 1024

typedef struct graft_zip graft_zip;

/* Whether buf starts with a local file header. */
bool graft_zip_detect(const uint8_t *buf, size_t n);

/* Check the whole archive (n bytes at buf, which must outlive it). */
graft_status graft_zip_open(const uint8_t *buf, size_t n, graft_zip **out);
void graft_zip_close(graft_zip *z);

int graft_zip_count(const graft_zip *z);
/* The i-th entry's name (not NUL-terminated: *len bytes) and data. */
const char *graft_zip_name(const graft_zip *z, int i, size_t *len);
/* The entry of this name: its data and size; false if there is none. */
bool graft_zip_find(const graft_zip *z, const char *name, const uint8_t **data, size_t *size);

#endif
