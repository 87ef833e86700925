/*
 * model/unicode: UTF-8 helpers and the GPT-2 byte mapping (see unicode.h).
 */
#include "model/unicode.h"

static inline bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

uint32_t imc_utf8_decode(const char *s, size_t n, size_t *adv)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    *adv = 1;
    if (c < 0x80) {
        return c;
    }
    if (!(c & 0x40)) {
        return IMC_UTF8_INVALID; // continuation byte as lead
    }
    if (!(c & 0x20)) {
        if (n < 2 || !is_cont(u[1])) {
            return IMC_UTF8_INVALID;
        }
        *adv = 2;
        return ((uint32_t)(c & 0x1F) << 6) | (u[1] & 0x3F);
    }
    if (!(c & 0x10)) {
        if (n < 3 || !is_cont(u[1]) || !is_cont(u[2])) {
            return IMC_UTF8_INVALID;
        }
        *adv = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
    }
    if (!(c & 0x08)) {
        if (n < 4 || !is_cont(u[1]) || !is_cont(u[2]) || !is_cont(u[3])) {
            return IMC_UTF8_INVALID;
        }
        *adv = 4;
        return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
               ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    }
    return IMC_UTF8_INVALID;
}

size_t imc_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t imc_utf8_sanitize(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) { // fast path for ASCII
            out[o++] = (char)c;
            i++;
            continue;
        }
        size_t adv;
        uint32_t cp = imc_utf8_decode(s + i, n - i, &adv);
        if (cp == IMC_UTF8_INVALID || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            cp = 0xFFFD;
        }
        o += imc_utf8_encode(cp, out + o);
        i += adv;
    }
    return o;
}

int imc_gpt2_cp_byte(uint32_t cp)
{
    if (cp < 256) {
        uint8_t b = (uint8_t)cp;
        return imc_gpt2_byte_cp(b) == cp ? (int)b : -1;
    }
    if (cp < 256 + 33) {
        return (int)(cp - 256);
    }
    if (cp < 256 + 67) {
        return (int)(0x7F + (cp - 256 - 33));
    }
    if (cp == 256 + 67) {
        return 0xAD;
    }
    return -1;
}
