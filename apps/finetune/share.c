/* The trunk's work of a pass shared over the job's ranks (run_impl.h).
 *
 * Rank 0 runs the recipe as a single process does, step by step; the other
 * ranks serve its trunk. A pass's trunk work is a list of jobs, one per step
 * with images not in the feature cache: exactly the images one trunk call of
 * a single process takes (less those that fail to decode), so every feature
 * row has the bits a single process gives it, whatever the number of ranks
 * (a trunk's row may depend on the batch it is in: AlexNet's first layer on
 * oneDNN's GEMM convolution does, with two threads or more). Job j is rank
 * j % ranks'; each rank decodes (with the same seeds: the augmentation of an
 * image is a function of the seed, the epoch and the image) and runs its
 * jobs in order and sends their rows, up to QUEUE jobs ahead; rank 0 takes
 * them in order: all at once to fill the cache, or step by step when there
 * is none. The classifier's steps run on rank 0 alone, in the single
 * process's order: no reduction over ranks, so nothing to differ.
 *
 * Messages: rank 0 sends commands (a pass's jobs, cancel, quit); a worker
 * sends results (a job's rows, a failure, the acknowledgement of a cancel)
 * and notes (a signal arrived here). A result is records
 * (comm/batches.h, as classify's): its head, then one per image of a job
 * (its feature row, or its error), or the failure. A stop or a failure in the middle of a
 * pass cancels it: rank 0 takes whatever the workers had sent until each
 * acknowledges, so that the next pass starts clean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/finetune/run_impl.h"
#include "comm/batches.h"
#include "comm/comm.h"
#include "engine/base/log.h"

enum { TAG_CMD = 1, TAG_RESULT = 2, TAG_NOTE = 3 };
enum { CMD_PASS = 1, CMD_CANCEL, CMD_QUIT };
enum { RES_JOB = 1, RES_FAIL, RES_ACK };
enum { ERROR_TEXT = 256, FAIL_TEXT = 1024 };
enum { QUEUE = 8 }; /* a worker's results on their way to rank 0 */

typedef struct trunk_job {
  int id;           /* its index in rank 0's plan of the pass */
  int step;         /* the step it feeds (rank 0's plan) */
  int first, count; /* its images: share.samples[first, first + count) */
} trunk_job;

struct share {
  int rank, ranks;
  trunk_job *jobs; /* the pass's (rank 0), or this rank's (the others) */
  int n_jobs, jobs_cap;
  int *samples; /* the jobs' images, in order */
  int n_samples, samples_cap;
  int next; /* rank 0: the next job to take */
  struct {  /* the job just computed or received */
    int count, good;
    int32_t *status;    /* [batch] each image's */
    char (*error)[ERROR_TEXT]; /* [batch] for those that failed */
    float *rows;        /* [good, dim] */
  } got;
  void *msg; /* a message received */
  size_t msg_cap;
  size_t msg_len;
  graft_records *out[QUEUE]; /* a worker's results being sent */
  graft_records *note;       /* a worker's failure or acknowledgement */
  graft_comm_request *sending[QUEUE];
  bool stop_noted; /* rank 0: a worker had a signal; a worker: rank 0 was told of its own */
};

/* A pass's command; CMD_PASS is followed by n_jobs (job, count) pairs and
 * then the jobs' images. */
typedef struct cmd_head {
  int32_t kind, train, epoch, n_jobs, n_samples, status;
  uint64_t seed;
} cmd_head;

/* A result's head, its first record's payload; RES_JOB is followed by a
 * record per image (its row of dim floats, or its error), RES_FAIL by one
 * of the failure. */
typedef struct res_head {
  int32_t kind, job, count, good, status, pad;
} res_head;

static size_t result_bytes(const run *r) {
  size_t head = graft_records_bound(1, sizeof(res_head), 0);
  size_t job = graft_records_bound((size_t)r->batch, r->dim * sizeof(float), ERROR_TEXT);
  size_t fail = graft_records_bound(1, 0, FAIL_TEXT);
  return head + (job > fail ? job : fail);
}

