/* Parsing in a child process (io/isolate.h): what comes back (status,
 * detail, warnings, memory), what a crash, an abort, an exit, a signal or a
 * hang of the child becomes, reads deferred to the parent (bytes, byte
 * order, a changed file, a non-finite value), the same results in process,
 * forks while other threads work and write HDF5, and a child that dies with
 * its parent. */
#define _GNU_SOURCE /* utimensat, MAP_ANONYMOUS */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/base/clock.h"
#include "engine/base/log.h"
#include "harness.h"
#include "io/h5.h"
#include "io/isolate.h"

static char warnings[2048];

static void on_warning(const char *msg, void *user) {
  (void)user;
  size_t used = strlen(warnings);
  snprintf(warnings + used, sizeof warnings - used, "%s|", msg);
}

/* Under AddressSanitizer (abort_on_error, as ctest runs it) a segfault is
 * reported, then aborts. */
#if defined(__SANITIZE_ADDRESS__)
#define SEGFAULT "Aborted"
#else
#define SEGFAULT "Segmentation fault"
#endif

static bool mapped(const void *p) {
  return msync((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, MS_ASYNC) == 0;
}

/* ---- children that do something ---- */

typedef struct result {
  int answer;
  char *text; /* in shared memory */
  int *big;   /* a block to keep */
} result;

static graft_status good(void *arg, graft_arena *mem, void **out) {
  (void)arg;
  graft__warn("first warning");
  graft__warn("second warning");
  result *r = graft_arena_alloc(mem, sizeof *r);
  r->text = graft_arena_copy(mem, "from the child", 15);
  r->big = graft_arena_alloc(mem, 1000000 * sizeof(int));
  for (int i = 0; i < 1000000; i++) r->big[i] = i;
  r->answer = getpid();
  *out = r;
  return GRAFT_OK;
}

static graft_status fails(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)arg;
  (void)out;
  graft__warn("said before failing");
  return graft__fail(GRAFT_ESHAPE, "dataset \"x\": expected shape [3], found [4]");
}

static graft_status crashes(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)arg;
  (void)out;
  raise(SIGSEGV);
  return GRAFT_OK;
}

static graft_status aborts(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)arg;
  (void)out;
  abort();
}

static graft_status exits(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)arg;
  (void)out;
  _exit(5);
}

static graft_status terminated(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)arg;
  (void)out;
  raise(SIGTERM);
  return GRAFT_OK;
}

static graft_status hangs(void *arg, graft_arena *mem, void **out) {
  (void)mem;
  (void)out;
  int fd = arg ? *(int *)arg : -1;
  pid_t me = getpid();
  if (fd >= 0 && write(fd, &me, sizeof me) != sizeof me) return GRAFT_EIO;
  for (;;) pause();
}

/* Read dataset "w" of the file deferred into a block; look at it if asked. */
typedef struct defer_job {
  const char *path;
  int64_t n;
  bool touch; /* read the block afterwards: the contract says it cannot */
} defer_job;

static graft_status reads(void *arg, graft_arena *mem, void **out) {
  const defer_job *j = arg;
  graft_h5 *f;
  GRAFT_TRY(graft_h5_open(j->path, &f));
  float *v = graft_arena_alloc(mem, (size_t)j->n * sizeof(float));
  graft_status s = v ? graft_h5_read_f32_deferred(f, mem, "w", 1, &j->n, v, true) : GRAFT_ENOMEM;
  graft_h5_close(f);
  if (s == GRAFT_OK && j->touch && v[1] != 0.5f) return graft__fail(GRAFT_EINVAL, "not there");
  *out = v;
  return s;
}

/* ---- the checks ---- */

static void check_good(bool in_process) {
  warnings[0] = '\0';
  graft_isolated *job;
  CHECK_OK(graft_isolate(NULL, good, NULL, &job));
  result *r = graft_isolated_result(job);
  CHECK(in_process ? r->answer == getpid() : r->answer != getpid());
  CHECK(strcmp(r->text, "from the child") == 0);
  CHECK(strcmp(warnings, "first warning|second warning|") == 0);
  int *big = r->big;
  char *text = r->text;
  CHECK_OK(graft_isolated_keep(job, big));
  graft_isolated_end(job);
  bool same = true;
  for (int i = 0; i < 1000000; i++) same = same && big[i] == i;
  CHECK_MSG(same, "the kept block lost its contents");
  CHECK_MSG(!mapped(text) && !mapped(big + 1000000 + 1024), "memory not kept is still mapped");
  graft_arena_free(big, 1000000 * sizeof(int));
  CHECK(!mapped(big));
  printf("%s: result, warnings and a kept block of 4 MB come back\n",
         in_process ? "in process" : "child");
}

