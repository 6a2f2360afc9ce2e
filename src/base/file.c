/* File helpers (see file.h). */
#include "base/file.h"
#include "autocv/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int acv_file_read(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return acv_error(ACV_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return acv_error(ACV_ERANGE, "%s: file is %lld bytes, more than the limit of %zu",
                         path, (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != n || rerr) {
        free(buf);
        return acv_error(ACV_EIO, "%s: short read (%zu of %zu bytes)", path, got, n);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

int acv_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return acv_error(ACV_EIO, "%s: %s", dir, strerror(errno));
    fsync(fd);
    close(fd);
    return 0;
}

static char *dir_of(const char *path)
{
    char *d = strdup(path);
    if (!d) return NULL;
    char *slash = strrchr(d, '/');
    if (!slash) { free(d); return strdup("."); }
    if (slash == d) slash[1] = 0; else *slash = 0;
    return d;
}

int acv_file_write_atomic(const char *path, const void *data, size_t len)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int rc = acv_error(ACV_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int rc = acv_error(ACV_EIO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int rc = acv_error(ACV_EIO, "%s: fsync/close failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        int rc = acv_error(ACV_EIO, "%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return rc;
    }
    free(tmp);
    char *d = dir_of(path);
    if (d) { acv_fsync_dir(d); free(d); }
    return 0;
}

int acv_mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = acv_error(ACV_EIO, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = acv_error(ACV_EIO, "%s: cannot create directory: %s", p, strerror(errno));
    else if (!acv_is_dir(p))
        rc = acv_error(ACV_EIO, "%s: exists and is not a directory", p);
    free(p);
    return rc;
}

bool acv_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

bool acv_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int acv_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0) return acv_error(ACV_EIO, "%s: cannot remove: %s", path, strerror(errno));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) return acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *c = acv_path_join(path, e->d_name);
        if (!c) { rc = ACV_ENOMEM; break; }
        rc = acv_remove_tree(c);
        free(c);
        if (rc) break;
    }
    closedir(d);
    if (rc) return rc;
    if (rmdir(path) != 0) return acv_error(ACV_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int acv_dir_replace(const char *tmp_dir, const char *dst)
{
    size_t n = strlen(dst) + 32;
    char *old = malloc(n);
    if (!old) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(old, n, "%s.old.%ld", dst, (long)getpid());
    bool had = acv_path_exists(dst);
    if (had && rename(dst, old) != 0) {
        int rc = acv_error(ACV_EIO, "%s: cannot move aside: %s", dst, strerror(errno));
        free(old);
        return rc;
    }
    if (rename(tmp_dir, dst) != 0) {
        int rc = acv_error(ACV_EIO, "%s: cannot move into place: %s", dst, strerror(errno));
        if (had) rename(old, dst);
        free(old);
        return rc;
    }
    char *parent = dir_of(dst);
    if (parent) { acv_fsync_dir(parent); free(parent); }
    if (had) acv_remove_tree(old);
    free(old);
    return 0;
}

char *acv_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    size_t k = la;
    if (k > 0 && s[k - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, lb + 1);
    return s;
}

const char *acv_path_ext(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash)) return "";
    return dot + 1;
}
