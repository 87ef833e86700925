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

static void usage(FILE *f)
{
    fprintf(f, "usage: imc tokenize -m MODEL [--no-bos] [--ids] [--parse-special] (TEXT | -f FILE)\n"
               "  -m, --model MODEL   GGUF file with the tokenizer (a vocab-only file will do)\n"
               "  -f, --file FILE     tokenize the contents of FILE instead of TEXT\n"
               "  --no-bos            do not put the BOS token first\n"
               "  --ids               print only the ids, space-separated, on one line\n"
               "  --parse-special     split out control tokens written in the text\n"
               "  -v, -q, --log-level LEVEL\n");
}

// Returns 0 to run, 2 on a bad argument (logged), -1 after printing help.
static int parse(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int used = imc_cli_log_option(argc, argv, i);
        if (used > 0) {
            i += used - 1;
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            if (imc_cli_need_value("tokenize", argc, argv, i)) {
                return 2;
            }
            o->model = argv[++i];
        } else if (strcmp(a, "-f") == 0 || strcmp(a, "--file") == 0) {
            if (imc_cli_need_value("tokenize", argc, argv, i)) {
                return 2;
            }
            o->file = argv[++i];
        } else if (strcmp(a, "--no-bos") == 0) {
            o->no_bos = true;
        } else if (strcmp(a, "--ids") == 0) {
            o->ids_only = true;
        } else if (strcmp(a, "--parse-special") == 0) {
            o->parse_special = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        } else if (a[0] == '-' && a[1] != '\0') {
            IMC_LOG_ERR("tokenize: unknown option '%s' (see imc tokenize --help)", a);
            return 2;
        } else if (!o->text) {
            o->text = a;
        } else {
            IMC_LOG_ERR("tokenize: more than one TEXT argument ('%s'); quote the text", a);
            return 2;
        }
    }
    if (!o->model || (!o->text == !o->file)) {
        IMC_LOG_ERR("tokenize: %s", !o->model ? "missing -m MODEL" : "give either TEXT or -f FILE");
        usage(stderr);
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
    .run = run,
};