graft_status graft__ft_share_init(run *r) {
  share *w = r->share = calloc(1, sizeof *r->share);
  if (!w) return graft__fail(GRAFT_ENOMEM, "out of memory for the trunk's jobs");
  w->rank = r->rank;
  w->ranks = r->ranks;
  size_t b = (size_t)r->batch;
  w->got.status = malloc(b * sizeof *w->got.status);
  w->got.error = malloc(b * sizeof *w->got.error);
  w->msg_cap = result_bytes(r);
  w->msg = w->ranks > 1 ? malloc(w->msg_cap) : NULL;
  if (!w->got.status || !w->got.error || (w->ranks > 1 && !w->msg) ||
      graft_records_create(&w->note) != GRAFT_OK)
    return graft__fail(GRAFT_ENOMEM, "out of memory for the trunk's jobs");
  return GRAFT_OK;
}

void graft__ft_share_free(share *w) {
  if (!w) return;
  free(w->jobs);
  free(w->samples);
  free(w->got.status);
  free(w->got.error);
  free(w->msg);
  for (int i = 0; i < QUEUE; i++) graft_records_free(w->out[i]);
  graft_records_free(w->note);
  free(w);
}

static graft_comm *comm_of(const run *r) { return r->opt->comm; }

/* Room for n jobs and m images in the plan. */
static graft_status plan_room(share *w, int n, int m) {
  if (n > w->jobs_cap) {
    trunk_job *j = realloc(w->jobs, (size_t)n * sizeof *j);
    if (!j) return graft__fail(GRAFT_ENOMEM, "out of memory");
    w->jobs = j;
    w->jobs_cap = n;
  }
  if (m > w->samples_cap) {
    int *s = realloc(w->samples, (size_t)m * sizeof *s);
    if (!s) return graft__fail(GRAFT_ENOMEM, "out of memory");
    w->samples = s;
    w->samples_cap = m;
  }
  return GRAFT_OK;
}

static int owner(const share *w, int job) { return job % w->ranks; }

/* ---- one job, on any rank ---- */

/* The images of a job from the loader, in order: the good ones through the
 * trunk into r->buf.trunk_rows, each one's status (and error) in w->got. */
static graft_status compute_job(run *r, split_state *ss, const int *samples, int count) {
  share *w = r->share;
  const size_t per = (size_t)3 * r->m->pre.crop * r->m->pre.crop;
  int staged = 0;
  for (int i = 0; i < count; i++) {
    graft_loaded *it = graft_loader_next(ss->loader);
    if (!it || it->sample != samples[i])
      return graft__fail(GRAFT_EIO, "image loader out of step (sample %d)", samples[i]);
    w->got.status[i] = it->status;
    if (it->status != GRAFT_OK)
      snprintf(w->got.error[i], ERROR_TEXT, "%s", it->error);
    else
      memcpy(r->buf.input + (size_t)staged++ * per, it->pixels, per * sizeof(float));
    graft_loader_release(ss->loader, it);
  }
  w->got.count = count;
  w->got.good = staged;
  w->got.rows = r->buf.trunk_rows;
  if (staged > 0) {
    GRAFT_TRY(graft_net_trunk(r->net, staged, r->buf.input));
    GRAFT_TRY(graft_net_get_features(r->net, staged, r->buf.trunk_rows));
  }
  return GRAFT_OK;
}

/* ---- rank 0 ---- */

