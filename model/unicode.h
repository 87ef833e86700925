/*
 * model/unicode: UTF-8 helpers and the GPT-2 byte <-> code point mapping used by the tokenizer
 * (model/vocab.h, DESIGN.md §4 "Tokenizer"). Pure functions, no state.
 *
 * UTF-8 decoding follows llama.cpp's unicode_cpt_from_utf8 structurally (the lead byte decides
 * the length; continuation bytes must be 10xxxxxx; a truncated or malformed sequence is one
 * invalid byte), so that imc_utf8_sanitize replaces exactly the bytes llama.cpp replaces by
 * U+FFFD. Its output is always strict UTF-8 (what PCRE2 requires): overlong forms are
 * re-encoded, surrogates and code points past U+10FFFF become U+FFFD.
 *
 * GPT-2 byte mapping (bytes_to_unicode): bytes 0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF map to the same
 * code point; the other 68 bytes, in increasing order, map to U+0100..U+0143.
 */
#ifndef IMC_MODEL_UNICODE_H
#define IMC_MODEL_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMC_UTF8_INVALID 0xFFFFFFFFu

// Length of the sequence a lead byte announces (1 for continuation bytes and 0xF8-0xFF), as
// llama.cpp's unicode_len_utf8.
static inline size_t imc_utf8_len(unsigned char lead)
{
    static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lut[lead >> 4];
}

// Decodes the code point at s[0..n), n >= 1. Sets *adv to the bytes consumed. Returns
// IMC_UTF8_INVALID (with *adv = 1) for a malformed or truncated sequence.
uint32_t imc_utf8_decode(const char *s, size_t n, size_t *adv);

// Encodes cp (<= 0x10FFFF) into out; returns the byte count (1..4).
size_t imc_utf8_encode(uint32_t cp, char out[4]);

// Copies s[0..n) to out, replacing each invalid byte by U+FFFD (EF BF BD), overlong forms by
// their shortest form, and surrogates / code points past U+10FFFF by U+FFFD. out must hold
// 3 * n bytes. Returns the bytes written.
size_t imc_utf8_sanitize(const char *s, size_t n, char *out);

// GPT-2 byte-level code point of byte b.
static inline uint32_t imc_gpt2_byte_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
        return b;
    }
    if (b <= 0x20) {
        return 256u + b;
    }
    if (b <= 0xA0) {
        return 256u + 33u + (uint32_t)(b - 0x7F);
    }
    return 256u + 67u; // 0xAD
}

// Byte of a GPT-2 byte-level code point; -1 when cp is not one.
int imc_gpt2_cp_byte(uint32_t cp);

#endif // IMC_MODEL_UNICODE_H
