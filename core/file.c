#include "core/file.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/tmpfile.h"

enum imc_status imc_map_open(struct imc_map *m, const char *path)
{
    memset(m, 0, sizeof(*m));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        IMC_LOG_ERR("%s: cannot open: %s", path, strerror(errno));
        return IMC_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        IMC_LOG_ERR("%s: not a regular file", path);
        close(fd);
        return IMC_ERR_IO;
    }
    m->size = (uint64_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, (size_t)m->size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            IMC_LOG_ERR("%s: cannot map %" PRIu64 " bytes: %s", path, m->size, strerror(errno));
            close(fd);
            m->size = 0;
            return IMC_ERR_IO;
        }
        // Advice only: huge-page folios where the file's pages are read into the cache from
        // here on (ext4 and others on recent kernels), mapped 2 MiB at a time. A run reads
        // every weight once per pass; with 4 KiB pages each page's first touch costs a page walk
        // (and, in a VM with shadow paging, a hypervisor exit: about 1 us, 0.8 s per 3 GB).
        (void)madvise(p, (size_t)m->size, MADV_HUGEPAGE);
        m->data = p;
    }
    close(fd);
    return IMC_OK;
}

void imc_map_close(struct imc_map *m)
{
    if (m->data) {
        munmap((void *)m->data, (size_t)m->size);
    }
    m->data = NULL;
    m->size = 0;
}

static void afile_release(struct imc_afile *a)
{
    imc_tmp_unregister(a->tmp_slot - 1);
    a->tmp_slot = 0;
    free(a->path);
    free(a->tmp_path);
    a->path = a->tmp_path = NULL;
    a->f = NULL;
}

enum imc_status imc_afile_open(struct imc_afile *a, const char *path)
{
    memset(a, 0, sizeof(*a));
    imc_tmp_sweep_stale(path);
    size_t n = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp_path = malloc(n);
    if (!a->path || !a->tmp_path) {
        afile_release(a);
        return IMC_ERR_NOMEM;
    }
    snprintf(a->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    a->tmp_slot = imc_tmp_register(a->tmp_path) + 1;
    a->f = fopen(a->tmp_path, "wb");
    if (!a->f) {
        IMC_LOG_ERR("%s: cannot create output file: %s", path, strerror(errno));
        afile_release(a);
        return IMC_ERR_IO;
    }
    return IMC_OK;
}

void imc_afile_abort(struct imc_afile *a)
{
    if (a->f) {
        fclose(a->f);
        unlink(a->tmp_path);
    }
    afile_release(a);
}

enum imc_status imc_afile_write(struct imc_afile *a, const void *buf, size_t n)
{
    if (n > 0 && fwrite(buf, 1, n, a->f) != n) {
        IMC_LOG_ERR("%s: write failed: %s", a->path, strerror(errno));
        return IMC_ERR_IO;
    }
    return IMC_OK;
}

static void fsync_parent_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) {
        return;
    }
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        *(slash == dir ? slash + 1 : slash) = '\0';
        d = dir;
    }
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

enum imc_status imc_afile_commit(struct imc_afile *a)
{
    int ok = fflush(a->f) == 0 && fsync(fileno(a->f)) == 0;
    int err = errno;
    ok = (fclose(a->f) == 0) && ok;
    a->f = NULL;
    if (!ok || rename(a->tmp_path, a->path) != 0) {
        if (ok) {
            err = errno;
        }
        IMC_LOG_ERR("%s: cannot finish writing: %s", a->path, strerror(err));
        unlink(a->tmp_path);
        afile_release(a);
        return IMC_ERR_IO;
    }
    fsync_parent_dir(a->path);
    afile_release(a);
    return IMC_OK;
}

enum imc_status imc_file_commit_rename(const char *tmp_path, const char *path)
{
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    int ok = fd >= 0 && fsync(fd) == 0;
    int err = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (!ok || rename(tmp_path, path) != 0) {
        IMC_LOG_ERR("%s: cannot finish writing: %s", path, strerror(ok ? errno : err));
        unlink(tmp_path);
        return IMC_ERR_IO;
    }
    fsync_parent_dir(path);
    return IMC_OK;
}

enum imc_status imc_file_read_all(const char *path, char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        IMC_LOG_ERR("%s: cannot open: %s", path, strerror(errno));
        return IMC_ERR_IO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        IMC_LOG_ERR("%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" : strerror(errno));
        fclose(f);
        return IMC_ERR_IO;
    }
    const bool stream = !S_ISREG(st.st_mode); // a FIFO, device or socket: bounded
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) {
            break;
        }
        if (stream && n >= IMC_FILE_STREAM_MAX) {
            IMC_LOG_ERR("%s: not a regular file, and it gave more than %zu MiB without ending; "
                        "pass the text as a regular file",
                        path, IMC_FILE_STREAM_MAX >> 20);
            free(buf);
            fclose(f);
            return IMC_ERR_IO;
        }
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (!buf) {
        return IMC_ERR_NOMEM;
    }
    if (rd_err) {
        IMC_LOG_ERR("%s: read failed", path);
        free(buf);
        return IMC_ERR_IO;
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return IMC_OK;
}
