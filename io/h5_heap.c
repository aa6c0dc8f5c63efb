/* Variable-length strings live in HDF5's global heap, and HDF5 1.10.8
 * trusts its on-disk sizes: a heap object whose size disagrees with its
 * collection makes H5HG_read copy past its buffers, and a zero-sized free
 * block makes the heap parser loop forever (both found by test_h5_fuzz).
 * No public call shows where an attribute's strings are stored, so before
 * HDF5 reads any of them every global heap collection in the file is found
 * by its signature (HDF5 accepts "GCOL" + version 1 anywhere an address
 * points) and checked:
 *   - the collection is at least HDF5's minimum size and inside the file;
 *   - every object fits in what is left of it, and every step advances;
 *   - no object is over 4096 bytes: HDF5 copies a whole object into a
 *     conversion buffer of at least 4096 bytes sized from the (unchecked)
 *     string length stored with the attribute, so this bound keeps the copy
 *     inside it whatever that length says.
 * The scan reads the whole file once (pread on HDF5's own descriptor). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5_impl.h"

#define HEAP_MIN_SIZE 4096       /* H5HG_MINSIZE */
#define HEAP_MAX_OBJECT 4096     /* H5T_VLEN_MIN_CONF_BUF_SIZE */
#define SCAN_CHUNK (4u << 20)

static graft_status read_at(int fd, uint64_t off, void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return graft__fail(GRAFT_EIO, "read failed at byte %llu",
                                   (unsigned long long)(off + got));
    got += (size_t)r;
  }
  return GRAFT_OK;
}

/* memmem, which POSIX lacks. */
static const uint8_t *find(const uint8_t *p, const uint8_t *end, const uint8_t *sig, size_t n) {
  while ((size_t)(end - p) >= n) {
    p = memchr(p, sig[0], (size_t)(end - p) - n + 1);
    if (!p) return NULL;
    if (memcmp(p, sig, n) == 0) return p;
    p++;
  }
  return NULL;
}

static uint64_t decode(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = n; i-- > 0;) v = v << 8 | p[i];
  return v;
}

/* The collection whose signature is at byte `at`, as H5HG's parser walks it. */
static graft_status check_collection(const graft_h5 *f, uint64_t at) {
  const unsigned L = f->sizeof_size, hdr = 8 + L, objhdr = 8 + L;
  uint8_t b[16];
  if (at > f->size || f->size - at < HEAP_MIN_SIZE)
    return graft__fail(GRAFT_EFORMAT, "global heap at byte %llu runs past the end of the file",
                       (unsigned long long)at);
  GRAFT_TRY(read_at(f->fd, at, b, hdr));
  uint64_t size = decode(b + 8, L);
  if (size < HEAP_MIN_SIZE || size > f->size - at)
    return graft__fail(GRAFT_EFORMAT, "global heap at byte %llu: bad size %llu",
                       (unsigned long long)at, (unsigned long long)size);
  for (uint64_t p = hdr; p < size;) {
    uint64_t left = size - p;
    if (left < objhdr) break; /* a tail too small for a header is free space */
    GRAFT_TRY(read_at(f->fd, at + p, b, objhdr));
    unsigned idx = (unsigned)decode(b, 2);
    uint64_t osize = decode(b + 8, L), need;
    if (idx > 0) {
      if (osize > HEAP_MAX_OBJECT)
        return graft__fail(GRAFT_ELIMIT,
                           "global heap at byte %llu: object of %llu bytes (strings over %d "
                           "bytes are not accepted)",
                           (unsigned long long)at, (unsigned long long)osize, HEAP_MAX_OBJECT);
      need = objhdr + ((osize + 7) & ~(uint64_t)7);
    } else {
      need = osize; /* free space, header included */
    }
    if (need == 0 || need > left)
      return graft__fail(GRAFT_EFORMAT, "global heap at byte %llu: object %u does not fit",
                         (unsigned long long)at, idx);
    p += need;
  }
  return GRAFT_OK;
}

graft_status graft__h5_check_heaps(graft_h5 *f) {
  if (f->heaps_checked) return f->heaps_status == GRAFT_OK
                                   ? GRAFT_OK
                                   : graft__fail(f->heaps_status, "%s", f->heaps_detail);
  graft_status st = GRAFT_OK;
  static const uint8_t sig[5] = {'G', 'C', 'O', 'L', 1};
  uint8_t *buf = NULL;
  if (f->sizeof_size != 2 && f->sizeof_size != 4 && f->sizeof_size != 8) {
    st = graft__fail(GRAFT_EUNSUPPORTED, "file uses %u-byte lengths", f->sizeof_size);
    goto done;
  }
  if (!(buf = malloc(SCAN_CHUNK + sizeof sig))) {
    st = graft__fail(GRAFT_ENOMEM, "out of memory");
    goto done;
  }
  for (uint64_t off = 0; off < f->size && st == GRAFT_OK; off += SCAN_CHUNK) {
    /* Overlap the next chunk by the signature's length so none is missed. */
    size_t n = f->size - off < SCAN_CHUNK + sizeof sig ? (size_t)(f->size - off)
                                                         : SCAN_CHUNK + sizeof sig;
    if ((st = read_at(f->fd, off, buf, n)) != GRAFT_OK) break;
    for (const uint8_t *p = buf; st == GRAFT_OK;) {
      p = find(p, buf + n, sig, sizeof sig);
      if (!p || (size_t)(p - buf) >= SCAN_CHUNK) break;
      st = check_collection(f, off + (uint64_t)(p - buf));
      p++;
    }
  }
done:
  free(buf);
  f->heaps_checked = true;
  f->heaps_status = st;
  if (st != GRAFT_OK) snprintf(f->heaps_detail, sizeof f->heaps_detail, "%s", graft_detail());
  return st;
}
