#define _DEFAULT_SOURCE /* flock */
#include "io/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *graft_temp_path_for(const char *path) {
  static _Atomic unsigned long counter;
  size_t need = strlen(path) + 64;
  char *tmp = malloc(need);
  if (!tmp) return NULL;
  snprintf(tmp, need, "%s.tmp.%ld.%lu", path, (long)getpid(), ++counter);
  return tmp;
}

/* Details name no path: the callers say which file they were writing. */
static graft_status fsync_path(const char *path, int flags, const char *what) {
  int fd = open(path, flags);
  if (fd < 0) return graft__fail(GRAFT_EIO, "cannot open %s: %s", what, strerror(errno));
  if (fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    close(fd);
    return graft__fail(GRAFT_EIO, "fsync of %s failed: %s", what, strerror(e));
  }
  close(fd);
  return GRAFT_OK;
}

static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

graft_status graft_commit_file(const char *tmp_path, const char *final_path) {
  graft_status s = fsync_path(tmp_path, O_RDONLY, "the temporary file");
  if (s == GRAFT_OK && rename(tmp_path, final_path) != 0)
    s = graft__fail(GRAFT_EIO, "cannot rename the temporary file into place: %s",
                    strerror(errno));
  if (s != GRAFT_OK) {
    unlink(tmp_path);
    return s;
  }
  char *dir = dir_of(final_path);
  if (!dir) return graft__fail(GRAFT_ENOMEM, "out of memory");
  s = fsync_path(dir, O_RDONLY | O_DIRECTORY, "its folder");
  free(dir);
  return s;
}

graft_status graft_write_file_atomic(const char *path, const void *data, size_t len) {
  char *tmp = graft_temp_path_for(path);
  if (!tmp) return graft__fail(GRAFT_ENOMEM, "out of memory");
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    graft_status s = graft__fail(GRAFT_EIO, "cannot create a temporary file beside it: %s",
                                 strerror(errno));
    free(tmp);
    return s;
  }
  size_t wrote = len ? fwrite(data, 1, len, f) : 0;
  int werr = ferror(f), e = errno;
  if (fclose(f) != 0 && !werr) {
    werr = 1;
    e = errno;
  }
  if (wrote != len || werr) {
    unlink(tmp);
    free(tmp);
    return graft__fail(GRAFT_EIO, "write failed: %s", strerror(e));
  }
  graft_status s = graft_commit_file(tmp, path);
  free(tmp);
  return s;
}

graft_status graft_read_file(const char *path, size_t max, uint8_t **buf, size_t *len) {
  *buf = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return graft__fail(e == ENOENT ? GRAFT_ENOENT : GRAFT_EIO, "%s", strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return graft__fail(GRAFT_EIO, "%s", strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return graft__fail(GRAFT_EINVAL, "is a directory");
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return graft__fail(GRAFT_EINVAL, "not a regular file");
  }
  if ((uint64_t)st.st_size > max) {
    close(fd);
    return graft__fail(GRAFT_ELIMIT, "file is %lld bytes, over the %zu-byte limit",
                       (long long)st.st_size, max);
  }
  size_t size = (size_t)st.st_size;
  uint8_t *b = malloc(size ? size : 1);
  if (!b) {
    close(fd);
    return graft__fail(GRAFT_ENOMEM, "cannot allocate %zu bytes", size);
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, b + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(b);
      close(fd);
      return graft__fail(GRAFT_EIO, "read failed: %s", strerror(e));
    }
    if (r == 0) break; /* file shrank while reading */
    got += (size_t)r;
  }
  close(fd);
  *buf = b;
  *len = got;
  return GRAFT_OK;
}

graft_status graft_mkdirs(const char *path) {
  char *p = strdup(path);
  if (!p) return graft__fail(GRAFT_ENOMEM, "out of memory");
  for (char *c = p + 1;; c++) {
    if (*c == '/' || *c == '\0') {
      char saved = *c;
      *c = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        graft_status s = graft__fail(GRAFT_EIO, "%s: cannot create directory: %s", p,
                                     strerror(errno));
        free(p);
        return s;
      }
      struct stat st;
      if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        graft_status s = graft__fail(GRAFT_EIO, "%s: not a directory", p);
        free(p);
        return s;
      }
      *c = saved;
      if (saved == '\0') break;
    }
  }
  free(p);
  return GRAFT_OK;
}

/* The pid a lock file holds, 0 when none (yet: the holder writes it just
 * after it has the lock). */
static long lock_holder(int fd) {
  for (int tries = 0; tries < 20; tries++) {
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
    if (pid > 0) return pid;
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

graft_status graft_dir_lock(const char *dir, const char *name, int *out) {
  *out = -1;
  char path[GRAFT_PATH_MAX + 64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return graft__fail(GRAFT_EIO, "cannot open its lock file %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
    close(fd);
    if (e != EWOULDBLOCK)
      return graft__fail(GRAFT_EIO, "cannot lock %s: %s", path, strerror(e));
    if (pid > 0)
      return graft__fail(GRAFT_EBUSY, "in use by process %ld (it holds %s)", pid, path);
    return graft__fail(GRAFT_EBUSY, "in use by another process (it holds %s)", path);
  }
  /* For the message of whoever finds it taken; the lock holds without it
   * (on a full disk, say). */
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) == 0) {
    ssize_t wrote = pwrite(fd, pid, (size_t)len, 0);
    (void)wrote;
  }
  *out = fd;
  return GRAFT_OK;
}

void graft_dir_unlock(int fd) {
  if (fd >= 0) close(fd); /* the lock goes with the last descriptor */
}
