/* Parsing HDF5 files in a child process.
 *
 * HDF5 1.10.8 is not hardened against hostile files: after every check graft
 * makes before reading (io/h5.c, io/h5_heap.c), a fraction of damaged files
 * still crash or hang the library. Every reader of a file graft opens
 * (weights, configs, checkpoints) therefore does its parsing in a forked
 * child: a crash or a hang inside the library becomes a one-line error
 * ("not a readable HDF5 file: the HDF5 library failed on it"), never the
 * end of the program.
 *
 * The child hands its result back through shared memory, without copies: a
 * MAP_SHARED region is reserved before the fork, so the child's allocations
 * in it (its arena, below) sit at the same addresses in the parent, pointers
 * included. The parent keeps what it wants (graft_isolated_keep) and the
 * rest is unmapped. Bulk float data takes a shorter way still: the child
 * checks a dataset (graft_h5_read_f32_deferred, io/h5.h) and records where
 * its bytes lie in the file; the parent reads them from there, without
 * HDF5, straight into private memory at the same address, when it keeps the
 * block (shared memory pages cost a third more to fill than private ones).
 *
 * Between the fork and the child's _exit only this process's single thread
 * runs: it calls HDF5 (serial C), malloc (glibc makes it safe after fork)
 * and graft's readers, never OpenMP, oneDNN or BLAS. graft's HDF5 lock is
 * held across the fork, so no HDF5 call is half-way in the copy. The child
 * ends with _exit (no atexit handlers: neither HDF5's nor the leak
 * checker's), dies with its parent (PR_SET_PDEATHSIG), may allocate 1 GiB
 * of private memory (RLIMIT_DATA; its result is in the shared region), and
 * is killed and reaped when it runs past the time limit. */
#ifndef GRAFT_ISOLATE_H
#define GRAFT_ISOLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/base/status.h"

typedef struct graft_isolate_options {
  /* The child's time limit in seconds; 0: 60 s plus 1 s per 10 MB of the
   * file (a slow disk reads a VGG16 file in seconds, a hang is forever). */
  double timeout_s;
  /* Run readers in this process instead (coverage-guided fuzzing of the
   * readers' own code, test/fuzz): HDF5 can then crash the process. */
  bool in_process;
} graft_isolate_options;

/* How isolated parses run, process-wide (default: forked, default limit).
 * Not thread-safe: call at start-up. A loader that itself calls a reader
 * built on graft_isolate (the fuzz tests read many files in one child) sets
 * in_process in its child first, or each such read forks again. */
void graft_isolate_configure(const graft_isolate_options *o);

/* ---- memory for results ----
 * A loader allocates what it hands back from the arena it is given, never
 * from a process-wide state: which memory that is, and whether float reads
 * may be left to the parent, are properties of the arena. So a loader is
 * the same code in a child, in process and in a test that calls it
 * directly, and nothing asks "am I the child".
 *   - In a forked child: the shared region. Blocks sit at the same addresses
 *     in the parent, and graft_h5_read_f32_deferred (io/h5.h) may leave the
 *     bytes of a checked dataset to the parent.
 *   - In process (in_process, or graft_isolate nested in a loader that
 *     configured so): private mappings the job tracks; nothing is deferred.
 *   - graft_arena_private(): private mappings that are the caller's at once
 *     (graft_model_create). Nothing tracks them; nothing is deferred.
 * Blocks are zeroed and page-aligned, with an unmapped page after them once
 * they are the caller's; free a kept or private block with graft_arena_free.
 * NULL when out of memory (or, in a job, out of room for blocks). */
typedef struct graft_arena graft_arena;

graft_arena *graft_arena_private(void);
void *graft_arena_alloc(graft_arena *mem, size_t bytes);
/* A copy of bytes, and n strings packed in one block (the array and its
 * strings). */
void *graft_arena_copy(graft_arena *mem, const void *src, size_t bytes);
char **graft_arena_strv(graft_arena *mem, char *const *v, int n);
void graft_arena_free(void *p, size_t bytes);

/* ---- the one wrapper ----
 * A loader: parse, allocate the result from mem and set *result to it. It
 * knows nothing of processes; graft_isolate decides where it runs. Its
 * status and detail come back to the caller, and so do its warnings
 * (graft__warn). */
typedef graft_status (*graft_isolate_fn)(void *arg, graft_arena *mem, void **result);

typedef struct graft_isolated graft_isolated; /* a finished parse and its memory */

/* Run fn(arg, mem, &result) in a child process with the shared region as
 * mem (in process with private memory when so configured), path being the
 * file it parses (its size sets the default time limit; deferred reads come
 * from it). On success *job holds the result; finish with
 * graft_isolated_end. A crash inside the child is GRAFT_EFORMAT ("not a
 * readable HDF5 file: the HDF5 library failed on it (Segmentation fault)"),
 * a hang the same after the time limit, a child stopped by SIGINT, SIGTERM
 * or SIGHUP GRAFT_EINTR. */
graft_status graft_isolate(const char *path, graft_isolate_fn fn, void *arg,
                           graft_isolated **job);
void *graft_isolated_result(const graft_isolated *job);
/* A block fn allocated from its arena is now the caller's (free it with
 * graft_arena_free); graft_isolated_end leaves it alone. The reads deferred
 * into it happen now: a failure (the file changed since the child read it,
 * a value that is not finite) gives the block back and says why, naming the
 * dataset. */
graft_status graft_isolated_keep(graft_isolated *job, void *block);
/* Release the job and every block not kept. */
void graft_isolated_end(graft_isolated *job);

#endif
