/* The processes of one job, and the messages between them.
 *
 * A job is the ranks an MPI launcher (mpirun, srun) started, on one machine
 * or many: comm/mpi.c, when the build has MPI. A process run plainly is a job
 * of one, with no call into MPI (comm/single.c is that job in a build
 * without MPI). classify and the finetune run share their work through this
 * header alone; the engine and io never see it, and no file of graft but
 * comm/mpi.c includes <mpi.h> (cmake/check_layers.sh checks both).
 *
 * Every call returns a status; a failure of the transport is GRAFT_EIO with
 * the MPI error in the detail. A NULL graft_comm is a job of one. Only the
 * thread that opened the job calls these. */
#ifndef GRAFT_COMM_H
#define GRAFT_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/base/status.h"

typedef struct graft_comm graft_comm;

typedef struct graft_comm_options {
  /* A launcher started this process (the programs tell from its
   * environment variables): join its job. false: a job of one. */
  bool join;
} graft_comm_options;

/* "Open MPI v4.1.4, ..." as the MPI library says it, or what the build has
 * instead ("no MPI in this build"). */
const char *graft_comm_library(void);

/* Join the job (MPI_Init_thread with the calls from this thread only), or
 * make a job of one. */
graft_status graft_comm_open(const graft_comm_options *o, graft_comm **out);
/* Leave the job (MPI_Finalize). NULL is fine. */
graft_status graft_comm_close(graft_comm *c);

/* This process's rank in the job and the job's size; on its machine, its rank
 * among the job's processes there and their number (the GPU and the CPU
 * cores it may take). */
int graft_comm_rank(const graft_comm *c);
int graft_comm_size(const graft_comm *c);
int graft_comm_local_rank(const graft_comm *c);
int graft_comm_local_size(const graft_comm *c);
/* The machine's name, for messages that say where something failed. */
const char *graft_comm_host(const graft_comm *c);

/* ---- collectives: every rank calls them, in the same order ---- */

/* bytes at buf from rank 0 to every rank. */
graft_status graft_comm_bcast(graft_comm *c, void *buf, size_t bytes);

/* Every rank gives its status; each gets the first failure (lowest rank
 * first), or GRAFT_OK. On rank 0 the detail is then that failure's: its own,
 * or "rank R on HOST: detail" for another rank's, so that rank 0 alone
 * reports it. */
graft_status graft_comm_agree(graft_comm *c, graft_status mine);

/* ---- messages between two ranks: in order for the same sender, receiver
 * and tag. Tags are small positive numbers of the caller's choosing. ---- */

enum { GRAFT_COMM_ANY = -1 }; /* any sender */

/* Send and wait until buf may be reused. */
graft_status graft_comm_send(graft_comm *c, int to, int tag, const void *buf, size_t bytes);

/* Send in the background: buf must stay untouched until graft_comm_sent
 * says done (which then frees the request). */
typedef struct graft_comm_request graft_comm_request;
graft_status graft_comm_isend(graft_comm *c, int to, int tag, const void *buf, size_t bytes,
                              graft_comm_request **req);
graft_status graft_comm_sent(graft_comm_request *req, bool *done);

/* Wait up to wait_ms (0: just look) for a message from `from` (or
 * GRAFT_COMM_ANY) with tag; *found says whether one came, and then its
 * sender and size. Waiting sleeps between looks: a rank that waits leaves
 * its cores to the others on its machine. */
graft_status graft_comm_poll(graft_comm *c, int from, int tag, int wait_ms, bool *found,
                             int *source, size_t *bytes);

/* Receive the next message from `from` (or GRAFT_COMM_ANY) with tag,
 * waiting as long as it takes (sleeping, as graft_comm_poll); at most cap
 * bytes. *bytes and *source (either may be NULL) say what came. */
graft_status graft_comm_recv(graft_comm *c, int from, int tag, void *buf, size_t cap,
                             size_t *bytes, int *source);

#endif
