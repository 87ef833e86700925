/*
 * coordinator/quant_rules: ordered regex=type rules (see quant_rules.h).
 */
#include "coordinator/quant_rules.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"

void imc_quant_rules_init(struct imc_quant_rules *r)
{
    memset(r, 0, sizeof(*r));
}

void imc_quant_rules_free(struct imc_quant_rules *r)
{
    for (int64_t i = 0; i < r->n; i++) {
        regfree(&r->rules[i].re);
        free(r->rules[i].pattern);
    }
    free(r->rules);
    imc_quant_rules_init(r);
}

void imc_quant_type_list(char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (uint32_t t = 0; t < IMC_TYPE_MAX_ID; t++) {
        const struct imc_type_traits *tr = imc_type_traits(t);
        if (!tr || !tr->from_float || off >= size) {
            continue;
        }
        int k = snprintf(buf + off, size - off, "%s%s", off ? ", " : "", imc_type_name(t));
        if (k < 0) {
            return;
        }
        off += (size_t)k;
    }
}

int imc_quant_type_parse(const char *name, const char *where)
{
    int t = imc_type_from_name(name);
    if (t >= 0 && imc_type_traits((uint32_t)t)->from_float) {
        return t;
    }
    if (t >= 0) {
        IMC_LOG_ERR("%s: imc reads type %s but cannot write it; quantize to it with a reference "
                    "quantizer through --external (e.g. --external 'llama-quantize --imatrix "
                    "{imatrix} {model} {out} {type}' with the type %s)",
                    where, imc_type_name((uint32_t)t), imc_type_name((uint32_t)t));
        return -1;
    }
    char list[512];
    imc_quant_type_list(list, sizeof(list));
    IMC_LOG_ERR("%s: unknown type '%s' (valid: %s)", where, name, list);
    return -1;
}

enum imc_status imc_quant_rules_add(struct imc_quant_rules *r, const char *pattern,
                                    const char *type_name, const char *where)
{
    if (pattern[0] == '\0') {
        IMC_LOG_ERR("%s: empty regex before '=%s'", where, type_name);
        return IMC_ERR_ARG;
    }
    int t = r->any_known ? imc_type_from_name(type_name) : -1;
    t = t >= 0 ? t : imc_quant_type_parse(type_name, where);
    if (t < 0) {
        return IMC_ERR_ARG;
    }
    if (r->n == r->cap) {
        int64_t cap = r->cap ? 2 * r->cap : 8;
        struct imc_quant_rule *nr = realloc(r->rules, (size_t)cap * sizeof(*nr));
        if (!nr) {
            IMC_LOG_ERR("%s: out of memory", where);
            return IMC_ERR_NOMEM;
        }
        r->rules = nr;
        r->cap = cap;
    }
    struct imc_quant_rule *q = &r->rules[r->n];
    int rc = regcomp(&q->re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &q->re, msg, sizeof(msg));
        IMC_LOG_ERR("%s: bad regex '%s': %s", where, pattern, msg);
        return IMC_ERR_ARG;
    }
    q->pattern = strdup(pattern);
    if (!q->pattern) {
        regfree(&q->re);
        IMC_LOG_ERR("%s: out of memory", where);
        return IMC_ERR_NOMEM;
    }
    q->type = (enum imc_type)t;
    r->n++;
    return IMC_OK;
}

enum imc_status imc_quant_rules_add_item(struct imc_quant_rules *r, const char *item,
                                         const char *where)
{
    const char *eq = strrchr(item, '=');
    if (!eq) {
        IMC_LOG_ERR("%s: rule '%s' has no '=' (expected regex=type)", where, item);
        return IMC_ERR_ARG;
    }
    size_t n = (size_t)(eq - item);
    char *pat = malloc(n + 1);
    if (!pat) {
        IMC_LOG_ERR("%s: out of memory", where);
        return IMC_ERR_NOMEM;
    }
    memcpy(pat, item, n);
    pat[n] = '\0';
    enum imc_status st = imc_quant_rules_add(r, pat, eq + 1, where);
    free(pat);
    return st;
}

enum imc_status imc_quant_rules_parse_list(struct imc_quant_rules *r, const char *spec)
{
    char *copy = strdup(spec);
    if (!copy) {
        IMC_LOG_ERR("--custom-q: out of memory");
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    char *p = copy;
    while (st == IMC_OK && p) {
        char *comma = strchr(p, ',');
        if (comma) {
            *comma = '\0';
        }
        if (*p != '\0') {
            st = imc_quant_rules_add_item(r, p, "--custom-q");
        }
        p = comma ? comma + 1 : NULL;
    }
    free(copy);
    return st;
}

// Trims blanks at both ends of s in place; returns the first non-blank character.
static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

enum imc_status imc_quant_rules_parse_text(struct imc_quant_rules *r, const char *text,
                                           const char *path)
{
    char *copy = strdup(text);
    if (!copy) {
        IMC_LOG_ERR("%s: out of memory", path);
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    char *p = copy;
    for (int line = 1; st == IMC_OK && p; line++) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
        }
        char *s = trim(p);
        if (*s != '\0' && *s != '#') {
            char where[512];
            snprintf(where, sizeof(where), "%s:%d", path, line);
            st = imc_quant_rules_add_item(r, s, where);
        }
        p = nl ? nl + 1 : NULL;
    }
    free(copy);
    return st;
}

enum imc_status imc_quant_rules_read_file(struct imc_quant_rules *r, const char *path)
{
    char *text = NULL;
    size_t size = 0;
    IMC_TRY(imc_file_read_all(path, &text, &size));
    enum imc_status st = imc_quant_rules_parse_text(r, text, path);
    free(text);
    return st;
}

int64_t imc_quant_rules_match(const struct imc_quant_rules *r, const char *name)
{
    for (int64_t i = 0; i < r->n; i++) {
        if (regexec(&r->rules[i].re, name, 0, NULL, 0) == 0) {
            return i;
        }
    }
    return -1;
}
