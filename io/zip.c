/* Zip archives read in memory (io/zip.h). Every field read from the buffer
 * is bounds-checked before use; the central directory is the authority, the
 * local headers only locate the data and must agree with it. */
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u

typedef struct entry {
  const char *name;
  size_t name_len;
  const uint8_t *data;
  size_t size;
} entry;

struct graft_zip {
  entry *e;
  int n;
  entry **by_name; /* sorted by name: lookups stay fast with 100000 entries */
};

static int cmp_names(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

static int cmp_entry(const void *x, const void *y) {
  const entry *a = *(entry *const *)x, *b = *(entry *const *)y;
  return cmp_names(a->name, a->name_len, b->name, b->name_len);
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

bool graft_zip_detect(const uint8_t *buf, size_t n) { return n >= 4 && le32(buf) == SIG_LOCAL; }

static graft_status corrupt(const char *what) {
  return graft__fail(GRAFT_EFORMAT, "zip: %s", what);
}

/* The central directory's place and size: the end record, then the ZIP64
 * one when the end record says so or a locator precedes it. */
static graft_status find_directory(const uint8_t *b, size_t n, uint64_t *off, uint64_t *size,
                                   uint64_t *count) {
  if (n < 22) return corrupt("truncated: no end of central directory record");
  size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0, at = n - 22;
  for (;; at--) {
    if (le32(b + at) == SIG_EOCD && at + 22 + le16(b + at + 20) == n) break;
    if (at == lo) return corrupt("truncated: no end of central directory record");
  }
  const uint8_t *e = b + at;
  if (le16(e + 4) != 0 || le16(e + 6) != 0 || le16(e + 8) != le16(e + 10))
    return corrupt("a multi-part archive");
  *count = le16(e + 10), *size = le32(e + 12), *off = le32(e + 16);
  bool want64 = *count == 0xffff || *size == 0xffffffffu || *off == 0xffffffffu;
  if (at >= 20 && le32(b + at - 20) == SIG_LOCATOR64) {
    uint64_t at64 = le64(b + at - 20 + 8);
    if (at64 > at - 20 || at - 20 - at64 < 56 || le32(b + at64) != SIG_EOCD64)
      return corrupt("a ZIP64 end record outside the file");
    const uint8_t *z = b + at64;
    if (le32(z + 16) != 0 || le32(z + 20) != 0 || le64(z + 24) != le64(z + 32))
      return corrupt("a multi-part archive");
    *count = le64(z + 32), *size = le64(z + 40), *off = le64(z + 48);
  } else if (want64) {
    return corrupt("a ZIP64 archive without its ZIP64 end record");
  }
  if (*off > n || *size > n - *off || *off + *size > at)
    return corrupt("the central directory lies outside the file");
  if (*count > GRAFT_ZIP_MAX_ENTRIES) return corrupt("too many entries");
  return GRAFT_OK;
}

/* The ZIP64 extra field's values for the fields marked 0xffffffff. */
static graft_status zip64_extra(const uint8_t *x, size_t len, uint64_t *usize, uint64_t *csize,
                                uint64_t *lho) {
  while (len >= 4) {
    uint16_t id = le16(x), sz = le16(x + 2);
    if (sz > len - 4) return corrupt("an extra field runs past its entry");
    if (id == 1) {
      const uint8_t *p = x + 4, *end = p + sz;
      uint64_t *f[3] = {usize, csize, lho};
      for (int i = 0; i < 3; i++) {
        if (*f[i] != 0xffffffffu) continue;
        if (end - p < 8) return corrupt("a short ZIP64 extra field");
        *f[i] = le64(p);
        p += 8;
      }
      return GRAFT_OK;
    }
    x += 4 + sz;
    len -= 4 + (size_t)sz;
  }
  if (*usize == 0xffffffffu || *csize == 0xffffffffu || *lho == 0xffffffffu)
    return corrupt("an entry without its ZIP64 extra field");
  return GRAFT_OK;
}

static uint32_t crc_of(const uint8_t *p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n) {
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, p, k);
    p += k;
    n -= k;
  }
  return (uint32_t)c;
}

