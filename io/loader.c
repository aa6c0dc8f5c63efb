/* Decoding and augmentation on worker threads, ahead of the compute.
 *
 * A pass is a queue of sample indices. Workers claim queue positions in order
 * and fill ring slots (position p uses slot p % depth once it is free); the
 * consumer takes positions in order. Each image's randomness comes from
 * (pass seed, sample index), never from which thread ran it.
 *
 * With augmentation every pass crops and flips anew, but the decoded image
 * is the same each time: up to keep_bytes of them are kept (kept[sample],
 * set and read under mu) and later passes start from them. Decoding is most
 * of a loader's work (a JPEG of the tutorial's ~500x375 takes several times
 * its crop and resize), and the workers share the cores with the compute. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/image.h"

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct slot {
  int state;
  int pos;
  graft_loaded item;
} slot;

struct graft_loader {
  const graft_split *split;
  graft_preproc pre;
  bool augment;
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  pthread_t *threads;
  int n_threads;
  bool quit;
  /* the current pass */
  int *order, n, next_claim, next_take, active;
  uint64_t seed;
  unsigned generation;
  slot *slots;
  int depth;
  /* decoded images kept for later passes (augment only) */
  graft_image *kept; /* [split->n], px NULL where none */
  size_t keep_bytes, kept_bytes;
};

/* The kept decoding of sample, copied as a view (px shared), or false. */
static bool kept_get(graft_loader *l, int sample, graft_image *out) {
  if (!l->kept) return false;
  pthread_mutex_lock(&l->mu);
  *out = l->kept[sample];
  pthread_mutex_unlock(&l->mu);
  return out->px != NULL;
}

/* Keep *img for sample if the budget allows: the loader then owns its
 * pixels and *img is left empty. */
static void kept_put(graft_loader *l, int sample, graft_image *img) {
  if (!l->kept) return;
  size_t bytes = (size_t)img->w * (size_t)img->h * 3;
  pthread_mutex_lock(&l->mu);
  if (!l->kept[sample].px && bytes <= l->keep_bytes - l->kept_bytes) {
    l->kept[sample] = *img;
    l->kept_bytes += bytes;
    *img = (graft_image){0};
  }
  pthread_mutex_unlock(&l->mu);
}

static void fill(graft_loader *l, graft_loaded *it, int sample, uint64_t seed) {
  graft_image img = {0}, view = {0};
  graft_decode_opts opts = {0, 0, 0};
  it->sample = sample;
  if (kept_get(l, sample, &view)) {
    it->status = GRAFT_OK;
  } else {
    it->status = graft_image_load(l->split->samples[sample].path, &opts, &img);
    view = img;
    if (it->status == GRAFT_OK) kept_put(l, sample, &img); /* view stays valid */
  }
  if (it->status == GRAFT_OK) {
    if (l->augment) {
      graft_rng rng = {graft_rng_u64(seed, (uint64_t)sample), 0};
      it->status = graft_preprocess_train(&view, &l->pre, &rng, it->pixels);
    } else {
      it->status = graft_preprocess_eval(&view, &l->pre, it->pixels);
    }
  }
  if (it->status != GRAFT_OK)
    snprintf(it->error, sizeof it->error, "%s",
             graft_detail()[0] ? graft_detail() : graft_strerror(it->status));
  graft_image_free(&img);
}

