#define _GNU_SOURCE /* sched_getaffinity */
#include "apps/common.h"

#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/log.h"
#include "engine/devices.h"

static const char *name = "graft";

/* This process in its job (app_comm_open). */
static struct {
  bool joined;
  int rank, local_rank, local_size;
} job = {false, 0, 0, 1};

static void one_line(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r') *s = ' ';
}

static void warn_sink(const char *msg, void *user) {
  (void)user;
  if (job.rank != 0) return; /* rank 0 speaks for the job */
  char buf[1200];
  snprintf(buf, sizeof buf, "%s", msg);
  one_line(buf);
  fprintf(stderr, "%s: warning: %s\n", name, buf);
}

void app_init(const char *n) {
  name = n;
  graft_set_log(warn_sink, NULL);
}

const char *app_name(void) { return name; }

void app_error(const char *what, const char *fmt, ...) {
  if (job.rank != 0) return;
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  one_line(buf);
  if (what)
    fprintf(stderr, "%s: %s: %s\n", name, what, buf);
  else
    fprintf(stderr, "%s: %s\n", name, buf);
}

void app_status_error(const char *what, graft_status s) {
  const char *d = graft_detail();
  app_error(what, "%s", d[0] ? d : graft_strerror(s));
}

bool app_parse_int(const char *s, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  if (!s || !*s) return false;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool app_parse_double(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  if (!s || !*s) return false;
  double v = strtod(s, &end);
  if (errno || *end || !isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

void app_json_string(void *file, const char *s) {
  FILE *f = file;
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': fputs("\\\"", f); break;
      case '\\': fputs("\\\\", f); break;
      case '\n': fputs("\\n", f); break;
      case '\r': fputs("\\r", f); break;
      case '\t': fputs("\\t", f); break;
      default:
        if (*p < 0x20)
          fprintf(f, "\\u%04x", *p);
        else
          fputc(*p, f);
    }
  }
  fputc('"', f);
}

/* The environment variable `var`, NULL when unset or empty. */
static const char *env(const char *var) {
  const char *v = getenv(var);
  return v && *v ? v : NULL;
}

/* Where tuned cuDNN plans are kept: GRAFT_CUDNN_TUNE_CACHE, "none" for
 * nowhere, else $XDG_CACHE_HOME/graft/cudnn-tuned.tsv or
 * ~/.cache/graft/cudnn-tuned.tsv (the folders made if missing; if they
 * cannot be, the backend says once that its choices are not kept). */
static const char *tune_cache_path(void) {
  static char path[4096];
  const char *v = env("GRAFT_CUDNN_TUNE_CACHE");
  if (v) return strcmp(v, "none") == 0 ? NULL : v;
  const char *xdg = env("XDG_CACHE_HOME"), *home = env("HOME");
  if (!xdg && !home) return NULL;
  int n = xdg ? snprintf(path, sizeof path, "%s", xdg)
              : snprintf(path, sizeof path, "%s/.cache", home);
  if (n < 0 || (size_t)n + 32 >= sizeof path) return NULL;
  mkdir(path, 0700);
  strcat(path, "/graft");
  mkdir(path, 0700);
  strcat(path, "/cudnn-tuned.tsv");
  return path;
}

bool app_backend_options(const char *device, long long threads, const char *precision,
                         graft_backend_options *o) {
  *o = (graft_backend_options){0};
  o->device = device;
  o->threads = (int)threads;
  const char *v;
  graft_status s = GRAFT_OK;
  const char *bad = NULL;
  if (precision && (s = graft_precision_parse(precision, &o->precision)) != GRAFT_OK)
    bad = "--precision";
  else if ((v = env("GRAFT_CPU_CONV")) && (s = graft_cpu_conv_parse(v, &o->cpu_conv)) != GRAFT_OK)
    bad = "GRAFT_CPU_CONV";
  else if ((v = env("GRAFT_CPU_KERNELS")) &&
           (s = graft_cpu_kernels_parse(v, &o->cpu_kernels)) != GRAFT_OK)
    bad = "GRAFT_CPU_KERNELS";
  else if ((v = env("GRAFT_CUDNN_PATH")) &&
           (s = graft_cudnn_path_parse(v, &o->cudnn_path)) != GRAFT_OK)
    bad = "GRAFT_CUDNN_PATH";
  else if ((v = env("GRAFT_CUDA_LAYOUT")) &&
           (s = graft_cuda_layout_parse(v, &o->cuda_layout)) != GRAFT_OK)
    bad = "GRAFT_CUDA_LAYOUT";
  if (bad) {
    app_status_error(bad, s);
    return false;
  }
  v = env("GRAFT_CUDNN_TUNE");
  o->cudnn_tune = v && strcmp(v, "1") == 0;
  o->cudnn_tune_cache = o->cudnn_tune ? tune_cache_path() : NULL;
  v = env("GRAFT_CUDA_GRAPHS");
  o->cuda_eager = v && strcmp(v, "0") == 0;
  o->default_gpu = job.local_rank;
  return true;
}

bool app_comm_open(graft_comm **out) {
  graft_comm_options o = {env("OMPI_COMM_WORLD_SIZE") || env("PMIX_RANK") || env("PMI_SIZE")};
  graft_status s = graft_comm_open(&o, out);
  if (s != GRAFT_OK) {
    app_status_error(NULL, s);
    return false;
  }
  job.joined = o.join;
  job.rank = graft_comm_rank(*out);
  job.local_rank = graft_comm_local_rank(*out);
  job.local_size = graft_comm_local_size(*out);
  return true;
}

int app_comm_close(graft_comm *c, int status) {
  int all = status;
  graft_status s = graft_comm_bcast(c, &all, sizeof all);
  if (s != GRAFT_OK) {
    job.rank = 0; /* a broken job: each rank says what it saw */
    app_status_error("MPI", s);
    all = status;
  }
  s = graft_comm_close(c);
  if (s != GRAFT_OK) {
    app_status_error("MPI", s);
    if (all == APP_OK) all = APP_FAILED;
  }
  return all;
}

long long app_threads(long long setting) {
  if (setting > 0 || !job.joined) return setting;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  long long share = cores > 0 ? cores / job.local_size : 1;
  cpu_set_t set;
  /* mpirun binds each rank to a core (two ranks or fewer) or a socket. */
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < share)
    share = CPU_COUNT(&set);
  return share < 1 ? 1 : share;
}

bool app_backend_create(const graft_backend_options *o, graft_backend **out) {
  graft_backend_note note;
  graft_status s = graft_backend_create(o, out, &note);
  if (s != GRAFT_OK) {
    app_status_error(o->device && *o->device ? o->device : "auto", s);
    return false;
  }
  /* A machine without an NVIDIA driver runs on the CPU without a word;
   * `bench devices` says what it found. */
  if (note.kind == GRAFT_FALLBACK_NO_GPU) app_error(NULL, "%s", note.line);
  return true;
}

bool app_cache_memory_mb(int64_t *out) {
  const char *v = env("GRAFT_CACHE_MEMORY_MB");
  long long mb = -1;
  if (v && !app_parse_int(v, 0, (long long)1 << 40, &mb)) {
    app_error("GRAFT_CACHE_MEMORY_MB", "\"%s\" is not a number of MiB", v);
    return false;
  }
  *out = mb;
  return true;
}
