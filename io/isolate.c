/* Parsing HDF5 files in a child process (io/isolate.h).
 *
 * The region: one MAP_SHARED | MAP_ANONYMOUS mapping reserved before the
 * fork (address space only: pages exist once written). Its first pages hold
 * the job's header (what the child reports, the blocks it allocated, its
 * warnings); blocks follow, each page-aligned with a page left unused after
 * it. The child writes the header's `done` last; the parent trusts the
 * header only when the child exited with status 0 after setting it. After
 * the parent has kept its blocks, the rest of the region is given back:
 * MADV_REMOVE frees the shared pages (unmapping alone would not, while any
 * part of the region stays mapped), then munmap. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_REMOVE, prctl, syscall */
#include "io/isolate.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/base/clock.h"
#include "engine/base/log.h"
#include "io/h5_impl.h"

#define MAX_BLOCKS 64
#define MAX_DEFERRED 96
#define WARNINGS_BYTES 8192
#define DEFAULT_LIMIT_S 60.0
#define LIMIT_S_PER_BYTE (1.0 / 10e6)
#define CHILD_MEMORY ((rlim_t)1 << 30)

typedef struct block {
  char *p;
  size_t bytes;  /* rounded up to pages */
  bool kept;
  bool deferred; /* reads into it are the parent's to do; the child left it untouched */
} block;

/* A read of a checked float32 dataset left to the parent (graft_h5_read_f32_deferred). */
typedef struct deferred {
  char *dest;
  uint64_t offset; /* in the file */
  size_t bytes;
  bool big_endian, check_finite;
  char name[80];   /* the dataset, for messages */
} deferred;

/* What the child reports, at the start of the region (or, in process, in
 * private memory). */
typedef struct header {
  volatile int done; /* set last, after everything below */
  graft_status status;
  void *result;
  char detail[1024];
  int n_blocks;
  block blocks[MAX_BLOCKS];
  size_t warn_used;
  char warnings[WARNINGS_BYTES]; /* NUL-separated lines */
  int n_deferred;
  deferred deferred[MAX_DEFERRED];
  bool have_file; /* the file the deferred reads come from, as the child saw it */
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
} header;

/* Where a loader's blocks come from (io/isolate.h). */
struct graft_arena {
  header *h;      /* the job's blocks are recorded here; NULL: untracked, the caller's */
  char *base;     /* the shared region (a forked child): reads can be deferred; NULL: private */
  size_t reserve; /* the region's size */
  size_t used;    /* header and blocks, in the child */
};

struct graft_isolated {
  graft_arena mem; /* mem.h: what the loader reported */
  char *path;      /* the file parsed */
};

static graft_isolate_options options;
static graft_arena private_arena; /* all zero: untracked private mappings */
static size_t page;

void graft_isolate_configure(const graft_isolate_options *o) { options = *o; }

static size_t round_pages(size_t bytes) {
  if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
  return (bytes + page - 1) / page * page;
}

static void give_back(char *p, size_t bytes) {
  if (!bytes) return;
  madvise(p, bytes, MADV_REMOVE); /* shared pages: free them (EINVAL on private ones) */
  munmap(p, bytes);
}

/* ---- memory for results ---- */

graft_arena *graft_arena_private(void) { return &private_arena; }

void *graft_arena_alloc(graft_arena *mem, size_t bytes) {
  size_t size = round_pages(bytes ? bytes : 1);
  char *p;
  if (mem->base) {
    /* The shared region: its next pages, one page left as a gap. */
    if (mem->h->n_blocks == MAX_BLOCKS || size + page > mem->reserve - mem->used) return NULL;
    p = mem->base + mem->used;
    mem->used += size + page;
  } else {
    p = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    munmap(p + size, page); /* the guard: an overrun faults */
    if (mem->h && mem->h->n_blocks == MAX_BLOCKS) {
      munmap(p, size);
      return NULL;
    }
  }
  if (mem->h) mem->h->blocks[mem->h->n_blocks++] = (block){p, size, false, false};
  return p;
}

void graft_arena_free(void *p, size_t bytes) {
  if (p) give_back(p, round_pages(bytes ? bytes : 1));
}

void *graft_arena_copy(graft_arena *mem, const void *src, size_t bytes) {
  void *p = graft_arena_alloc(mem, bytes);
  if (p && bytes) memcpy(p, src, bytes);
  return p;
}

