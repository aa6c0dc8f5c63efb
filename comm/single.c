/* The job of a build without MPI (comm/comm.h): one process, rank 0 of 1.
 * Collectives are what they are for one rank; a message to another rank is
 * a caller's mistake. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "comm/comm.h"

struct graft_comm {
  char host[256];
};

const char *graft_comm_library(void) { return "no MPI in this build (GRAFT_MPI=OFF or none found)"; }

graft_status graft_comm_open(const graft_comm_options *o, graft_comm **out) {
  *out = NULL;
  if (o && o->join)
    return graft__fail(GRAFT_EUNSUPPORTED,
                       "started by an MPI launcher, but this build of graft has no MPI "
                       "(rebuild with libopenmpi-dev installed, or run it without mpirun)");
  graft_comm *c = calloc(1, sizeof *c);
  if (!c) return graft__fail(GRAFT_ENOMEM, "out of memory");
  if (gethostname(c->host, sizeof c->host - 1) != 0) snprintf(c->host, sizeof c->host, "?");
  *out = c;
  return GRAFT_OK;
}

graft_status graft_comm_close(graft_comm *c) {
  free(c);
  return GRAFT_OK;
}

int graft_comm_rank(const graft_comm *c) { return (void)c, 0; }
int graft_comm_size(const graft_comm *c) { return (void)c, 1; }
int graft_comm_local_rank(const graft_comm *c) { return (void)c, 0; }
int graft_comm_local_size(const graft_comm *c) { return (void)c, 1; }
const char *graft_comm_host(const graft_comm *c) { return c ? c->host : "?"; }

graft_status graft_comm_bcast(graft_comm *c, void *buf, size_t bytes) {
  (void)c, (void)buf, (void)bytes;
  return GRAFT_OK;
}

graft_status graft_comm_agree(graft_comm *c, graft_status mine) {
  (void)c;
  return mine;
}

static graft_status no_peers(void) {
  return graft__fail(GRAFT_EINVAL, "a message to or from another rank in a job of one process");
}

graft_status graft_comm_send(graft_comm *c, int to, int tag, const void *buf, size_t bytes) {
  (void)c, (void)to, (void)tag, (void)buf, (void)bytes;
  return no_peers();
}

graft_status graft_comm_isend(graft_comm *c, int to, int tag, const void *buf, size_t bytes,
                              graft_comm_request **req) {
  (void)c, (void)to, (void)tag, (void)buf, (void)bytes;
  *req = NULL;
  return no_peers();
}

graft_status graft_comm_sent(graft_comm_request *req, bool *done) {
  (void)req;
  *done = true;
  return no_peers();
}

graft_status graft_comm_poll(graft_comm *c, int from, int tag, int wait_ms, bool *found,
                             int *source, size_t *bytes) {
  (void)c, (void)from, (void)tag, (void)wait_ms, (void)source, (void)bytes;
  *found = false;
  return no_peers();
}

graft_status graft_comm_recv(graft_comm *c, int from, int tag, void *buf, size_t cap,
                             size_t *bytes, int *source) {
  (void)c, (void)from, (void)tag, (void)buf, (void)cap, (void)bytes, (void)source;
  return no_peers();
}
