/* Whose crash is it (test/triage.h). */
#define _GNU_SOURCE /* dladdr, memfd_create, REG_RIP */
#include "triage.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "engine/base/clock.h"
#include "io/isolate.h"

/* Frames that say nothing about whose code went wrong. */
static bool neutral(const char *s) {
  static const char *const names[] = {"libc.so",    "libc-",         "ld-linux",  "libasan",
                                      "libubsan",   "libclang_rt",   "libgcc_s",  "linux-vdso",
                                      "libpthread", "sanitizer",     "__asan",    "__ubsan",
                                      "__interceptor", "compiler-rt", "asan_",     "ubsan_"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strstr(s, names[i])) return true;
  return false;
}

static void on_fatal(int sig, siginfo_t *si, void *ctx) {
  (void)si;
  void *frames[64];
  int n = backtrace(frames, 64), start = n > 2 ? 2 : 0; /* past this handler and sigreturn */
#if defined(__x86_64__)
  uintptr_t pc = (uintptr_t)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
  for (int i = 0; i < n; i++)
    if ((uintptr_t)frames[i] == pc) start = i;
#else
  (void)ctx;
#endif
  dprintf(STDERR_FILENO, "triage: signal %d (%s)\n", sig, strsignal(sig));
  for (int i = start; i < n; i++) {
    Dl_info info;
    memset(&info, 0, sizeof info);
    dladdr(frames[i], &info);
    dprintf(STDERR_FILENO, "triage: frame %s %s\n", info.dli_fname ? info.dli_fname : "?",
            info.dli_sname ? info.dli_sname : "?");
  }
  _exit(128 + sig);
}

static void child(void (*fn)(void *), void *arg, int out) {
  dup2(out, STDERR_FILENO);
  int null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDOUT_FILENO);
  void *warm[2];
  backtrace(warm, 2); /* loads the unwinder now, not in the handler */
  static char stack[1 << 16];
  stack_t ss = {.ss_sp = stack, .ss_size = sizeof stack, .ss_flags = 0};
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
  graft_isolate_configure(&(graft_isolate_options){0, true});
  fn(arg);
  _exit(0);
}

static bool wait_until(pid_t pid, double deadline, int *st) {
  while (graft_now() < deadline) {
    pid_t r = waitpid(pid, st, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) return true;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* The verdict from the child's stderr: our handler's frames, else a
 * sanitizer's ("    #3 0x... in func location"). */
static triage_verdict judge(char *report, char *where, size_t cap) {
  const char *signal_line = "";
  for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "triage: signal", 14) == 0) signal_line = line + 8;
    bool frame = strncmp(line, "triage: frame ", 14) == 0;
    const char *p = line;
    while (*p == ' ') p++;
    bool report_frame = p[0] == '#' && strstr(p, " in ");
    if ((!frame && !report_frame) || neutral(line)) continue;
    snprintf(where, cap, "%s%s%s", signal_line, *signal_line ? " at " : "", frame ? line + 14 : p);
    return strstr(line, "libhdf5") ? TRIAGE_HDF5 : TRIAGE_GRAFT;
  }
  snprintf(where, cap, "%s, no frame outside the C library", *signal_line ? signal_line : "died");
  return TRIAGE_GRAFT;
}

triage_verdict triage_run(void (*fn)(void *arg), void *arg, double timeout_s, char *where,
                          size_t cap) {
  int out = memfd_create("triage", MFD_CLOEXEC);
  if (out < 0) {
    snprintf(where, cap, "memfd_create: %s", strerror(errno));
    return TRIAGE_GRAFT;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) child(fn, arg, out);
  int st = 0;
  bool hung = false;
  if (pid > 0 && !wait_until(pid, graft_now() + timeout_s, &st)) {
    hung = true;
    kill(pid, SIGSEGV); /* the handler says where it is */
    if (!wait_until(pid, graft_now() + 3, &st)) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
  }
  off_t size = lseek(out, 0, SEEK_END);
  char *report = calloc(1, (size_t)(size > 0 ? size : 0) + 1);
  if (report && size > 0 && pread(out, report, (size_t)size, 0) < 0) report[0] = '\0';
  close(out);
  triage_verdict v;
  if (pid < 0 || !report) {
    snprintf(where, cap, "cannot run the triage");
    v = TRIAGE_GRAFT;
  } else if (!hung && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    snprintf(where, cap, "ran to the end");
    v = TRIAGE_SURVIVED;
  } else {
    char *copy = strdup(report);
    v = copy ? judge(copy, where, cap) : TRIAGE_GRAFT;
    free(copy);
    if (hung) {
      size_t used = strlen(where);
      snprintf(where + used, cap - used, " (hung, stopped after %.0f s)", timeout_s);
    }
    if (v == TRIAGE_GRAFT) fprintf(stderr, "---- the child's stderr ----\n%s----\n", report);
  }
  free(report);
  return v;
}
