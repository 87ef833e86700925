/*
 * imc tokenize: the model's token ids of a text (DESIGN.md §3, §4 "Tokenizer").
 *
 *   imc tokenize -m MODEL [--no-bos] [--ids] [--parse-special] (TEXT | -f FILE)
 *
 * Prints one "<id> -> '<piece>'" line per token, or with --ids the ids space-separated on one
 * line. BOS comes first when the model asks for it (tokenizer.ggml.add_bos_token or its
 * default), unless --no-bos. --parse-special also turns control-token texts ("<|endoftext|>")
 * into their ids. Exit 0 on success, 1 when the model or file cannot be read, 2 on bad usage.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/log.h"
#include "model/gguf.h"
#include "model/vocab.h"
#include "src/cli.h"

struct opts {
    const char *model;
    const char *text;
    const char *file;
    bool no_bos, ids_only, parse_special;
};

#define OWN(field) IMC_OPT_SLOT(IMC_OPT_OWN, offsetof(struct opts, field))

static const struct imc_opt own_opts[] = {
    IMC_OPT("file", 'f', IMC_OPT_STR, OWN(file), "FILE",
            "tokenize the contents of FILE instead of TEXT"),
    IMC_OPT("no-bos", 0, IMC_OPT_FLAG, OWN(no_bos), NULL, "do not put the BOS token first"),
    IMC_OPT("ids", 0, IMC_OPT_FLAG, OWN(ids_only), NULL,
            "print only the ids, space-separated, on one line"),
    IMC_OPT("parse-special", 0, IMC_OPT_FLAG, OWN(parse_special), NULL,
            "split out control tokens written in the text"),
    IMC_OPT_END,
};

static const struct imc_opt *const groups[] = {imc_opt_group_model, own_opts, imc_opt_group_log,
                                               NULL};

static const struct imc_opt_spec spec = {
    .usage = "-m MODEL [--no-bos] [--ids] [--parse-special] (TEXT | -f FILE)",
    .groups = groups,
    .notes = "MODEL may be a vocab-only GGUF. A TEXT that starts with '-' goes after --.",
    .min_pos = 0,
    .max_pos = 1,
    .pos_name = "TEXT",
};

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help.
static int parse(int argc, char **argv, struct opts *o)
{
    struct imc_opt_common c;
    char **pos = NULL;
    int n_pos = 0;
    int rc = imc_cli_parse(&imc_cmd_tokenize, argc, argv, o, &c, NULL, &pos, &n_pos);
    if (rc != 0) {
        return rc;
    }
    o->model = c.model;
    o->text = n_pos > 0 ? pos[0] : NULL;
    if (!o->model || (!o->text == !o->file)) {
        IMC_LOG_ERR("tokenize: %s (see imc tokenize --help)",
                    !o->model ? "missing -m MODEL" : "give either TEXT or -f FILE");
        return 2;
    }
    return 0;
}

static void print_ids(const struct imc_vocab *v, const int32_t *ids, size_t n, bool ids_only)
{
    if (ids_only) {
        for (size_t i = 0; i < n; i++) {
            printf(i ? " %d" : "%d", ids[i]);
        }
        printf("\n");
        return;
    }
    char small[256];
    for (size_t i = 0; i < n; i++) {
        size_t len = imc_vocab_token_to_piece(v, ids[i], small, sizeof(small));
        char *piece = small;
        if (len >= sizeof(small) && (piece = malloc(len + 1)) != NULL) {
            imc_vocab_token_to_piece(v, ids[i], piece, len + 1);
        }
        printf("%6d -> '", ids[i]);
        fwrite(piece ? piece : "", 1, piece ? len : 0, stdout);
        printf("'\n");
        if (piece != small) {
            free(piece);
        }
    }
}

static int run(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc != 0) {
        return rc < 0 ? 0 : rc;
    }
    char *buf = NULL;
    size_t len = o.text ? strlen(o.text) : 0;
    if (o.file && imc_file_read_all(o.file, &buf, &len) != IMC_OK) {
        return 1;
    }
    struct imc_gguf *g = NULL;
    struct imc_vocab *v = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    enum imc_status st = imc_gguf_open(&g, o.model);
    if (st == IMC_OK) {
        st = imc_vocab_load(&v, g);
    }
    imc_gguf_free(g); // the vocabulary keeps copies
    if (st == IMC_OK) {
        bool bos = imc_vocab_add_bos(v) && !o.no_bos;
        st = imc_vocab_tokenize(v, buf ? buf : o.text, len, bos, o.parse_special, &ids, &n);
    }
    if (st == IMC_OK) {
        print_ids(v, ids, n, o.ids_only);
    }
    free(ids);
    imc_vocab_free(v);
    free(buf);
    return st == IMC_OK ? 0 : 1;
}

const struct imc_cli_cmd imc_cmd_tokenize = {
    .name = "tokenize",
    .summary = "print the token ids of a text (llama.cpp-compatible tokenizer)",
    .opts = &spec,
    .run = run,
};