graft_status graft__ft_share_plan(run *r, split_state *ss, bool train, int epoch, int first_step,
                                  int group, int n, uint64_t seed) {
  share *w = r->share;
  const int *order = r->buf.order;
  int steps = (n + group - 1) / group, n_jobs = 0, m = 0;
  GRAFT_TRY(plan_room(w, steps - first_step, n - first_step * group));
  for (int step = first_step; step < steps; step++) {
    int from = step * group, to = from + group < n ? from + group : n, first = m;
    for (int i = from; i < to; i++)
      if (!(ss->cache && graft_feature_cache_has(ss->cache, order[i]))) w->samples[m++] = order[i];
    if (m > first) {
      w->jobs[n_jobs] = (trunk_job){n_jobs, step, first, m - first};
      n_jobs++;
    }
  }
  w->n_jobs = n_jobs;
  w->n_samples = m;
  w->next = 0;
  /* Each worker its jobs; rank 0's own images to its loader. */
  int32_t *msg = NULL;
  graft_status s = GRAFT_OK;
  for (int rank = 0; rank < w->ranks && s == GRAFT_OK; rank++) {
    int jobs = 0, images = 0;
    for (int j = rank; j < n_jobs; j += w->ranks) jobs++, images += w->jobs[j].count;
    if (rank > 0 && jobs == 0) continue;
    size_t head_words = sizeof(cmd_head) / sizeof(int32_t);
    int32_t *b = realloc(msg, (head_words + 2 * (size_t)jobs + (size_t)images + 1) * sizeof *b);
    if (!b) {
      s = graft__fail(GRAFT_ENOMEM, "out of memory");
      break;
    }
    msg = b;
    cmd_head h = {CMD_PASS, train, epoch, jobs, images, 0, seed};
    memcpy(msg, &h, sizeof h);
    int32_t *pairs = msg + head_words, *imgs = pairs + 2 * jobs;
    int k = 0, at = 0;
    for (int j = rank; j < n_jobs; j += w->ranks, k++) {
      pairs[2 * k] = j;
      pairs[2 * k + 1] = w->jobs[j].count;
      memcpy(imgs + at, w->samples + w->jobs[j].first, (size_t)w->jobs[j].count * sizeof *imgs);
      at += w->jobs[j].count;
    }
    if (rank == 0)
      s = graft_loader_start(ss->loader, imgs, images, seed);
    else
      s = graft_comm_send(comm_of(r), rank, TAG_CMD, msg,
                          (head_words + 2 * (size_t)jobs + (size_t)images) * sizeof *msg);
  }
  free(msg);
  return s;
}

/* The next record of the result in w->msg (ok_bytes of payload). */
static graft_status next_record(share *w, int from, size_t *at, size_t ok_bytes, int32_t *status,
                                const char **data, size_t *bytes) {
  if (graft_records_parse(w->msg, w->msg_len, at, ok_bytes, status, data, bytes) != GRAFT_OK)
    return graft__fail(GRAFT_EFORMAT, "rank %d: a result of %zu bytes cut short", from, w->msg_len);
  return GRAFT_OK;
}

/* A worker's failure ("rank R on HOST: ..."), as rank 0 reports it. */
static graft_status remote_failure(share *w, int from, size_t at) {
  int32_t st;
  const char *text;
  size_t n;
  GRAFT_TRY(next_record(w, from, &at, 0, &st, &text, &n));
  graft_status s = st > 0 && st < GRAFT_STATUS_COUNT ? (graft_status)st : GRAFT_EIO;
  return graft__fail(s, "%.*s", (int)(n < FAIL_TEXT ? n : FAIL_TEXT), text);
}

/* The next result from `from` into w->msg; its head, *at after it. */
static graft_status receive(run *r, int from, res_head *h, size_t *at) {
  share *w = r->share;
  int32_t st;
  const char *p;
  size_t n;
  GRAFT_TRY(graft_comm_recv(comm_of(r), from, TAG_RESULT, w->msg, w->msg_cap, &w->msg_len, NULL));
  *at = 0;
  GRAFT_TRY(next_record(w, from, at, sizeof *h, &st, &p, &n));
  if (st != GRAFT_OK) return graft__fail(GRAFT_EFORMAT, "rank %d: a result without a head", from);
  memcpy(h, p, sizeof *h);
  return GRAFT_OK;
}

