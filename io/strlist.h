/* A growable list of owned strings (paths, names). */
#ifndef GRAFT_STRLIST_H
#define GRAFT_STRLIST_H

#include <stddef.h>

typedef struct graft_strlist {
  char **v;
  size_t n, cap;
} graft_strlist;

/* Append a copy of s; 0, or -1 when out of memory. */
int graft_strlist_push(graft_strlist *l, const char *s);
/* Sort by bytes (strcmp): the order ImageFolder and directory arguments use. */
void graft_strlist_sort(graft_strlist *l);
/* Free every string and the list; leaves it empty. */
void graft_strlist_clear(graft_strlist *l);

#endif
