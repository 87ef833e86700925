/*
 * coordinator/quant_rules: per-tensor type rules for `imc quantize` (DESIGN.md §3, §4
 * "Quantized output"), with ik_llama.cpp's --custom-q semantics: an ordered list of
 * `regex=type` pairs; a tensor takes the type of the FIRST rule whose regex matches its GGUF
 * name; no match → the command's default type.
 *
 * Regex dialect: POSIX extended (<regex.h>, REG_EXTENDED | REG_NOSUB), matched unanchored
 * anywhere in the name (like std::regex_search); anchor with ^ and $ when needed. '.' matches
 * any character, so "blk\.3\." is the precise form of "blk.3.".
 *
 * Sources:
 *   --custom-q 're=type,re=type,...'   split at commas (a regex cannot contain ',' here; use a
 *                                       rules file for that), each pair at its LAST '='
 *   --rules FILE                        one `regex=type` per line; blank lines and lines whose
 *                                       first non-blank character is '#' are skipped; leading
 *                                       and trailing blanks are trimmed; ',' allowed
 * Type names are ggml's ("q4_k", case-insensitive) from types/types.def.
 *
 * Invariants: every rule holds a compiled regex and a known type; rules keep their order.
 */
#ifndef IMC_COORDINATOR_QUANT_RULES_H
#define IMC_COORDINATOR_QUANT_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "types/types.h"

struct imc_quant_rule {
    char *pattern;      // the regex text (owned)
    regex_t re;         // compiled
    enum imc_type type; // type given to matching tensors
};

struct imc_quant_rules {
    struct imc_quant_rule *rules; // [n] in priority order (owned)
    int64_t n;
    int64_t cap;
    bool any_known; // accept the types imc reads but cannot write (rules for an external
                    // quantizer); set after imc_quant_rules_init
};

// Empties *r (no allocation).
void imc_quant_rules_init(struct imc_quant_rules *r);
// Frees everything *r owns and leaves it empty; safe on an empty or zeroed set.
void imc_quant_rules_free(struct imc_quant_rules *r);

// Appends one rule. where names the source in messages ("--custom-q", "rules.txt:3"). An
// empty pattern, a regex that does not compile or an unknown type name logs one line
// "<where>: ..." (the regex error text, or the list of valid types) and returns IMC_ERR_ARG;
// IMC_ERR_NOMEM. *r is unchanged on failure.
enum imc_status imc_quant_rules_add(struct imc_quant_rules *r, const char *pattern,
                                    const char *type_name, const char *where);
// Parses one "regex=type" item (split at its last '=') and appends it. Errors as _add, plus
// IMC_ERR_ARG for an item without '='.
enum imc_status imc_quant_rules_add_item(struct imc_quant_rules *r, const char *item,
                                         const char *where);
// Parses a --custom-q list "re=type,re=type,..." (empty items skipped) and appends the rules.
enum imc_status imc_quant_rules_parse_list(struct imc_quant_rules *r, const char *spec);
// Parses rules-file text (see above); path names the file in messages ("path:line: ...").
enum imc_status imc_quant_rules_parse_text(struct imc_quant_rules *r, const char *text,
                                           const char *path);
// Reads and parses a rules file. IMC_ERR_IO (logged) when it cannot be read.
enum imc_status imc_quant_rules_read_file(struct imc_quant_rules *r, const char *path);

// Index of the first rule matching name, or -1.
int64_t imc_quant_rules_match(const struct imc_quant_rules *r, const char *name);

// Type id for a ggml type name imc can write (case-insensitive), or -1 after logging
// "<where>: unknown type 'x' (valid: f32, f16, ...)", or, for a type imc reads but cannot write,
// that it cannot and how to quantize to it (--external).
int imc_quant_type_parse(const char *name, const char *where);
// Writes the valid type names, comma-separated, into buf (always NUL-terminated).
void imc_quant_type_list(char *buf, size_t size);

#endif // IMC_COORDINATOR_QUANT_RULES_H