/* Job j's result from its rank into w->got (rows into r->buf.trunk_rows). */
static graft_status receive_job(run *r, int j) {
  share *w = r->share;
  const int from = owner(w, j);
  const size_t row = (size_t)r->dim * sizeof(float);
  res_head h;
  size_t at;
  GRAFT_TRY(receive(r, from, &h, &at));
  if (h.kind == RES_FAIL) return remote_failure(w, from, at);
  if (h.kind != RES_JOB || h.job != j || h.count != w->jobs[j].count || h.good < 0 ||
      h.good > h.count)
    return graft__fail(GRAFT_EFORMAT, "rank %d: result out of step (job %d, expected %d)", from,
                       h.job, j);
  int good = 0;
  for (int i = 0; i < h.count; i++) {
    int32_t st;
    const char *p;
    size_t n;
    GRAFT_TRY(next_record(w, from, &at, row, &st, &p, &n));
    w->got.status[i] = st;
    if (st != GRAFT_OK)
      snprintf(w->got.error[i], ERROR_TEXT, "%.*s", (int)(n < ERROR_TEXT ? n : ERROR_TEXT), p);
    else if (good < h.good)
      memcpy(r->buf.trunk_rows + (size_t)good++ * r->dim, p, row);
    else
      return graft__fail(GRAFT_EFORMAT, "rank %d: more rows than said (job %d)", from, j);
  }
  if (good != h.good) return graft__fail(GRAFT_EFORMAT, "rank %d: rows missing (job %d)", from, j);
  w->got.count = h.count;
  w->got.good = h.good;
  w->got.rows = r->buf.trunk_rows;
  return GRAFT_OK;
}

/* Job j's results (the next in order) into w->got, computed here or
 * received; the images that failed said, and marked bad. */
static graft_status take(run *r, split_state *ss, int j) {
  share *w = r->share;
  const trunk_job *job = &w->jobs[j];
  if (owner(w, j) == 0)
    GRAFT_TRY(compute_job(r, ss, w->samples + job->first, job->count));
  else
    GRAFT_TRY(receive_job(r, j));
  /* The failures, said once, here, in the single process's order. */
  for (int i = 0; i < job->count; i++) {
    if (w->got.status[i] == GRAFT_OK) continue;
    int sample = w->samples[job->first + i];
    graft__warn("%s: %s; skipped", ss->split->samples[sample].path, w->got.error[i]);
    ss->bad[sample] = 1;
    ss->split->skipped++;
  }
  w->next = j + 1;
  return GRAFT_OK;
}

int graft__ft_share_images(const run *r) { return r->share->n_samples; }

graft_status graft__ft_share_next(run *r, split_state *ss, int step, trunk_result *out, bool *got) {
  share *w = r->share;
  *got = w->next < w->n_jobs && (step < 0 || w->jobs[w->next].step == step);
  if (!*got) return GRAFT_OK;
  const trunk_job *job = &w->jobs[w->next];
  GRAFT_TRY(take(r, ss, w->next));
  *out = (trunk_result){job->step, job->count, w->samples + job->first, w->got.status,
                        w->got.rows};
  return GRAFT_OK;
}

/* Whether workers may still have results of this pass for rank 0. */
static bool pass_open(const share *w) { return w->ranks > 1 && w->next < w->n_jobs; }

graft_status graft__ft_share_cancel(run *r) {
  share *w = r->share;
  if (!pass_open(w)) return GRAFT_OK;
  w->next = w->n_jobs;
  /* Keep the failure that brought us here: the detail is thread-local. */
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  graft_status s = GRAFT_OK;
  cmd_head c = {CMD_CANCEL, 0, 0, 0, 0, 0, 0};
  for (int rank = 1; rank < w->ranks && s == GRAFT_OK; rank++)
    s = graft_comm_send(comm_of(r), rank, TAG_CMD, &c, sizeof c);
  for (int rank = 1; rank < w->ranks && s == GRAFT_OK; rank++) {
    res_head h = {0};
    size_t at;
    while (s == GRAFT_OK && h.kind != RES_ACK) s = receive(r, rank, &h, &at);
  }
  if (s == GRAFT_OK) (void)graft__fail(GRAFT_EIO, "%s", detail); /* the detail back */
  return s;
}

bool graft__ft_stop_requested(run *r) {
  share *w = r->share;
  if (r->hooks && r->hooks->stop && *r->hooks->stop) return true;
  if (w->ranks > 1 && !w->stop_noted) {
    bool found = false;
    cmd_head note;
    if (graft_comm_poll(comm_of(r), GRAFT_COMM_ANY, TAG_NOTE, 0, &found, NULL, NULL) == GRAFT_OK &&
        found &&
        graft_comm_recv(comm_of(r), GRAFT_COMM_ANY, TAG_NOTE, &note, sizeof note, NULL, NULL) ==
            GRAFT_OK)
      w->stop_noted = true;
  }
  return w->stop_noted;
}