static void expect(const char *what, graft_isolate_fn fn, void *arg, graft_status want,
                   const char *detail) {
  warnings[0] = '\0';
  graft_isolated *job = NULL;
  graft_clear_detail();
  graft_status s = graft_isolate("/nonexistent", fn, arg, &job);
  printf("%s: %s: %s\n", what, graft_strerror(s), graft_detail());
  CHECK_MSG(s == want, "%s: %s, expected %s", what, graft_strerror(s), graft_strerror(want));
  CHECK_MSG(strstr(graft_detail(), detail), "%s: detail lacks \"%s\"", what, detail);
  CHECK(job == NULL);
  int st;
  CHECK_MSG(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "%s: a child is left", what);
}

static void write_file(const char *path, int64_t n, int nan_at) {
  float *v = graft_test_alloc((size_t)n * sizeof *v);
  for (int64_t i = 0; i < n; i++) v[i] = (float)i * 0.5f;
  if (nan_at >= 0) v[nan_at] = NAN;
  graft_h5w *w;
  CHECK_OK(graft_h5w_create(path, &w));
  CHECK_OK(graft_h5w_attr_string(w, "format", "test"));
  CHECK_OK(graft_h5w_f32(w, "w", 1, &n, v));
  CHECK_OK(graft_h5w_commit(w));
  free(v);
}

