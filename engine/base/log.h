/* Warnings from the library go through one callback the app installs.
 * The library never prints on its own; the default callback discards. */
#ifndef GRAFT_LOG_H
#define GRAFT_LOG_H

typedef void (*graft_log_fn)(const char *msg, void *user);

/* Install the warning sink (NULL discards warnings). Not thread-safe: call at start-up. */
void graft_set_log(graft_log_fn fn, void *user);

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
void graft__warn(const char *fmt, ...);

#endif
