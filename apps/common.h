/* What the apps share: their name in messages, one-line errors, warnings
 * from the library, number parsing, and the one place that reads the
 * environment variables the README documents and turns them into the
 * library's options. */
#ifndef GRAFT_APPS_COMMON_H
#define GRAFT_APPS_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "engine/backend.h"
#include "engine/base/status.h"

/* Exit codes shared by the apps. */
enum { APP_OK = 0, APP_FAILED = 1, APP_USAGE = 2, APP_INTERRUPTED = 130 };

/* Set the program name used as the prefix of every message, and route the
 * library's warnings to stderr as "name: warning: ...". */
void app_init(const char *name);
const char *app_name(void);

/* "name: what: detail\n" on stderr, on one line (newlines in the text are
 * replaced). what may be NULL. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void app_error(const char *what, const char *fmt, ...);

/* app_error(what, "%s", graft detail or strerror(s)). */
void app_status_error(const char *what, graft_status s);

/* Strict integer / float parsing; false when s is not entirely a number in [lo, hi]. */
bool app_parse_int(const char *s, long long lo, long long hi, long long *out);
bool app_parse_double(const char *s, double lo, double hi, double *out);

/* The backend options: device, threads and precision (its name; NULL for
 * the default) as the command line or the config gave them, the rest from
 * the environment: GRAFT_CPU_CONV (winograd|dnnl-winograd|graft-winograd|
 * graft-winograd-f2|graft-winograd-f4|graft-winograd-f6|direct|auto|gemm|tuned),
 * GRAFT_CPU_KERNELS (auto|generic), GRAFT_CUDNN_PATH
 * (auto|fused|fallback|split|legacy), GRAFT_CUDA_LAYOUT (auto|nchw|nhwc),
 * GRAFT_CUDNN_TUNE (1: time the top engine configs, keep the fastest),
 * GRAFT_CUDNN_TUNE_CACHE (with it: the file that keeps those choices across
 * runs; "none": not kept; default $XDG_CACHE_HOME/graft/cudnn-tuned.tsv or
 * ~/.cache/graft/cudnn-tuned.tsv),
 * GRAFT_CUDA_GRAPHS (0: off). Unset or empty: the default. false after printing what is wrong. */
bool app_backend_options(const char *device, long long threads, const char *precision,
                         graft_backend_options *o);

/* The backend, with the line saying why "auto" fell back to the CPU on
 * stderr. false after printing what is wrong (the device's name first). */
bool app_backend_create(const graft_backend_options *o, graft_backend **out);

/* GRAFT_CACHE_MEMORY_MB: the feature cache's memory budget in MiB, or -1
 * when unset (a quarter of physical memory). false after printing what is
 * wrong. */
bool app_cache_memory_mb(int64_t *out);

/* The job: joins the MPI job when a launcher started this process
 * (OMPI_COMM_WORLD_SIZE: Open MPI's mpirun; PMIX_RANK: PMIx launchers such
 * as srun --mpi=pmix; PMI_SIZE: MPICH's and PMI-2 launchers), else a job of
 * one that never calls MPI. From then on only rank 0 prints: it speaks for
 * the job (the others' failures reach it through graft_comm_agree), and
 * app_backend_options gives each process its own GPU (its rank on its
 * machine). false after printing what is wrong. */
bool app_comm_open(graft_comm **out);
/* The job's exit status, rank 0's, for every rank (mpirun then exits with
 * it); leaves the job. */
int app_comm_close(graft_comm *c, int status);

/* CPU threads for a process from the setting (0: the default): the setting
 * when given; for a single process 0 (the backend's default, all cores); in
 * a job with several processes on this machine, its share of the cores (the
 * cores over the processes here) and no more than the CPUs the launcher
 * bound it to, so that the ranks of a machine never take more threads than
 * it has cores. */
long long app_threads(long long setting);

/* Append JSON string literal of s (quoted, escaped) to f. */
void app_json_string(void *file, const char *s);

#endif
