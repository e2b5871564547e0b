/*
 * fsutil: the durable file operations every stored state relies on.
 * All return 0 on success and -1 with errno set. None may be called on a
 * hot path of the event loop without measurement: they block on the disk.
 */
#ifndef LIB_FSUTIL_H
#define LIB_FSUTIL_H

#include <stddef.h>

/* write() all of p, retrying on EINTR and short writes. */
int fs_write_all(int fd, const void *p, size_t n);
/* fsync the directory at path. */
int fs_sync_dir(const char *path);
/* mkdir if missing (mode), fail if it exists and is not a directory. */
int fs_mkdir(const char *path, unsigned mode);
/* mkdir -p: missing parents are created 0755, the last one with mode. */
int fs_mkdir_p(const char *path, unsigned mode);
/* Write data to dir/name atomically: dir/.name.tmp, fsync, rename, fsync dir. */
int fs_write_atomic(const char *dir, const char *name, const void *data,
    size_t n);

#endif
