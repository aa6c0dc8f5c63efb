#include "io/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *graft_temp_path_for(const char *path) {
  static _Atomic unsigned long counter;
  size_t need = strlen(path) + 64;
  char *tmp = malloc(need);
  if (!tmp) return NULL;
  snprintf(tmp, need, "%s.tmp.%ld.%lu", path, (long)getpid(), ++counter);
  return tmp;
}

static graft_status fsync_path(const char *path, int flags) {
  int fd = open(path, flags);
  if (fd < 0) return graft__fail(GRAFT_EIO, "%s: cannot open: %s", path, strerror(errno));
  if (fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    close(fd);
    return graft__fail(GRAFT_EIO, "%s: fsync failed: %s", path, strerror(e));
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
  graft_status s = fsync_path(tmp_path, O_RDONLY);
  if (s == GRAFT_OK && rename(tmp_path, final_path) != 0)
    s = graft__fail(GRAFT_EIO, "%s: cannot rename into place: %s", final_path,
                    strerror(errno));
  if (s != GRAFT_OK) {
    unlink(tmp_path);
    return s;
  }
  char *dir = dir_of(final_path);
  if (!dir) return graft__fail(GRAFT_ENOMEM, "out of memory");
  s = fsync_path(dir, O_RDONLY | O_DIRECTORY);
  free(dir);
  return s;
}

graft_status graft_write_file_atomic(const char *path, const void *data, size_t len) {
  char *tmp = graft_temp_path_for(path);
  if (!tmp) return graft__fail(GRAFT_ENOMEM, "out of memory");
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    graft_status s = graft__fail(GRAFT_EIO, "%s: cannot create: %s", path, strerror(errno));
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
    return graft__fail(GRAFT_EIO, "%s: write failed: %s", path, strerror(e));
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
