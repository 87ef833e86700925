/*
 * core/size: overflow-checked size arithmetic for sizes read from files (STYLE b.3).
 * Each returns false on overflow and leaves *out unspecified.
 */
#ifndef IMC_CORE_SIZE_H
#define IMC_CORE_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool imc_size_mul(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

static inline bool imc_size_add(uint64_t a, uint64_t b, uint64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

// Rounds x up to a multiple of align (align > 0); false on overflow.
static inline bool imc_size_align(uint64_t x, uint64_t align, uint64_t *out)
{
    uint64_t r = x % align;
    return r == 0 ? (*out = x, true) : imc_size_add(x, align - r, out);
}

#endif // IMC_CORE_SIZE_H
