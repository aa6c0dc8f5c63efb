/* Items over the job's ranks in whole batches, and their results back to
 * rank 0 in input order.
 *
 * Each rank takes one contiguous block of the items, cut at batch
 * boundaries, so that every batch is the one a single process would run (a
 * net may give a row different bits in batches of other sizes). A rank
 * writes one record per item of its block, in order, and sends them to rank
 * 0 once done; rank 0 reads each rank's records in rank order: the results
 * in input order, whatever the number of ranks.
 *
 * A record is an int32 status; for GRAFT_OK a payload of the size the
 * caller fixed, otherwise an int32 length and a text (an item's error, or,
 * with GRAFT_RECORD_FATAL, the failure that stopped the rank). A message
 * holds whole records, at most GRAFT_RECORDS_CHUNK bytes of them. */
#ifndef GRAFT_COMM_BATCHES_H
#define GRAFT_COMM_BATCHES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"

enum { GRAFT_RECORD_FATAL = -1, GRAFT_RECORDS_CHUNK = 32 << 20 };

/* Where rank r's block of n items starts (rank `ranks` gives n): batches of
 * b shared out evenly. */
size_t graft_batches_start(size_t n, size_t b, int ranks, int r);

/* ---- a rank's records ---- */
typedef struct graft_records graft_records;

graft_status graft_records_create(graft_records **out);
void graft_records_free(graft_records *w);
/* An item's record: status, then the payload pieces a and b (either may be
 * empty). Out of memory is remembered (graft_records_oom), not returned. */
void graft_records_put(graft_records *w, int32_t status, const void *a, size_t an, const void *b,
                       size_t bn);
/* A record of a failure: status (an item's, or GRAFT_RECORD_FATAL), the text. */
void graft_records_text(graft_records *w, int32_t status, const char *text);
/* Whether a record could not be kept; the records so far dropped, and the
 * flag cleared, by graft_records_reset. */
bool graft_records_oom(const graft_records *w);
void graft_records_reset(graft_records *w);
/* The records to rank `to`, a chunk a message, with tag. */
graft_status graft_records_send(graft_comm *c, const graft_records *w, int to, int tag);
/* All the records' bytes, for a caller that sends them as one message
 * itself (graft_comm_isend); valid until the next put or reset. */
const void *graft_records_bytes(const graft_records *w, size_t *len);
/* The most bytes n records take with payloads of ok_bytes and texts of
 * at most text_bytes. */
size_t graft_records_bound(size_t n, size_t ok_bytes, size_t text_bytes);

/* ---- reading another rank's records, in order ---- */
typedef struct graft_records_reader graft_records_reader;

graft_status graft_records_reader_open(graft_comm *c, int from, int tag,
                                       graft_records_reader **out);
void graft_records_reader_free(graft_records_reader *r);
/* The next record: *status, and *data, *bytes: the payload (ok_bytes of it)
 * for GRAFT_OK, the text (not NUL-terminated) otherwise. GRAFT_EFORMAT, or
 * the transport's failure, when the records are cut short or malformed. */
graft_status graft_records_next(graft_records_reader *r, size_t ok_bytes, int32_t *status,
                                const char **data, size_t *bytes);
/* The same from a message already received: the record at *at of the len
 * bytes at buf, *at moved past it. */
graft_status graft_records_parse(const void *buf, size_t len, size_t *at, size_t ok_bytes,
                                 int32_t *status, const char **data, size_t *bytes);

#endif
