/* Whose crash is it? The fuzz tests (test_h5_fuzz, the libFuzzer harnesses) run a
 * reader on an input that made an isolated parse fail (io/isolate.h), again,
 * in a forked child that reads in process with its stderr kept, and look at
 * where it died: a crash or a hang inside HDF5 is the library's (isolation
 * exists for it), anything else is graft's and a test failure.
 *
 * Where it died: the first stack frame that is not in the C library, the
 * dynamic loader, the unwinder or a sanitizer's runtime (a memcpy HDF5
 * calls is HDF5's; a sanitizer's report is about the code that made the bad
 * access). A signal handler in the child prints the frames' modules; a
 * sanitizer's report is read as a fallback. A hang is stopped with SIGSEGV,
 * so that the handler says where it was. */
#ifndef GRAFT_TEST_TRIAGE_H
#define GRAFT_TEST_TRIAGE_H

#include <stddef.h>

typedef enum triage_verdict {
  TRIAGE_SURVIVED, /* ran to its end in the child: not reproduced */
  TRIAGE_HDF5,     /* died or hung inside HDF5 */
  TRIAGE_GRAFT,    /* died or hung anywhere else */
} triage_verdict;

/* Run fn(arg) in a child (readers in process, io/isolate.h), at most
 * timeout_s seconds. where gets one line: the signal and the frame that
 * decided; for TRIAGE_GRAFT the child's whole stderr is also printed. */
triage_verdict triage_run(void (*fn)(void *arg), void *arg, double timeout_s, char *where,
                          size_t cap);

#endif
