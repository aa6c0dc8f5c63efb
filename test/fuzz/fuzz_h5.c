/* libFuzzer harness for the readers of HDF5 files (test/h5_kinds.h): one
 * binary per kind, FUZZ_KIND naming it (weights, config, checkpoint; a new
 * weights layout is a new entry in h5_kinds.c and one line in
 * test/fuzz/CMakeLists.txt).
 *
 * HDF5 1.10.8 crashes on some damaged files; graft contains that by parsing
 * in a child (io/isolate.h), and a fuzzer that stopped at each such crash
 * would only ever find HDF5's. So each input is read three ways:
 *   1. the production reader and every io/h5 reader, in an isolated child
 *      (no coverage from there): when the isolation stopped it, the input
 *      runs again in a forked child with its stderr kept (test/triage.c):
 *      a death inside HDF5 is contained and the input left out of the
 *      corpus, a death anywhere else is graft's bug: abort, a finding;
 *   2. the same, in this process, with coverage: HDF5 survived the file,
 *      so whatever goes wrong now is graft's (ASan, UBSan, a status that
 *      differs from the isolated one);
 *   3. a file that loads is also loaded through the production reader's own
 *      isolation, whose parent side (deferred reads, kept blocks) then runs
 *      here with coverage. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../h5_kinds.h"
#include "../triage.h"
#include "engine/base/log.h"
#include "io/isolate.h"

#ifndef FUZZ_KIND
#error "FUZZ_KIND names the kind of file (test/h5_kinds.h)"
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

#define TIME_LIMIT_S 10.0

const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  /* A forged size makes HDF5 ask for terabytes: malloc says no, as it would
   * without the sanitizer. */
  return "allocator_may_return_null=1";
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static h5_kind kind;
static char path[64];

static void quiet(const char *msg, void *user) {
  (void)msg;
  (void)user;
}

static void isolated(bool yes) {
  graft_isolate_configure(&(graft_isolate_options){TIME_LIMIT_S, !yes});
}

/* Sanitizer reports and libFuzzer's crash handler belong to this process:
 * a forked reader that dies must just die (its parent judges it). */
static void in_forked_child(void) {
  extern void __sanitizer_set_death_callback(void (*callback)(void));
  __sanitizer_set_death_callback(NULL);
}

static void remove_input(void) { unlink(path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  int k = h5_kind_find(STR(FUZZ_KIND));
  if (k < 0) abort();
  kind = (h5_kind)k;
  /* The input as a file HDF5 can open by name, in the working folder. */
  snprintf(path, sizeof path, "fuzz_input_%d.h5", (int)getpid());
  atexit(remove_input);
  graft_set_log(quiet, NULL); /* "unexpected dataset" warnings, once per input */
  pthread_atfork(NULL, NULL, in_forked_child);
  return 0;
}

static bool write_input(const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb"); /* truncates the memory file */
  if (!f) return false;
  bool ok = fwrite(data, 1, size, f) == size;
  return fclose(f) == 0 && ok;
}

typedef struct result {
  graft_status read, all; /* the production reader; the io/h5 readers ran */
} result;

/* The loader of one isolated parse (io/isolate.h); the production reader
 * it calls parses in process, in the child when isolated. */
static graft_status read_both(void *arg, graft_arena *mem, void **out) {
  (void)arg;
  isolated(false);
  result *r = graft_arena_alloc(mem, sizeof *r);
  if (!r) return graft__fail(GRAFT_ENOMEM, "out of memory");
  r->read = h5_kind_read(kind, path);
  h5_every_reader(path);
  *out = r;
  return GRAFT_OK;
}

static void read_in_child(void *arg) {
  (void)arg;
  void *r;
  read_both(NULL, graft_arena_private(), &r);
}

static bool hdf5_failed(graft_status s) {
  return s == GRAFT_EFORMAT && strstr(graft_detail(), "the HDF5 library failed on it");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!write_input(data, size)) abort();
  isolated(true);
  graft_isolated *job;
  graft_status s = graft_isolate(path, read_both, NULL, &job);
  if (hdf5_failed(s)) {
    char where[512];
    triage_verdict v = triage_run(read_in_child, NULL, 2 * TIME_LIMIT_S, where, sizeof where);
    if (v == TRIAGE_GRAFT) {
      fprintf(stderr, "fuzz_%s: graft's own crash: %s\n", STR(FUZZ_KIND), where);
      abort();
    }
    return -1; /* HDF5's, contained (or too slow to reproduce): not a way forward */
  }
  if (s != GRAFT_OK) {
    fprintf(stderr, "fuzz_%s: the isolated parse failed: %s\n", STR(FUZZ_KIND), graft_detail());
    abort();
  }
  graft_status want = ((const result *)graft_isolated_result(job))->read;
  graft_isolated_end(job);

  isolated(false);
  void *r;
  s = read_both(NULL, graft_arena_private(), &r);
  graft_status got = ((const result *)r)->read;
  graft_arena_free(r, sizeof(result));
  if (s != GRAFT_OK || got != want) {
    fprintf(stderr, "fuzz_%s: read in process: %s, in a child: %s\n", STR(FUZZ_KIND),
            graft_strerror(got), graft_strerror(want));
    abort();
  }
  if (got == GRAFT_OK) {
    isolated(true);
    got = h5_kind_read(kind, path);
    if (got != GRAFT_OK && !hdf5_failed(got)) {
      fprintf(stderr, "fuzz_%s: loads in a child, not through its own isolation: %s\n",
              STR(FUZZ_KIND), graft_detail());
      abort();
    }
  }
  return 0;
}
