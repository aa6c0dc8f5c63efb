/* The kinds of file graft reads through HDF5, for the fuzz tests
 * (test_h5_fuzz, the libFuzzer harnesses in test/fuzz): for each, the
 * production reader (what classify and finetune call) and a small, valid
 * seed written by graft's own writer, made at test time, never committed.
 * A new kind (another weights layout) is one more entry in each. */
#ifndef GRAFT_TEST_H5_KINDS_H
#define GRAFT_TEST_H5_KINDS_H

#include "engine/base/status.h"

typedef enum h5_kind { H5_WEIGHTS, H5_CONFIG, H5_CHECKPOINT, H5_KINDS } h5_kind;
extern const char *const h5_kind_names[H5_KINDS];

/* The checkpoint seed's sizes, which its reader must be told. */
enum { SEED_CK_COUNT = 64, SEED_CK_TRAIN = 8, SEED_CK_VAL = 4 };

/* The kind named name, or -1. */
int h5_kind_find(const char *name);

/* The production reader of a kind on path (its own isolation, io/isolate.h,
 * as configured); whatever it loaded is freed. */
graft_status h5_kind_read(h5_kind k, const char *path);

/* Every io/h5 reader on every attribute and dataset the file lists, and on
 * the groups and datasets a Keras layout names. */
void h5_every_reader(const char *path);

/* Write kind k's seed at path (weights: every attribute the reader knows and
 * one it does not, two small datasets, the rest of AlexNet missing; config:
 * settings of every type; checkpoint: SEED_CK_COUNT floats after two epochs). */
void h5_kind_seed(h5_kind k, const char *path);
/* The checkpoint seed with these two rows of history instead of its own. */
struct graft_epoch_metrics;
void h5_seed_checkpoint(const char *path, const struct graft_epoch_metrics *history);

#endif
