#include "io/strlist.h"

#include <stdlib.h>
#include <string.h>

int graft_strlist_push(graft_strlist *l, const char *s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    char **v = realloc(l->v, cap * sizeof *v);
    if (!v) return -1;
    l->v = v;
    l->cap = cap;
  }
  if (!(l->v[l->n] = strdup(s))) return -1;
  l->n++;
  return 0;
}

static int cmp_bytes(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

void graft_strlist_sort(graft_strlist *l) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, cmp_bytes);
}

void graft_strlist_clear(graft_strlist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->v[i]);
  free(l->v);
  memset(l, 0, sizeof *l);
}