static void *worker(void *arg) {
  graft_loader *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->quit) {
    int p = l->next_claim;
    if (p < l->n && l->slots[p % l->depth].state == SLOT_FREE) {
      slot *s = &l->slots[p % l->depth];
      s->state = SLOT_BUSY;
      s->pos = p;
      l->next_claim++;
      l->active++;
      int sample = l->order[p];
      uint64_t seed = l->seed;
      unsigned gen = l->generation;
      pthread_mutex_unlock(&l->mu);
      fill(l, &s->item, sample, seed);
      pthread_mutex_lock(&l->mu);
      l->active--;
      s->state = gen == l->generation ? SLOT_READY : SLOT_FREE;
      pthread_cond_broadcast(&l->done);
    } else {
      pthread_cond_wait(&l->work, &l->mu);
    }
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

graft_status graft_loader_create(const graft_split *split, const graft_preproc *pre,
                                 bool augment, int threads, size_t keep_bytes,
                                 graft_loader **out) {
  *out = NULL;
  graft_loader *l = calloc(1, sizeof *l);
  if (!l) return graft__fail(GRAFT_ENOMEM, "out of memory");
  l->split = split;
  l->pre = *pre;
  l->augment = augment;
  l->n_threads = threads < 1 ? 1 : threads;
  l->depth = 4 * l->n_threads + 16;
  size_t per = (size_t)3 * pre->crop * pre->crop;
  l->slots = calloc((size_t)l->depth, sizeof *l->slots);
  l->threads = calloc((size_t)l->n_threads, sizeof *l->threads);
  if (!l->slots || !l->threads) goto oom;
  if (augment && keep_bytes > 0 && split->n > 0) {
    if (!(l->kept = calloc((size_t)split->n, sizeof *l->kept))) goto oom;
    l->keep_bytes = keep_bytes;
  }
  for (int i = 0; i < l->depth; i++)
    if (!(l->slots[i].item.pixels = malloc(per * sizeof(float)))) goto oom;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->work, NULL);
  pthread_cond_init(&l->done, NULL);
  for (int i = 0; i < l->n_threads; i++) {
    if (pthread_create(&l->threads[i], NULL, worker, l) != 0) {
      l->n_threads = i;
      graft_loader_destroy(l);
      return graft__fail(GRAFT_EIO, "cannot start loader threads");
    }
  }
  *out = l;
  return GRAFT_OK;
oom:
  if (l->slots)
    for (int i = 0; i < l->depth; i++) free(l->slots[i].item.pixels);
  free(l->kept);
  free(l->slots);
  free(l->threads);
  free(l);
  return graft__fail(GRAFT_ENOMEM, "out of memory for the image loader");
}

void graft_loader_destroy(graft_loader *l) {
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->quit = true;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mu);
  for (int i = 0; i < l->n_threads; i++) pthread_join(l->threads[i], NULL);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->work);
  pthread_cond_destroy(&l->done);
  for (int i = 0; i < l->depth; i++) free(l->slots[i].item.pixels);
  if (l->kept)
    for (int i = 0; i < l->split->n; i++) graft_image_free(&l->kept[i]);
  free(l->kept);
  free(l->slots);
  free(l->threads);
  free(l->order);
  free(l);
}

graft_status graft_loader_start(graft_loader *l, const int *order, int n, uint64_t seed) {
  int *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
  if (!copy) return graft__fail(GRAFT_ENOMEM, "out of memory");
  if (n > 0) memcpy(copy, order, (size_t)n * sizeof *copy);
  pthread_mutex_lock(&l->mu);
  l->generation++; /* work in flight from the old pass is dropped when it lands */
  while (l->active > 0) pthread_cond_wait(&l->done, &l->mu);
  for (int i = 0; i < l->depth; i++) l->slots[i].state = SLOT_FREE;
  free(l->order);
  l->order = copy;
  l->n = n;
  l->next_claim = l->next_take = 0;
  l->seed = seed;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mu);
  return GRAFT_OK;
}

graft_loaded *graft_loader_next(graft_loader *l) {
  pthread_mutex_lock(&l->mu);
  if (l->next_take >= l->n) {
    pthread_mutex_unlock(&l->mu);
    return NULL;
  }
  slot *s = &l->slots[l->next_take % l->depth];
  while (!(s->state == SLOT_READY && s->pos == l->next_take))
    pthread_cond_wait(&l->done, &l->mu);
  l->next_take++;
  pthread_mutex_unlock(&l->mu);
  return &s->item;
}

void graft_loader_release(graft_loader *l, graft_loaded *item) {
  pthread_mutex_lock(&l->mu);
  for (int i = 0; i < l->depth; i++)
    if (&l->slots[i].item == item) l->slots[i].state = SLOT_FREE;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mu);
}