char **graft_arena_strv(graft_arena *mem, char *const *v, int n) {
  size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(char *);
  for (int i = 0; i < n; i++) bytes += strlen(v[i]) + 1;
  char **out = graft_arena_alloc(mem, bytes);
  if (!out) return NULL;
  char *s = (char *)(out + (n > 0 ? n : 1));
  for (int i = 0; i < n; i++) {
    size_t len = strlen(v[i]) + 1;
    memcpy(s, v[i], len);
    out[i] = s;
    s += len;
  }
  return out;
}

/* ---- the job ---- */

void *graft_isolated_result(const graft_isolated *job) { return job->mem.h->result; }

static int block_of(const header *h, const void *p, size_t bytes) {
  for (int i = 0; i < h->n_blocks; i++)
    if ((const char *)p >= h->blocks[i].p && bytes <= h->blocks[i].bytes &&
        (size_t)((const char *)p - h->blocks[i].p) <= h->blocks[i].bytes - bytes)
      return i;
  return -1;
}

bool graft__arena_defer(graft_arena *mem, int fd, void *dest, uint64_t offset, size_t bytes,
                        bool big_endian, bool check_finite, const char *name) {
  if (!mem || !mem->base || strlen(name) >= sizeof mem->h->deferred[0].name) return false;
  header *h = mem->h;
  int b = block_of(h, dest, bytes);
  struct stat st;
  if (h->n_deferred == MAX_DEFERRED || b < 0 || fstat(fd, &st) != 0) return false;
  if (!h->have_file) {
    h->have_file = true;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    h->size = st.st_size;
    h->mtime = st.st_mtim;
  } else if (h->dev != st.st_dev || h->ino != st.st_ino) {
    return false;
  }
  deferred *d = &h->deferred[h->n_deferred++];
  *d = (deferred){dest, offset, bytes, big_endian, check_finite, ""};
  snprintf(d->name, sizeof d->name, "%s", name);
  if (!h->blocks[b].deferred) {
    /* From now on the block is the parent's to fill: anything the child
     * would read or write there would be lost, so it cannot. */
    h->blocks[b].deferred = true;
    mprotect(h->blocks[b].p, h->blocks[b].bytes, PROT_NONE);
  }
  return true;
}

static graft_status read_all(int fd, char *dest, size_t bytes, uint64_t offset) {
  for (size_t got = 0; got < bytes;) {
    ssize_t r = pread(fd, dest + got, bytes - got, (off_t)(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return graft__fail(GRAFT_EIO, "read failed: %s", strerror(errno));
    if (r == 0) return graft__fail(GRAFT_EIO, "the file is shorter than when it was checked");
    got += (size_t)r;
  }
  return GRAFT_OK;
}

/* One deferred read, as graft_h5_read_f32 would have done it. */
static graft_status do_deferred(int fd, const deferred *d) {
  GRAFT_TRY(read_all(fd, d->dest, d->bytes, d->offset));
  uint32_t *w = (uint32_t *)(void *)d->dest;
  size_t n = d->bytes / 4;
  if (d->big_endian)
    for (size_t i = 0; i < n; i++) w[i] = __builtin_bswap32(w[i]);
  if (!d->check_finite) return GRAFT_OK;
  const float *v = (const float *)(void *)d->dest;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i]))
      return graft__fail(GRAFT_ENONFINITE, "%s at flat index %zu (of %zu values)",
                         isnan(v[i]) ? "NaN" : "infinity", i, n);
  return GRAFT_OK;
}

/* The deferred reads into block b: into private pages at the same address
 * (the shared ones were never touched), from the file the child checked. */