/* One central directory entry at *at: checked, its data located. */
static graft_status read_entry(const uint8_t *b, size_t n, size_t *at, size_t end, entry *e) {
  if (end - *at < 46 || le32(b + *at) != SIG_CENTRAL) return corrupt("a damaged central directory");
  const uint8_t *c = b + *at;
  uint16_t flags = le16(c + 8), method = le16(c + 10), nlen = le16(c + 28), xlen = le16(c + 30),
           clen = le16(c + 32);
  uint32_t crc = le32(c + 16);
  uint64_t csize = le32(c + 20), usize = le32(c + 24), lho = le32(c + 42);
  if ((size_t)46 + nlen + xlen + clen > end - *at) return corrupt("a damaged central directory");
  e->name = (const char *)c + 46;
  e->name_len = nlen;
  if (nlen == 0 || nlen > GRAFT_ZIP_MAX_NAME)
    return corrupt("an entry name that is empty or too long");
  GRAFT_TRY(zip64_extra(c + 46 + nlen, xlen, &usize, &csize, &lho));
  *at += (size_t)46 + nlen + xlen + clen;
  if (flags & 1)
    return graft__fail(GRAFT_EUNSUPPORTED, "zip: entry \"%.*s\" is encrypted",
                       (int)(nlen > 64 ? 64 : nlen), e->name);
  if (method != 0)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "zip: entry \"%.*s\" is compressed (method %u); only stored entries are "
                       "read",
                       (int)(nlen > 64 ? 64 : nlen), e->name, method);
  if (csize != usize) return corrupt("a stored entry whose sizes differ");
  if (lho > n || n - lho < 30 || le32(b + lho) != SIG_LOCAL)
    return corrupt("a local header outside the file");
  const uint8_t *l = b + lho;
  uint64_t data = lho + 30 + (uint64_t)le16(l + 26) + le16(l + 28);
  if (le16(l + 8) != method || le16(l + 26) != nlen || data > n ||
      memcmp(l + 30, e->name, nlen) != 0)
    return corrupt("a local header that disagrees with the central directory");
  if (usize > n - data) return corrupt("truncated: an entry runs past the end of the file");
  e->data = b + data;
  e->size = (size_t)usize;
  if (crc_of(e->data, e->size) != crc)
    return graft__fail(GRAFT_EFORMAT, "zip: entry \"%.*s\": CRC-32 mismatch (damaged)",
                       (int)(nlen > 64 ? 64 : nlen), e->name);
  return GRAFT_OK;
}

graft_status graft_zip_open(const uint8_t *b, size_t n, graft_zip **out) {
  *out = NULL;
  uint64_t off = 0, size = 0, count = 0;
  GRAFT_TRY(find_directory(b, n, &off, &size, &count));
  graft_zip *z = calloc(1, sizeof *z);
  entry *e = calloc(count ? (size_t)count : 1, sizeof *e);
  if (!z || !e) {
    free(z);
    free(e);
    return graft__fail(GRAFT_ENOMEM, "zip: out of memory");
  }
  z->e = e;
  size_t at = (size_t)off, end = (size_t)(off + size);
  graft_status s = GRAFT_OK;
  for (uint64_t i = 0; i < count && s == GRAFT_OK; i++) s = read_entry(b, n, &at, end, &e[i]);
  if (s == GRAFT_OK && at != end) s = corrupt("the central directory holds more than its entries");
  if (s == GRAFT_OK && !(z->by_name = malloc((count ? (size_t)count : 1) * sizeof *z->by_name)))
    s = graft__fail(GRAFT_ENOMEM, "zip: out of memory");
  if (s != GRAFT_OK) {
    graft_zip_close(z);
    return s;
  }
  z->n = (int)count;
  for (int i = 0; i < z->n; i++) z->by_name[i] = &e[i];
  qsort(z->by_name, (size_t)z->n, sizeof *z->by_name, cmp_entry);
  for (int i = 1; i < z->n; i++)
    if (cmp_entry(&z->by_name[i - 1], &z->by_name[i]) == 0) {
      graft_zip_close(z);
      return corrupt("two entries of one name");
    }
  *out = z;
  return GRAFT_OK;
}

void graft_zip_close(graft_zip *z) {
  if (!z) return;
  free(z->e);
  free(z->by_name);
  free(z);
}

int graft_zip_count(const graft_zip *z) { return z->n; }

const char *graft_zip_name(const graft_zip *z, int i, size_t *len) {
  *len = z->e[i].name_len;
  return z->e[i].name;
}

bool graft_zip_find(const graft_zip *z, const char *name, const uint8_t **data, size_t *size) {
  size_t len = strlen(name);
  int lo = 0, hi = z->n;
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    const entry *e = z->by_name[mid];
    if (cmp_names(e->name, e->name_len, name, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == z->n || cmp_names(z->by_name[lo]->name, z->by_name[lo]->name_len, name, len) != 0)
    return false;
  *data = z->by_name[lo]->data;
  *size = z->by_name[lo]->size;
  return true;
}
