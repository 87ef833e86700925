/*
 * core/hash: FNV-1a 64-bit, an incremental, byte-order independent hash for seeds, tables and
 * change detection (not for security). Same input bytes → same value on every machine.
 */
#ifndef IMC_CORE_HASH_H
#define IMC_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define IMC_HASH_FNV_INIT 1469598103934665603ull

// Continues hash h (IMC_HASH_FNV_INIT to start) over p[0..n).
static inline uint64_t imc_hash_fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ull;
    }
    return h;
}

#endif // IMC_CORE_HASH_H
