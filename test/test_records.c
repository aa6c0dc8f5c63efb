/* comm/batches.h without a job: the split in whole batches, and records
 * read back as they were written, a cut record refused. */
#include <string.h>

#include "comm/batches.h"
#include "harness.h"

/* Every rank's block starts at a batch boundary, the blocks cover [0, n) in
 * order, and their batch counts differ by one at most. */
static void check_split(size_t n, size_t b, int ranks) {
  size_t fewest = (size_t)-1, most = 0;
  CHECK(graft_batches_start(n, b, ranks, 0) == 0);
  CHECK_MSG(graft_batches_start(n, b, ranks, ranks) == n, "n %zu b %zu ranks %d", n, b, ranks);
  for (int r = 0; r < ranks; r++) {
    size_t lo = graft_batches_start(n, b, ranks, r), hi = graft_batches_start(n, b, ranks, r + 1);
    CHECK_MSG(lo <= hi && (lo % b == 0 || lo == n), "rank %d: [%zu, %zu)", r, lo, hi);
    size_t batches = (hi - lo + b - 1) / b;
    fewest = batches < fewest ? batches : fewest;
    most = batches > most ? batches : most;
  }
  CHECK_MSG(most - fewest <= 1, "n %zu b %zu ranks %d: %zu to %zu batches", n, b, ranks, fewest,
            most);
}

int main(void) {
  check_split(13, 4, 2);
  check_split(13, 3, 3);
  check_split(1, 8, 3);
  check_split(9, 1, 2);
  check_split(1000, 7, 5);

  graft_records *w;
  CHECK_OK(graft_records_create(&w));
  const int32_t top[2] = {3, 1};
  const float p[2] = {0.75f, 0.25f};
  graft_records_put(w, GRAFT_OK, top, sizeof top, p, sizeof p);
  graft_records_text(w, GRAFT_EFORMAT, "not an image");
  graft_records_put(w, GRAFT_OK, top, sizeof top, p, sizeof p);
  CHECK(!graft_records_oom(w));
  size_t len, at = 0, n;
  const char *buf = graft_records_bytes(w, &len);
  CHECK_MSG(len <= graft_records_bound(3, sizeof top + sizeof p, 12), "%zu bytes", len);
  int32_t st;
  const char *q;
  CHECK_OK(graft_records_parse(buf, len, &at, sizeof top + sizeof p, &st, &q, &n));
  CHECK(st == GRAFT_OK && n == sizeof top + sizeof p && memcmp(q, top, sizeof top) == 0 &&
        memcmp(q + sizeof top, p, sizeof p) == 0);
  CHECK_OK(graft_records_parse(buf, len, &at, sizeof top + sizeof p, &st, &q, &n));
  CHECK(st == GRAFT_EFORMAT && n == 12 && memcmp(q, "not an image", 12) == 0);
  CHECK_OK(graft_records_parse(buf, len, &at, sizeof top + sizeof p, &st, &q, &n));
  CHECK(st == GRAFT_OK && at == len);
  /* A record cut short is refused, not read past the message. */
  at = 0;
  CHECK(graft_records_parse(buf, 10, &at, sizeof top + sizeof p, &st, &q, &n) == GRAFT_EFORMAT);
  at = 0;
  CHECK(graft_records_parse(buf, len, &at, len, &st, &q, &n) == GRAFT_EFORMAT);
  graft_records_reset(w);
  buf = graft_records_bytes(w, &len);
  CHECK(len == 0);
  graft_records_free(w);
  return graft_test_finish("records");
}