graft_status graft__ft_share_quit(run *r, graft_status status) {
  share *w = r->share;
  if (w->ranks <= 1 || w->rank != 0) return GRAFT_OK;
  char detail[1024];
  snprintf(detail, sizeof detail, "%s", graft_detail());
  graft_status s = GRAFT_OK;
  cmd_head c = {CMD_QUIT, 0, 0, 0, 0, (int32_t)status, 0};
  for (int rank = 1; rank < w->ranks && s == GRAFT_OK; rank++)
    s = graft_comm_send(comm_of(r), rank, TAG_CMD, &c, sizeof c);
  if (s == GRAFT_OK) (void)graft__fail(status, "%s", detail); /* the detail back */
  return s;
}

/* ---- the other ranks ---- */

/* A signal here: rank 0 hears of it once and stops as if it had it. */
static void note_stop(run *r) {
  share *w = r->share;
  if (w->stop_noted || !(r->hooks && r->hooks->stop && *r->hooks->stop)) return;
  cmd_head note = {0};
  if (graft_comm_send(comm_of(r), 0, TAG_NOTE, &note, sizeof note) == GRAFT_OK) w->stop_noted = true;
}

/* Wait until a send buffer is free (all of them when all); *cmd set when a
 * command came meanwhile (it is left waiting). */
static graft_status wait_sends(run *r, bool all, bool *cmd) {
  share *w = r->share;
  for (;;) {
    int busy = 0, free_one = -1;
    for (int i = 0; i < QUEUE; i++) {
      if (w->sending[i]) {
        bool done = false;
        GRAFT_TRY(graft_comm_sent(w->sending[i], &done));
        if (done) w->sending[i] = NULL;
      }
      if (w->sending[i])
        busy++;
      else if (free_one < 0)
        free_one = i;
    }
    if (all ? busy == 0 : free_one >= 0) return GRAFT_OK;
    note_stop(r);
    bool found = false;
    GRAFT_TRY(graft_comm_poll(comm_of(r), 0, TAG_CMD, 1, &found, NULL, NULL));
    if (found) *cmd = true;
  }
}

/* w->got as job `job`'s result into out. */
static graft_status pack_job(run *r, int job, graft_records *out) {
  share *w = r->share;
  const size_t row = (size_t)r->dim * sizeof(float);
  res_head h = {RES_JOB, job, w->got.count, w->got.good, 0, 0};
  graft_records_reset(out);
  graft_records_put(out, GRAFT_OK, &h, sizeof h, NULL, 0);
  for (int i = 0, good = 0; i < h.count; i++)
    if (w->got.status[i] != GRAFT_OK)
      graft_records_text(out, w->got.status[i], w->got.error[i]);
    else
      graft_records_put(out, GRAFT_OK, w->got.rows + (size_t)good++ * r->dim, row, NULL, 0);
  return graft_records_oom(out) ? graft__fail(GRAFT_ENOMEM, "out of memory") : GRAFT_OK;
}

/* Job `job`'s result to rank 0 in the background, from a free buffer. */
static graft_status send_job(run *r, int job) {
  share *w = r->share;
  bool cmd = false;
  GRAFT_TRY(wait_sends(r, false, &cmd));
  for (int i = 0; i < QUEUE; i++) {
    if (w->sending[i]) continue;
    if (!w->out[i]) GRAFT_TRY(graft_records_create(&w->out[i]));
    GRAFT_TRY(pack_job(r, job, w->out[i]));
    size_t n;
    const void *bytes = graft_records_bytes(w->out[i], &n);
    return graft_comm_isend(comm_of(r), 0, TAG_RESULT, bytes, n, &w->sending[i]);
  }
  return graft__fail(GRAFT_EIO, "no free send buffer");
}

/* A result of its head alone (an acknowledgement), or with a failure
 * (text not NULL), to rank 0 once what was queued is sent. */
static graft_status send_note(run *r, int kind, graft_status s, const char *text) {
  share *w = r->share;
  bool cmd = false;
  res_head h = {kind, 0, 0, 0, (int32_t)s, 0};
  GRAFT_TRY(wait_sends(r, true, &cmd));
  graft_records_reset(w->note);
  graft_records_put(w->note, GRAFT_OK, &h, sizeof h, NULL, 0);
  if (text) graft_records_text(w->note, (int32_t)s, text);
  return graft_records_send(comm_of(r), w->note, 0, TAG_RESULT);
}

