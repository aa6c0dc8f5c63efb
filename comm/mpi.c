/* The job over MPI (comm/comm.h): the one file of graft that includes <mpi.h>.
 *
 * The job's calls go through a duplicate of MPI_COMM_WORLD whose errors
 * return instead of aborting, so that every failure becomes a status with
 * MPI's own text. A process nobody launched never calls MPI at all: run
 * plainly, an MPI build starts no daemon and prints nothing of MPI's.
 *
 * Waiting polls with short sleeps instead of MPI's blocking calls, which
 * spin: ranks share a machine's cores with each other and with their own
 * decoding threads, and a rank waiting for work must leave them its core. */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "engine/base/clock.h"

/* graft_comm_agree's own tag, above the callers' small ones. */
#define AGREE_TAG 30000
/* The most one MPI call moves: counts are ints. */
#define CHUNK ((size_t)1 << 30)

struct graft_comm {
  bool joined;
  MPI_Comm world; /* MPI_COMM_WORLD's duplicate, errors returned */
  int rank, size, local_rank, local_size;
  char host[MPI_MAX_PROCESSOR_NAME + 1];
};

struct graft_comm_request {
  MPI_Request r;
};

static graft_status mpi_fail(const char *call, int err) {
  char text[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(err, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", err);
  text[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
  return graft__fail(GRAFT_EIO, "%s: %s", call, text);
}

#define MPI_TRY(name, call)                      \
  do {                                           \
    int graft__e = (call);                       \
    if (graft__e != MPI_SUCCESS) return mpi_fail(name, graft__e); \
  } while (0)

const char *graft_comm_library(void) {
  static char v[MPI_MAX_LIBRARY_VERSION_STRING + 1];
  int len = 0;
  if (!v[0] && MPI_Get_library_version(v, &len) == MPI_SUCCESS) {
    v[strcspn(v, "\n")] = '\0'; /* Open MPI's second line is its release date */
  }
  return v[0] ? v : "MPI";
}

static graft_status join(graft_comm *c) {
  int inited = 0, provided = 0;
  MPI_TRY("MPI_Initialized", MPI_Initialized(&inited));
  if (inited) return graft__fail(GRAFT_EINVAL, "MPI is already initialised in this process");
  /* Other threads (image decoding, file writing) never call MPI. */
  MPI_TRY("MPI_Init_thread", MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
  c->joined = true;
  if (provided < MPI_THREAD_FUNNELED)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "the MPI library allows no threads beside the one calling it");
  MPI_TRY("MPI_Comm_dup", MPI_Comm_dup(MPI_COMM_WORLD, &c->world));
  MPI_TRY("MPI_Comm_set_errhandler", MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN));
  MPI_TRY("MPI_Comm_rank", MPI_Comm_rank(c->world, &c->rank));
  MPI_TRY("MPI_Comm_size", MPI_Comm_size(c->world, &c->size));
  MPI_Comm local;
  MPI_TRY("MPI_Comm_split_type",
          MPI_Comm_split_type(c->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local));
  int a = MPI_Comm_rank(local, &c->local_rank), b = MPI_Comm_size(local, &c->local_size);
  int f = MPI_Comm_free(&local);
  MPI_TRY("MPI_Comm_rank", a);
  MPI_TRY("MPI_Comm_size", b);
  MPI_TRY("MPI_Comm_free", f);
  int len = 0;
  MPI_TRY("MPI_Get_processor_name", MPI_Get_processor_name(c->host, &len));
  c->host[len < 0 ? 0 : len] = '\0';
  return GRAFT_OK;
}

graft_status graft_comm_open(const graft_comm_options *o, graft_comm **out) {
  *out = NULL;
  graft_comm *c = calloc(1, sizeof *c);
  if (!c) return graft__fail(GRAFT_ENOMEM, "out of memory");
  c->size = c->local_size = 1;
  if (gethostname(c->host, sizeof c->host - 1) != 0) snprintf(c->host, sizeof c->host, "?");
  c->world = MPI_COMM_NULL;
  if (o && o->join) {
    graft_status s = join(c);
    if (s != GRAFT_OK) {
      (void)graft_comm_close(c); /* the first failure is the one to say */
      return graft__context(s, "joining the MPI job");
    }
  }
  *out = c;
  return GRAFT_OK;
}

graft_status graft_comm_close(graft_comm *c) {
  if (!c) return GRAFT_OK;
  int f = MPI_SUCCESS, e = MPI_SUCCESS;
  if (c->joined) {
    if (c->world != MPI_COMM_NULL) f = MPI_Comm_free(&c->world);
    e = MPI_Finalize();
  }
  free(c);
  MPI_TRY("MPI_Comm_free", f);
  MPI_TRY("MPI_Finalize", e);
  return GRAFT_OK;
}

int graft_comm_rank(const graft_comm *c) { return c ? c->rank : 0; }
int graft_comm_size(const graft_comm *c) { return c ? c->size : 1; }
int graft_comm_local_rank(const graft_comm *c) { return c ? c->local_rank : 0; }
int graft_comm_local_size(const graft_comm *c) { return c ? c->local_size : 1; }
const char *graft_comm_host(const graft_comm *c) { return c ? c->host : "?"; }

static bool alone(const graft_comm *c) { return !c || c->size == 1; }

static graft_status no_peers(void) {
  return graft__fail(GRAFT_EINVAL, "a message to or from another rank in a job of one process");
}

graft_status graft_comm_bcast(graft_comm *c, void *buf, size_t bytes) {
  if (alone(c)) return GRAFT_OK;
  for (size_t at = 0; at < bytes; at += CHUNK) {
    size_t n = bytes - at < CHUNK ? bytes - at : CHUNK;
    MPI_TRY("MPI_Bcast", MPI_Bcast((char *)buf + at, (int)n, MPI_BYTE, 0, c->world));
  }
  return GRAFT_OK;
}

graft_status graft_comm_agree(graft_comm *c, graft_status mine) {
  if (alone(c)) return mine;
  int *all = malloc((size_t)c->size * sizeof *all);
  if (!all) return graft__fail(GRAFT_ENOMEM, "out of memory");
  int m = (int)mine, first = -1;
  /* The detail of a failure is this thread's; keep it through the calls. */
  char detail[1024];
  snprintf(detail, sizeof detail, "rank %d on %s: %s", c->rank, c->host,
           graft_detail()[0] ? graft_detail() : graft_strerror(mine));
  int e = MPI_Allgather(&m, 1, MPI_INT, all, 1, MPI_INT, c->world);
  if (e != MPI_SUCCESS) {
    free(all);
    return mpi_fail("MPI_Allgather", e);
  }
  for (int r = 0; r < c->size && first < 0; r++)
    if (all[r] != GRAFT_OK) first = r;
  graft_status s = first < 0 ? GRAFT_OK : (graft_status)all[first];
  free(all);
  if (first <= 0) return s; /* none, or rank 0's own failure with its own detail */
  if (c->rank == first)
    MPI_TRY("MPI_Send", MPI_Send(detail, (int)strlen(detail) + 1, MPI_CHAR, 0, AGREE_TAG, c->world));
  if (c->rank == 0) {
    MPI_TRY("MPI_Recv", MPI_Recv(detail, sizeof detail, MPI_CHAR, first, AGREE_TAG, c->world,
                                 MPI_STATUS_IGNORE));
    detail[sizeof detail - 1] = '\0';
    return graft__fail(s, "%s", detail);
  }
  return s;
}

/* Sleep a little longer each time, up to a quarter of a millisecond: short
 * enough for a GPU's batches, long enough to leave the core. */
static void nap(long *ns) {
  struct timespec t = {0, *ns};
  nanosleep(&t, NULL);
  if (*ns < 250000) *ns *= 2;
}

static graft_status check_size(size_t bytes) {
  if (bytes > (size_t)INT_MAX)
    return graft__fail(GRAFT_ELIMIT, "a message of %zu bytes (at most %d)", bytes, INT_MAX);
  return GRAFT_OK;
}

graft_status graft_comm_isend(graft_comm *c, int to, int tag, const void *buf, size_t bytes,
                              graft_comm_request **req) {
  *req = NULL;
  if (alone(c)) return no_peers();
  GRAFT_TRY(check_size(bytes));
  graft_comm_request *q = malloc(sizeof *q);
  if (!q) return graft__fail(GRAFT_ENOMEM, "out of memory");
  int e = MPI_Isend(buf, (int)bytes, MPI_BYTE, to, tag, c->world, &q->r);
  if (e != MPI_SUCCESS) {
    free(q);
    return mpi_fail("MPI_Isend", e);
  }
  *req = q;
  return GRAFT_OK;
}

graft_status graft_comm_sent(graft_comm_request *req, bool *done) {
  int flag = 0;
  *done = false;
  MPI_TRY("MPI_Test", MPI_Test(&req->r, &flag, MPI_STATUS_IGNORE));
  if (flag) {
    free(req);
    *done = true;
  }
  return GRAFT_OK;
}

graft_status graft_comm_send(graft_comm *c, int to, int tag, const void *buf, size_t bytes) {
  graft_comm_request *q;
  GRAFT_TRY(graft_comm_isend(c, to, tag, buf, bytes, &q));
  long ns = 10000;
  for (;;) {
    bool done;
    graft_status s = graft_comm_sent(q, &done);
    if (s != GRAFT_OK) {
      /* MPI_Test's failure is the one to say; the request is let go
       * whether or not MPI can still free it. */
      (void)MPI_Request_free(&q->r);
      free(q);
      return s;
    }
    if (done) return GRAFT_OK;
    nap(&ns);
  }
}

/* Look for a message; *msg is set (and it is taken off the queue) when
 * matched is not NULL. */
static graft_status look(graft_comm *c, int from, int tag, int wait_ms, bool *found,
                         MPI_Message *matched, MPI_Status *st) {
  *found = false;
  if (alone(c)) return no_peers();
  const int source = from == GRAFT_COMM_ANY ? MPI_ANY_SOURCE : from;
  const double end = wait_ms < 0 ? 0 : (graft_now() * 1e3) + wait_ms;
  long ns = 10000;
  for (;;) {
    int flag = 0;
    if (matched)
      MPI_TRY("MPI_Improbe", MPI_Improbe(source, tag, c->world, &flag, matched, st));
    else
      MPI_TRY("MPI_Iprobe", MPI_Iprobe(source, tag, c->world, &flag, st));
    if (flag) {
      *found = true;
      return GRAFT_OK;
    }
    if (wait_ms >= 0 && (graft_now() * 1e3) >= end) return GRAFT_OK;
    nap(&ns);
  }
}

graft_status graft_comm_poll(graft_comm *c, int from, int tag, int wait_ms, bool *found,
                             int *source, size_t *bytes) {
  MPI_Status st;
  GRAFT_TRY(look(c, from, tag, wait_ms < 0 ? 0 : wait_ms, found, NULL, &st));
  if (*found) {
    int count = 0;
    MPI_TRY("MPI_Get_count", MPI_Get_count(&st, MPI_BYTE, &count));
    if (source) *source = st.MPI_SOURCE;
    if (bytes) *bytes = (size_t)count;
  }
  return GRAFT_OK;
}

graft_status graft_comm_recv(graft_comm *c, int from, int tag, void *buf, size_t cap,
                             size_t *bytes, int *source) {
  MPI_Message msg;
  MPI_Status st;
  bool found;
  GRAFT_TRY(look(c, from, tag, -1, &found, &msg, &st));
  int count = 0;
  MPI_TRY("MPI_Get_count", MPI_Get_count(&st, MPI_BYTE, &count));
  if ((size_t)count > cap) {
    /* Taken off the queue all the same, so that the next message is next. */
    void *sink = malloc((size_t)count);
    int e = MPI_Mrecv(sink ? sink : buf, sink ? count : 0, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
    free(sink);
    MPI_TRY("MPI_Mrecv", e);
    return graft__fail(GRAFT_EFORMAT, "a message of %d bytes from rank %d where at most %zu fit",
                       count, st.MPI_SOURCE, cap);
  }
  MPI_TRY("MPI_Mrecv", MPI_Mrecv(buf, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE));
  if (bytes) *bytes = (size_t)count;
  if (source) *source = st.MPI_SOURCE;
  return GRAFT_OK;
}