static graft_status fill_block(graft_isolated *job, int b) {
  header *h = job->mem.h;
  block *k = &h->blocks[b];
  if (mmap(k->p, k->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
           0) == MAP_FAILED)
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  int fd = open(job->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return graft__fail(GRAFT_EIO, "cannot open: %s", strerror(errno));
  struct stat st;
  graft_status s = GRAFT_OK;
  if (fstat(fd, &st) != 0 || st.st_dev != h->dev || st.st_ino != h->ino ||
      st.st_size != h->size || st.st_mtim.tv_sec != h->mtime.tv_sec ||
      st.st_mtim.tv_nsec != h->mtime.tv_nsec)
    s = graft__fail(GRAFT_EIO, "the file changed while it was being read");
  for (int i = 0; s == GRAFT_OK && i < h->n_deferred; i++) {
    const deferred *d = &h->deferred[i];
    if (block_of(h, d->dest, d->bytes) == b && (s = do_deferred(fd, d)) != GRAFT_OK)
      graft__context(s, "dataset \"%s\"", d->name);
  }
  close(fd);
  return s;
}

graft_status graft_isolated_keep(graft_isolated *job, void *p) {
  header *h = job->mem.h;
  for (int i = 0; i < h->n_blocks; i++) {
    if (h->blocks[i].p != p) continue;
    graft_status s = h->blocks[i].deferred ? fill_block(job, i) : GRAFT_OK;
    h->blocks[i].kept = s == GRAFT_OK; /* a failed one goes back with the rest */
    return s;
  }
  return graft__fail(GRAFT_EINVAL, "not a block of this parse");
}

void graft_isolated_end(graft_isolated *job) {
  if (!job) return;
  header *h = job->mem.h;
  if (!job->mem.base) { /* in process: blocks are private mappings */
    for (int i = 0; i < h->n_blocks; i++)
      if (!h->blocks[i].kept) give_back(h->blocks[i].p, h->blocks[i].bytes);
    free(h);
    free(job->path);
    free(job);
    return;
  }
  /* Everything between the kept blocks goes, header first (it is read here). */
  block kept[MAX_BLOCKS];
  int n = 0;
  for (int i = 0; i < h->n_blocks; i++)
    if (h->blocks[i].kept) kept[n++] = h->blocks[i];
  char *from = job->mem.base, *end = job->mem.base + job->mem.reserve;
  for (int i = 0; i < n; i++) { /* blocks are in address order */
    give_back(from, (size_t)(kept[i].p - from));
    from = kept[i].p + kept[i].bytes;
  }
  give_back(from, (size_t)(end - from));
  free(job->path);
  free(job);
}

/* Warnings in the child go to the header, to be said by the parent. */
static void keep_warning(const char *msg, void *user) {
  header *h = user;
  size_t len = strlen(msg) + 1;
  if (len > WARNINGS_BYTES - h->warn_used) return;
  memcpy(h->warnings + h->warn_used, msg, len);
  h->warn_used += len;
}

static void say_warnings(const header *h) {
  for (size_t at = 0; at < h->warn_used && at < WARNINGS_BYTES;) {
    const char *line = h->warnings + at;
    size_t len = strnlen(line, WARNINGS_BYTES - at);
    graft__warn("%.*s", (int)len, line);
    at += len + 1;
  }
}

static graft_status run_in_process(const char *path, graft_isolate_fn fn, void *arg,
                                   graft_isolated **out) {
  graft_isolated *j = calloc(1, sizeof *j);
  if (j) j->mem.h = calloc(1, sizeof *j->mem.h);
  if (j) j->path = strdup(path ? path : "");
  if (!j || !j->mem.h || !j->path) {
    if (j) free(j->mem.h);
    if (j) free(j->path);
    free(j);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  void *result = NULL;
  graft_status s = fn(arg, &j->mem, &result);
  j->mem.h->result = result;
  if (s != GRAFT_OK) {
    char detail[1024];
    snprintf(detail, sizeof detail, "%s", graft_detail());
    graft_isolated_end(j);
    return graft__fail(s, "%s", detail);
  }
  *out = j;
  return GRAFT_OK;
}

/* The region's size: address space, not memory. A smaller one when the
 * process's address space is limited (ulimit -v) or the kernel accounts
 * shared memory strictly (vm.overcommit_memory = 2). */
static char *reserve_region(size_t *size) {
  static const size_t sizes[] = {(size_t)64 << 30, (size_t)16 << 30, (size_t)4 << 30,
                                 (size_t)1 << 30};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = mmap(NULL, sizes[i], PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      *size = sizes[i];
      return p;
    }
  }
  return NULL;
}

/* A forged size can make HDF5 ask for gigabytes and touch them all: the
 * child's private memory (the result lives in the shared region, which does
 * not count) may grow by CHILD_MEMORY at most, so that such a file is an
 * error like any other instead of a machine out of memory. */
static void limit_memory(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  unsigned long long kb = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmData: %llu kB", &kb) == 1) break;
  if (f) fclose(f);
  struct rlimit rl;
  if (!kb || getrlimit(RLIMIT_DATA, &rl) != 0) return;
  rlim_t want = (rlim_t)(kb << 10) + CHILD_MEMORY;
  if (rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max) rl.rlim_cur = want;
  setrlimit(RLIMIT_DATA, &rl);
}

static _Noreturn void child_main(graft_isolated *j, graft_isolate_fn fn, void *arg,
                                 pid_t parent) {
  /* Die with the parent (a killed run must not leave a parse running, nor a
   * lock held through an inherited descriptor); it may be gone already. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(3);
  /* Ctrl-C reaches the whole process group: the parent decides. */
  signal(SIGINT, SIG_IGN);
  /* Nothing the child could print belongs on the program's stderr (its
   * warnings travel in the header): not a sanitizer's report of a crash
   * inside HDF5, nor glibc's word on a heap HDF5 broke, which goes to the
   * terminal unless it is told to use stderr. */
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null >= 0) dup2(null, STDERR_FILENO);
  setenv("LIBC_FATAL_STDERR_", "1", 1);
  graft__h5_leave(); /* the lock, held across the fork */
  /* Large blocks from fresh zero pages, not from the parent's heap: HDF5
   * callocs half a megabyte per open file, and clearing inherited heap pages
   * would copy every one of them. */
  mallopt(M_MMAP_THRESHOLD, 64 << 10);
  limit_memory();
  graft_set_log(keep_warning, j->mem.h);
  void *result = NULL;
  graft_clear_detail();
  graft_status s = fn(arg, &j->mem, &result);
  header *h = j->mem.h;
  h->status = s;
  h->result = result;
  snprintf(h->detail, sizeof h->detail, "%s", s == GRAFT_OK ? "" : graft_detail());
  __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
  _exit(0);
}