/* This rank's jobs of a pass (the command in w->msg), in order, until done
 * or a command (a cancel) comes. */
static graft_status serve_pass(run *r, size_t bytes) {
  share *w = r->share;
  cmd_head c;
  memcpy(&c, w->msg, sizeof c);
  const size_t head_words = sizeof c / sizeof(int32_t);
  if (c.n_jobs < 0 || c.n_samples < 0 ||
      bytes != (head_words + 2 * (size_t)c.n_jobs + (size_t)c.n_samples) * sizeof(int32_t))
    return graft__fail(GRAFT_EFORMAT, "a pass of %zu bytes for %d jobs", bytes, c.n_jobs);
  GRAFT_TRY(plan_room(w, c.n_jobs, c.n_samples));
  const int32_t *pairs = (const int32_t *)w->msg + head_words, *imgs = pairs + 2 * c.n_jobs;
  for (int k = 0, at = 0; k < c.n_jobs; at += pairs[2 * k + 1], k++)
    w->jobs[k] = (trunk_job){pairs[2 * k], -1, at, pairs[2 * k + 1]};
  memcpy(w->samples, imgs, (size_t)c.n_samples * sizeof *w->samples);
  split_state *ss = c.train ? &r->train : &r->val;
  GRAFT_TRY(graft_loader_start(ss->loader, w->samples, c.n_samples, c.seed));
  int done = 0;
  for (int k = 0; k < c.n_jobs; k++) {
    bool cmd = false;
    note_stop(r);
    GRAFT_TRY(graft_comm_poll(comm_of(r), 0, TAG_CMD, 0, &cmd, NULL, NULL));
    if (cmd) return GRAFT_OK; /* a cancel: the caller takes it */
    const trunk_job *job = &w->jobs[k];
    GRAFT_TRY(compute_job(r, ss, w->samples + job->first, job->count));
    GRAFT_TRY(send_job(r, job->id));
    done += job->count;
    if (r->hooks && r->hooks->progress)
      r->hooks->progress(r->hooks->user, c.train ? "train" : "val", c.epoch + 1,
                         (int)r->cfg->epochs, done, c.n_samples, 0);
  }
  return GRAFT_OK;
}

graft_status graft__ft_serve(run *r) {
  share *w = r->share;
  bool failed = false;
  for (;;) {
    bool found = false, cmd = false;
    size_t bytes = 0;
    note_stop(r);
    GRAFT_TRY(graft_comm_poll(comm_of(r), 0, TAG_CMD, 20, &found, NULL, &bytes));
    if (!found) continue;
    if (bytes > w->msg_cap) {
      void *m = realloc(w->msg, bytes);
      if (!m) return graft__fail(GRAFT_ENOMEM, "out of memory for a pass's jobs");
      w->msg = m;
      w->msg_cap = bytes;
    }
    GRAFT_TRY(graft_comm_recv(comm_of(r), 0, TAG_CMD, w->msg, w->msg_cap, &bytes, NULL));
    cmd_head c;
    memcpy(&c, w->msg, sizeof c);
    if (c.kind == CMD_QUIT) {
      GRAFT_TRY(wait_sends(r, true, &cmd));
      return (graft_status)c.status;
    }
    if (c.kind == CMD_CANCEL) {
      GRAFT_TRY(send_note(r, RES_ACK, GRAFT_OK, NULL));
      continue;
    }
    if (c.kind != CMD_PASS) return graft__fail(GRAFT_EFORMAT, "unknown command %d", c.kind);
    if (failed) continue; /* rank 0 cancels it: it has the failure */
    graft_status s = serve_pass(r, bytes);
    if (s != GRAFT_OK) {
      /* Said to rank 0 after what was sent; then only cancels and quit. */
      char text[FAIL_TEXT];
      snprintf(text, sizeof text, "rank %d on %s: %s", w->rank, graft_comm_host(comm_of(r)),
               graft_detail()[0] ? graft_detail() : graft_strerror(s));
      GRAFT_TRY(send_note(r, RES_FAIL, s, text));
      failed = true;
    }
  }
}
