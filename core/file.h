/*
 * core/file: read-only file mapping and atomic output files (STYLE b.3, b.4 item 7).
 *
 * Atomic output: imc_afile_open creates "<path>.tmp.<pid>"; imc_afile_commit flushes, fsyncs,
 * renames it over <path> and fsyncs the directory; imc_afile_abort removes it. A crash therefore
 * never leaves a half-written <path>. The temporary is registered with core/tmpfile (removed on
 * SIGINT/SIGTERM/SIGHUP), and opening sweeps away the temporaries of <path> that dead processes
 * of this host left (after a SIGKILL or a crash).
 */
#ifndef IMC_CORE_FILE_H
#define IMC_CORE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

struct imc_map {
    const uint8_t *data; // mapped bytes, read-only; NULL for an empty file
    uint64_t size;       // bytes
};

// Maps path read-only. On failure logs "<path>: <cause>" and returns IMC_ERR_IO.
enum imc_status imc_map_open(struct imc_map *m, const char *path);
// Unmaps; safe on a zeroed or already-closed map.
void imc_map_close(struct imc_map *m);

struct imc_afile {
    FILE *f;        // the temporary file, open for writing
    char *path;     // final path (owned)
    char *tmp_path; // temporary path (owned)
    int tmp_slot;   // core/tmpfile registration + 1; 0 when none (so a zeroed struct has none)
};

// Opens a temporary file beside path. Returns IMC_ERR_IO (logged, naming path) on failure.
enum imc_status imc_afile_open(struct imc_afile *a, const char *path);
// Flushes, fsyncs, renames over the final path. On any failure the temp file is removed.
// Always releases a's resources.
enum imc_status imc_afile_commit(struct imc_afile *a);
// Discards the temporary file; safe to call on a zeroed struct.
void imc_afile_abort(struct imc_afile *a);
// fwrite that logs (naming the final path) and returns IMC_ERR_IO on a short write.
enum imc_status imc_afile_write(struct imc_afile *a, const void *buf, size_t n);

// Makes a finished file written by someone else (e.g. a child process) the output: fsyncs
// tmp_path, renames it over path and fsyncs the directory. On failure logs "<path>: ..." and
// removes tmp_path; IMC_ERR_IO.
enum imc_status imc_file_commit_rename(const char *tmp_path, const char *path);

// Reads a whole file into a new NUL-terminated buffer (free with free()). *size excludes the NUL.
// A directory is an error; so is a FIFO, device or socket that gives more than
// IMC_FILE_STREAM_MAX bytes (/dev/urandom would never end), naming the file and the cause.
#define IMC_FILE_STREAM_MAX ((size_t)256 << 20)
enum imc_status imc_file_read_all(const char *path, char **out, size_t *size);

#endif // IMC_CORE_FILE_H