static void check_deferred(const char *dir, bool in_process) {
  const char *path = graft_test_path(dir, "deferred.h5");
  const int64_t n = 3000000;
  write_file(path, n, -1);
  defer_job j = {path, n, false};
  graft_isolated *job;
  CHECK_OK(graft_isolate(path, reads, &j, &job));
  float *v = graft_isolated_result(job);
  CHECK_OK(graft_isolated_keep(job, v));
  graft_isolated_end(job);
  bool same = true;
  for (int64_t i = 0; i < n; i++) same = same && v[i] == (float)i * 0.5f;
  CHECK_MSG(same, "deferred read: wrong values");
  graft_arena_free(v, (size_t)n * sizeof *v);

  /* The file changes between the child's checks and the parent's read. */
  CHECK_OK(graft_isolate(path, reads, &j, &job));
  struct timespec t[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
  CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
  graft_status s = graft_isolated_keep(job, graft_isolated_result(job));
  graft_isolated_end(job);
  if (in_process)
    CHECK_OK(s); /* read at once: nothing was deferred */
  else
    CHECK_MSG(s == GRAFT_EIO && strstr(graft_detail(), "changed"), "changed file: %s: %s",
              graft_strerror(s), graft_detail());

  /* A NaN is found when the bytes are read, wherever that is. */
  write_file(path, n, 2000001);
  s = graft_isolate(path, reads, &j, &job);
  if (s == GRAFT_OK) {
    s = graft_isolated_keep(job, graft_isolated_result(job));
    graft_isolated_end(job);
  }
  CHECK_MSG(s == GRAFT_ENONFINITE &&
                strstr(graft_detail(), "dataset \"w\": NaN at flat index 2000001 (of 3000000"),
            "NaN: %s: %s", graft_strerror(s), graft_detail());
  printf("%s: deferred reads, a changed file, a NaN: %s\n", in_process ? "in process" : "child",
         graft_detail());

  /* Looking at a block whose bytes are the parent's to read is a crash. */
  if (!in_process) {
    write_file(path, n, -1);
    j.touch = true;
    expect("a child reading a deferred block", reads, &j, GRAFT_EFORMAT, SEGFAULT);
  }
}

/* Threads that compute and write HDF5 files while the main thread forks. */
static volatile int stop_threads;

static void *spin(void *arg) {
  (void)arg;
  volatile double x = 1;
  while (!stop_threads) x = x * 1.0000001 + 1e-9;
  return NULL;
}

static void *writer(void *arg) {
  const char *path = arg;
  while (!stop_threads) write_file(path, 100000, -1);
  return NULL;
}

static void check_threads(const char *dir) {
  pthread_t a, b;
  stop_threads = 0;
  CHECK(pthread_create(&a, NULL, spin, NULL) == 0);
  char *busy = strdup(graft_test_path(dir, "busy.h5")); /* the paths' buffer rotates */
  char *path = strdup(graft_test_path(dir, "deferred.h5"));
  write_file(path, 3000000, -1);
  CHECK(pthread_create(&b, NULL, writer, busy) == 0);
  int ok = 0;
  for (int i = 0; i < 30; i++) {
    defer_job j = {path, 3000000, false};
    graft_isolated *job;
    if (graft_isolate(path, reads, &j, &job) != GRAFT_OK) {
      printf("  parse %d: %s\n", i, graft_detail());
      continue;
    }
    if (graft_isolated_keep(job, graft_isolated_result(job)) == GRAFT_OK) {
      ok++;
      graft_arena_free(graft_isolated_result(job), 3000000 * sizeof(float));
    }
    graft_isolated_end(job);
  }
  stop_threads = 1;
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  free(busy);
  free(path);
  CHECK_MSG(ok == 30, "%d of 30 parses while other threads work", ok);
  printf("30 parses while one thread computes and another writes HDF5 files: %d ok\n", ok);
}

/* A process in the middle of a parse is killed: its child goes too. */
static void check_orphan(void) {
  int fds[2];
  CHECK(pipe(fds) == 0);
  pid_t helper = fork();
  if (helper == 0) {
    close(fds[0]);
    graft_isolated *job;
    graft_isolate(NULL, hangs, &fds[1], &job);
    _exit(0);
  }
  close(fds[1]);
  pid_t child = 0;
  CHECK(read(fds[0], &child, sizeof child) == sizeof child);
  close(fds[0]);
  kill(helper, SIGKILL);
  waitpid(helper, NULL, 0);
  bool gone = false;
  char stat_path[64], buf[256];
  snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", (int)child);
  for (int i = 0; i < 200 && !gone && child > 0; i++) {
    FILE *f = fopen(stat_path, "r");
    /* gone, or a zombie waiting for a parent that may never reap it */
    gone = !f || !fgets(buf, sizeof buf, f) || strstr(buf, ") Z ");
    if (f) fclose(f);
    if (!gone) usleep(10000);
  }
  CHECK_MSG(gone, "the child of a killed process is still running");
  printf("the child of a killed process dies with it\n");
}

int main(void) {
  const char *dir = graft_test_tmpdir("isolate");
  graft_set_log(on_warning, NULL);
  for (int mode = 0; mode < 2; mode++) {
    bool in_process = mode == 1;
    graft_isolate_configure(&(graft_isolate_options){0, in_process});
    check_good(in_process);
    expect(in_process ? "in process, a failure" : "a failure", fails, NULL, GRAFT_ESHAPE,
           "dataset \"x\": expected shape [3], found [4]");
    CHECK(strcmp(warnings, "said before failing|") == 0);
    check_deferred(dir, in_process);
  }
  graft_isolate_configure(&(graft_isolate_options){1.0, false});
  expect("a crash", crashes, NULL, GRAFT_EFORMAT,
         "not a readable HDF5 file: the HDF5 library failed on it (" SEGFAULT ")");
  expect("an abort", aborts, NULL, GRAFT_EFORMAT, "the HDF5 library failed on it (Aborted)");
  expect("an exit", exits, NULL, GRAFT_EFORMAT, "the HDF5 library failed on it (exit status 5)");
  expect("SIGTERM", terminated, NULL, GRAFT_EINTR, "interrupted while reading it");
  double t0 = graft_now();
  expect("a hang", hangs, NULL, GRAFT_EFORMAT,
         "the HDF5 library failed on it (no result within 1 s)");
  double took = graft_now() - t0;
  CHECK_MSG(took >= 0.9 && took < 5, "a hang took %.2f s to end (limit 1 s)", took);
  graft_isolate_configure(&(graft_isolate_options){0, false});
  check_threads(dir);
  check_orphan();
  return graft_test_finish("isolate");
}