/* Wait for the child until the deadline; true when it ended (and is reaped). */
static bool wait_child(pid_t pid, double deadline, int *wstatus) {
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  for (;;) {
    pid_t r = waitpid(pid, wstatus, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) { /* reaped elsewhere (SIGCHLD ignored): judge by the header */
      *wstatus = 0;
      break;
    }
    double left = deadline - graft_now();
    if (left <= 0) {
      if (fd >= 0) close(fd);
      return false;
    }
    if (fd >= 0) {
      struct pollfd p = {fd, POLLIN, 0};
      poll(&p, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
    } else { /* no pidfd (kernels before 5.3): poll the child */
      struct timespec ts = {0, 2000000};
      nanosleep(&ts, NULL);
    }
  }
  if (fd >= 0) close(fd);
  return true;
}

static double time_limit(const char *path) {
  if (options.timeout_s > 0) return options.timeout_s;
  struct stat st;
  double size = path && stat(path, &st) == 0 ? (double)st.st_size : 0;
  return DEFAULT_LIMIT_S + size * LIMIT_S_PER_BYTE;
}

graft_status graft_isolate(const char *path, graft_isolate_fn fn, void *arg,
                           graft_isolated **out) {
  *out = NULL;
  if (options.in_process) return run_in_process(path, fn, arg, out);
  graft_isolated *j = calloc(1, sizeof *j);
  if (j) j->path = strdup(path ? path : "");
  if (!j || !j->path) {
    free(j);
    return graft__fail(GRAFT_ENOMEM, "out of memory");
  }
  j->mem.base = reserve_region(&j->mem.reserve);
  if (!j->mem.base) {
    free(j->path);
    free(j);
    return graft__fail(GRAFT_ENOMEM, "cannot map memory for reading the file: %s",
                       strerror(errno));
  }
  j->mem.h = (header *)j->mem.base;
  j->mem.used = round_pages(sizeof(header)) + page;
  double limit = time_limit(path);

  /* HDF5 is initialised here, and quiet: nothing of it is half-done at the fork. */
  graft_status s = graft__h5_enter();
  if (s != GRAFT_OK) {
    graft_isolated_end(j);
    return s;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) child_main(j, fn, arg, parent);
  int fork_errno = errno;
  graft__h5_leave();
  if (pid < 0) {
    graft_isolated_end(j);
    return graft__fail(GRAFT_ENOMEM, "cannot start a process to read the file: %s",
                       strerror(fork_errno));
  }
  int ws = 0;
  if (!wait_child(pid, graft_now() + limit, &ws)) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    graft_isolated_end(j);
    return graft__fail(GRAFT_EFORMAT,
                       "not a readable HDF5 file: the HDF5 library failed on it (no result "
                       "within %.0f s)",
                       limit);
  }
  header *h = j->mem.h;
  bool done = __atomic_load_n(&h->done, __ATOMIC_ACQUIRE);
  if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0 && done) {
    say_warnings(h);
    if (h->status != GRAFT_OK) {
      s = graft__fail(h->status, "%s", h->detail);
      graft_isolated_end(j);
      return s;
    }
    *out = j;
    return GRAFT_OK;
  }
  graft_isolated_end(j);
  if (WIFSIGNALED(ws)) {
    int sig = WTERMSIG(ws);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
      return graft__fail(GRAFT_EINTR, "interrupted while reading it (%s)", strsignal(sig));
    return graft__fail(GRAFT_EFORMAT,
                       "not a readable HDF5 file: the HDF5 library failed on it (%s)",
                       strsignal(sig));
  }
  return graft__fail(GRAFT_EFORMAT,
                     "not a readable HDF5 file: the HDF5 library failed on it (exit status %d)",
                     WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
}
