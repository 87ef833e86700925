/*
 * coordinator/sweep_recipe: the recipe folder, the recipe format, the keys of the figures and
 * the per-recipe result files of `imc sweep` (sweep.h, sweep_priv.h).
 *
 * Result file (<name>.result, _base.result): text, one `key=value` per line after the first
 * line "imc-sweep-result 1"; numbers as %.17g (they read back to the same double), the hash as
 * 16 hex digits. Unknown keys are ignored, so later versions may add some.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coordinator/quantize.h"
#include "coordinator/share.h"
#include "coordinator/sweep_priv.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/log.h"
#include "model/gguf.h"
#include "mpi/comm.h"

#define RESULT_MAGIC "imc-sweep-result 1"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p) {
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    }
    return p;
}

char *imc_sweep_path(const struct imc_sweep *s, const char *name, const char *suffix)
{
    char *p = join(s->o.out_dir, name, suffix);
    if (!p) {
        IMC_LOG_ERR("sweep: out of memory");
    }
    return p;
}

// The recipe file names of dir (regular files, not starting with '.'), sorted; a new array of
// new strings in *names.
static enum imc_status list_dir(const char *dir, char ***names, int64_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        IMC_LOG_ERR("sweep: --rules-dir %s: cannot open: %s", dir, strerror(errno));
        return IMC_ERR_IO;
    }
    int64_t cap = 16, k = 0;
    char **v = malloc((size_t)cap * sizeof(*v));
    enum imc_status st = v ? IMC_OK : IMC_ERR_NOMEM;
    for (struct dirent *e; st == IMC_OK && (e = readdir(d));) {
        char *path = e->d_name[0] == '.' ? NULL : join(dir, e->d_name, "");
        struct stat sb;
        bool take = path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
        free(path);
        if (!take) {
            continue;
        }
        if (k == cap) {
            char **nv = realloc(v, (size_t)(cap *= 2) * sizeof(*v));
            st = nv ? IMC_OK : IMC_ERR_NOMEM;
            v = nv ? nv : v;
        }
        if (st == IMC_OK && !(v[k++] = strdup(e->d_name))) {
            k--;
            st = IMC_ERR_NOMEM;
        }
    }
    closedir(d);
    if (st != IMC_OK) {
        IMC_LOG_ERR("sweep: out of memory listing %s", dir);
        for (int64_t i = 0; i < k; i++) {
            free(v[i]);
        }
        free(v);
        return st;
    }
    qsort(v, (size_t)k, sizeof(*v), cmp_str);
    *names = v;
    *n = k;
    return IMC_OK;
}

// Recipe name of a file name: without its last extension; NULL (logged) when not file-safe.
static char *recipe_name(const char *dir, const char *file)
{
    const char *dot = strrchr(file, '.');
    size_t n = dot && dot != file ? (size_t)(dot - file) : strlen(file);
    bool ok = n > 0 && isalnum((unsigned char)file[0]);
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)file[i]) || strchr("._+-", file[i]) != NULL;
    }
    if (!ok) {
        IMC_LOG_ERR("sweep: %s/%s: a recipe name (the file name without its extension) must "
                    "start with a letter or digit and hold only letters, digits and . _ + -",
                    dir, file);
        return NULL;
    }
    char *name = strndup(file, n);
    if (!name) {
        IMC_LOG_ERR("sweep: out of memory");
    }
    return name;
}

const char *imc_sweep_recipe_type(const struct imc_sweep_recipe *r)
{
    return r->external && r->type_name[0] ? r->type_name : imc_type_name(r->type);
}

// "!external CMD": the rest of the line (s after "external"), trimmed, is the command template.
static enum imc_status parse_external(struct imc_sweep_recipe *r, const char *s,
                                      const char *where, unsigned *seen)
{
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r", s[n - 1])) {
        n--;
    }
    if (n == 0 || (*seen & 4u)) {
        IMC_LOG_ERR("%s: %s", where,
                    n ? "the directive is given twice"
                      : "expected '!external CMD' (a command template, as quantize --external's)");
        return IMC_ERR_ARG;
    }
    *seen |= 4u;
    if (!(r->external = strndup(s, n))) {
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    return IMC_OK;
}

// One directive line "!word value" (s after the '!'); where = "path:line". !type is checked
// once all directives are read (an external quantizer takes it verbatim).
static enum imc_status parse_directive(struct imc_sweep_recipe *r, char *s, const char *where,
                                       unsigned *seen)
{
    if (strncmp(s, "external", 8) == 0 && (s[8] == '\0' || strchr(" \t\r", s[8]))) {
        return parse_external(r, s + 8, where, seen);
    }
    char *save = NULL, *word = strtok_r(s, " \t\r", &save);
    char *value = word ? strtok_r(NULL, " \t\r", &save) : NULL;
    char *extra = value ? strtok_r(NULL, " \t\r", &save) : NULL;
    unsigned bit = word && strcmp(word, "type") == 0      ? 1u
                   : word && strcmp(word, "imatrix") == 0 ? 2u
                                                          : 0u;
    if (!bit) {
        IMC_LOG_ERR("%s: unknown directive '!%s' (known: !type TYPE, !imatrix yes|no, "
                    "!external CMD)",
                    where, word ? word : "");
        return IMC_ERR_ARG;
    }
    if (!value || extra || (*seen & bit)) {
        IMC_LOG_ERR("%s: %s", where,
                    *seen & bit ? "the directive is given twice"
                    : bit == 1  ? "expected '!type TYPE'"
                                : "expected '!imatrix yes' or '!imatrix no'");
        return IMC_ERR_ARG;
    }
    *seen |= bit;
    if (bit == 1) {
        if (!imc_quantize_is_type_word(value) || strlen(value) >= sizeof(r->type_name)) {
            IMC_LOG_ERR("%s: '!type %s': a type name is letters, digits and '_'", where, value);
            return IMC_ERR_ARG;
        }
        snprintf(r->type_name, sizeof(r->type_name), "%s", value);
        return IMC_OK;
    }
    if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
        IMC_LOG_ERR("%s: expected '!imatrix yes' or '!imatrix no', got '%s'", where, value);
        return IMC_ERR_ARG;
    }
    r->use_imatrix = r->use_imatrix && strcmp(value, "yes") == 0;
    return IMC_OK;
}

// Parses the recipe text: directives first (each line then blanked), then the rules.
static enum imc_status parse_recipe(struct imc_sweep_recipe *r, char *text)
{
    enum imc_status st = IMC_OK;
    unsigned seen = 0;
    char *p = text;
    for (int line = 1; st == IMC_OK && p && *p; line++) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        size_t lead = strspn(p, " \t");
        if (lead < len && p[lead] == '!') {
            char where[PATH_MAX + 32];
            snprintf(where, sizeof(where), "%s:%d", r->path, line);
            char *dir = strndup(p + lead + 1, len - lead - 1);
            const unsigned before = seen;
            st = dir ? parse_directive(r, dir, where, &seen) : IMC_ERR_NOMEM;
            r->type_line = (seen & ~before & 1u) ? line : r->type_line; // !type, checked below
            free(dir);
            memset(p, ' ', len); // the rules parser sees a blank line
        }
        p = nl ? nl + 1 : NULL;
    }
    if (st == IMC_OK && r->type_name[0] && !r->external) {
        char where[PATH_MAX + 32];
        snprintf(where, sizeof(where), "%s:%d", r->path, r->type_line);
        int t = imc_quant_type_parse(r->type_name, where);
        r->type = (enum imc_type)(t < 0 ? 0 : t);
        st = t < 0 ? IMC_ERR_ARG : IMC_OK;
    }
    r->rules.any_known = r->external != NULL; // it may write types imc only reads
    if (st == IMC_OK) {
        st = imc_quant_rules_parse_text(&r->rules, text, r->path);
    }
    return st;
}

// Recipe r from its file name and bytes (copied).
static enum imc_status load_one(struct imc_sweep *s, struct imc_sweep_recipe *r, const char *file,
                                const char *bytes, size_t len)
{
    imc_quant_rules_init(&r->rules);
    r->type = s->o.type;
    r->use_imatrix = s->o.imatrix != NULL;
    if (!(r->name = recipe_name(s->o.rules_dir, file))) {
        return IMC_ERR_ARG;
    }
    r->path = join(s->o.rules_dir, file, "");
    r->text = malloc(len + 1);
    char *text = malloc(len + 1); // parse_recipe blanks the directives of its copy
    if (!r->path || !r->text || !text) {
        free(text);
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    memcpy(r->text, bytes, len);
    r->text[len] = '\0';
    r->text_len = len;
    memcpy(text, r->text, len + 1);
    enum imc_status st = parse_recipe(r, text);
    free(text);
    return st;
}

// A packed folder: per recipe file, in name order, its name and its bytes, each as a uint64
// length (native order: every rank runs the same binary) and the bytes.
struct pack {
    char *p;
    size_t n, cap;
};

static bool pack_put(struct pack *k, const void *data, size_t len)
{
    const uint64_t l = len;
    if (k->n + sizeof(l) + len > k->cap) {
        size_t cap = (k->cap + sizeof(l) + len) * 2;
        char *np = realloc(k->p, cap);
        if (!np) {
            return false;
        }
        k->p = np;
        k->cap = cap;
    }
    memcpy(k->p + k->n, &l, sizeof(l));
    memcpy(k->p + k->n + sizeof(l), data, len);
    k->n += sizeof(l) + len;
    return true;
}

// The next field of a pack at *off (its bytes in *data, *len); false at the end.
static bool pack_get(const char *p, size_t n, size_t *off, const char **data, size_t *len)
{
    uint64_t l = 0;
    if (n - *off < sizeof(l)) {
        return false;
    }
    memcpy(&l, p + *off, sizeof(l));
    IMC_ASSERT(l <= n - *off - sizeof(l));
    *data = p + *off + sizeof(l);
    *len = (size_t)l;
    *off += sizeof(l) + (size_t)l;
    return true;
}

// Reads the recipe files of dir into a new pack (*out, free() its p) holding *n recipes.
static enum imc_status read_folder(const char *dir, struct pack *out, int64_t *n)
{
    char **files = NULL;
    IMC_TRY(list_dir(dir, &files, n));
    enum imc_status st = IMC_OK;
    if (*n == 0) {
        IMC_LOG_ERR("sweep: --rules-dir %s holds no recipe file (names starting with '.' are "
                    "skipped)",
                    dir);
        st = IMC_ERR_ARG;
    }
    for (int64_t i = 0; st == IMC_OK && i < *n; i++) {
        char *path = join(dir, files[i], ""), *text = NULL;
        size_t len = 0;
        st = path ? imc_file_read_all(path, &text, &len) : IMC_ERR_NOMEM;
        if (st == IMC_OK && !(pack_put(out, files[i], strlen(files[i])) &&
                              pack_put(out, text, len))) {
            st = IMC_ERR_NOMEM;
        }
        if (st == IMC_ERR_NOMEM) {
            IMC_LOG_ERR("sweep: out of memory reading %s", dir);
        }
        free(text);
        free(path);
    }
    for (int64_t i = 0; i < *n; i++) {
        free(files[i]);
    }
    free(files);
    return st;
}

// Parses the recipes of a pack into s->rec.
static enum imc_status parse_folder(struct imc_sweep *s, const char *p, size_t size)
{
    int64_t n = 0;
    const char *d = NULL;
    size_t len = 0;
    for (size_t off = 0; pack_get(p, size, &off, &d, &len);) {
        n++;
    }
    if (!(s->rec = calloc((size_t)(n / 2 > 0 ? n / 2 : 1), sizeof(*s->rec)))) {
        IMC_LOG_ERR("sweep: out of memory");
        return IMC_ERR_NOMEM;
    }
    enum imc_status st = IMC_OK;
    size_t off = 0;
    for (int64_t i = 0; st == IMC_OK && i < n / 2; i++) {
        const char *name = NULL, *text = NULL;
        size_t name_len = 0, text_len = 0;
        pack_get(p, size, &off, &name, &name_len);
        pack_get(p, size, &off, &text, &text_len);
        char *file = strndup(name, name_len);
        s->n = i + 1;
        st = file ? load_one(s, &s->rec[i], file, text, text_len) : IMC_ERR_NOMEM;
        free(file);
        for (int64_t j = 0; st == IMC_OK && j < i; j++) {
            if (strcmp(s->rec[j].name, s->rec[i].name) == 0) {
                IMC_LOG_ERR("sweep: %s and %s give the same recipe name '%s'", s->rec[j].path,
                            s->rec[i].path, s->rec[i].name);
                st = IMC_ERR_ARG;
            }
        }
    }
    return st;
}

enum imc_status imc_sweep_load_recipes(struct imc_sweep *s)
{
    const bool root = !s->o.comm || imc_comm_rank(s->o.comm) == 0;
    struct pack k = {0};
    int64_t n = 0;
    enum imc_status st = IMC_OK;
    if (root) { // rank 0 parses first, so that a bad recipe is reported once
        st = read_folder(s->o.rules_dir, &k, &n);
        st = st == IMC_OK ? parse_folder(s, k.p, k.n) : st;
    }
    st = imc_share_bytes(s->o.comm, st, &k.p, &k.n);
    if (st == IMC_OK && !root) {
        st = parse_folder(s, k.p, k.n);
    }
    free(k.p);
    return st;
}

// Adds a tagged field to hash h: the tag, its NUL, the length (8 bytes LE) and the bytes.
static uint64_t mix(uint64_t h, const char *tag, const void *p, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++) {
        len[i] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    h = imc_hash_fnv1a(h, tag, strlen(tag) + 1);
    h = imc_hash_fnv1a(h, len, sizeof(len));
    return imc_hash_fnv1a(h, p, n);
}

static uint64_t mix_str(uint64_t h, const char *tag, const char *v)
{
    return mix(h, tag, v, strlen(v));
}

// Mixes a file's identity: real path, size and modification time (not its bytes: a model is
// too large to read for this).
static enum imc_status mix_file_id(uint64_t *h, const char *tag, const char *path)
{
    struct stat sb;
    char real[PATH_MAX];
    if (stat(path, &sb) != 0 || !realpath(path, real)) {
        IMC_LOG_ERR("sweep: %s: %s", path, strerror(errno));
        return IMC_ERR_IO;
    }
    char id[PATH_MAX + 64];
    snprintf(id, sizeof(id), "%s|%lld|%lld.%09ld", real, (long long)sb.st_size,
             (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
    *h = mix_str(*h, tag, id);
    return IMC_OK;
}

static enum imc_status mix_file_bytes(uint64_t *h, const char *tag, const char *path)
{
    char *data = NULL;
    size_t n = 0;
    IMC_TRY(imc_file_read_all(path, &data, &n));
    *h = mix(*h, tag, data, n);
    free(data);
    return IMC_OK;
}

// The keys, computed here (world rank 0 or one process).
static enum imc_status compute_keys(struct imc_sweep *s)
{
    const struct imc_sweep_opts *o = &s->o;
    uint64_t b = mix_str(IMC_HASH_FNV_INIT, "imc-sweep", "1");
    IMC_TRY(mix_file_id(&b, "base", o->base));
    IMC_TRY(mix_file_bytes(&b, "text", o->text));
    char nums[64];
    snprintf(nums, sizeof(nums), "%lld/%lld", (long long)o->n_ctx,
             (long long)(o->max_chunks > 0 ? o->max_chunks : 0));
    b = mix_str(b, "ctx/chunks", nums);
    s->base_key = mix_str(b, "matmul", imc_matmul_mode_name(o->matmul));
    uint64_t im = IMC_HASH_FNV_INIT;
    if (o->imatrix) {
        IMC_TRY(mix_file_id(&im, "imatrix", o->imatrix));
    }
    for (int64_t i = 0; i < s->n; i++) {
        struct imc_sweep_recipe *r = &s->rec[i];
        uint64_t h = mix(s->base_key, "base-key", &s->base_key, sizeof(s->base_key));
        h = mix(h, "recipe", r->text, r->text_len); // the bytes of its file
        h = mix_str(h, "type", imc_sweep_recipe_type(r));
        h = r->external ? mix_str(h, "external", r->external) : h;
        h = mix_str(h, "imatrix", r->use_imatrix ? "yes" : "no");
        r->hash = r->use_imatrix ? mix(h, "imatrix-id", &im, sizeof(im)) : h;
    }
    return IMC_OK;
}

enum imc_status imc_sweep_compute_keys(struct imc_sweep *s)
{
    const bool root = !s->o.comm || imc_comm_rank(s->o.comm) == 0;
    size_t n = (size_t)(s->n + 1) * sizeof(uint64_t);
    uint64_t *keys = root ? malloc(n) : NULL;
    enum imc_status st = root && !keys ? IMC_ERR_NOMEM : IMC_OK;
    if (root && st == IMC_OK && (st = compute_keys(s)) == IMC_OK) {
        keys[0] = s->base_key;
        for (int64_t i = 0; i < s->n; i++) {
            keys[i + 1] = s->rec[i].hash;
        }
    }
    if (st == IMC_ERR_NOMEM) {
        IMC_LOG_ERR("sweep: out of memory");
    }
    char *bytes = (char *)keys;
    st = imc_share_bytes(s->o.comm, st, &bytes, &n);
    if (st == IMC_OK && !root) {
        IMC_ASSERT(n == (size_t)(s->n + 1) * sizeof(uint64_t));
        memcpy(&s->base_key, bytes, sizeof(uint64_t));
        for (int64_t i = 0; i < s->n; i++) {
            memcpy(&s->rec[i].hash, bytes + (size_t)(i + 1) * sizeof(uint64_t), sizeof(uint64_t));
        }
    }
    free(bytes);
    return st;
}

enum imc_status imc_sweep_result_write(const char *path, const char *name,
                                       const struct imc_sweep_figures *f)
{
    struct imc_afile af;
    IMC_TRY(imc_afile_open(&af, path));
    fprintf(af.f,
            RESULT_MAGIC "\nrecipe=%s\nhash=%016" PRIx64 "\nsize_bytes=%" PRIu64
                         "\nn_weights=%" PRIu64 "\nbpw=%.17g\nppl=%.17g\nppl_err=%.17g\n"
                         "kld=%.17g\nkld_err=%.17g\nsame_top=%.17g\nsame_top_err=%.17g\n",
            name, f->hash, f->size_bytes, f->n_weights, f->bpw, f->ppl, f->ppl_err, f->kld,
            f->kld_err, f->same_top, f->same_top_err);
    if (ferror(af.f)) {
        IMC_LOG_ERR("%s: write failed", path);
        imc_afile_abort(&af);
        return IMC_ERR_IO;
    }
    return imc_afile_commit(&af);
}

#define RESULT_FIELDS 10

// Stores the value of one "key=value" line into f; returns the key's bit (0: unknown or bad).
static unsigned parse_field(struct imc_sweep_figures *f, const char *key, const char *v)
{
    const struct {
        const char *key;
        double *d;   // a double field, or
        uint64_t *u; // an integer field read in base
        int base;
    } fields[RESULT_FIELDS] = {
        {"bpw", &f->bpw, NULL, 0},
        {"ppl", &f->ppl, NULL, 0},
        {"ppl_err", &f->ppl_err, NULL, 0},
        {"kld", &f->kld, NULL, 0},
        {"kld_err", &f->kld_err, NULL, 0},
        {"same_top", &f->same_top, NULL, 0},
        {"same_top_err", &f->same_top_err, NULL, 0},
        {"hash", NULL, &f->hash, 16},
        {"size_bytes", NULL, &f->size_bytes, 10},
        {"n_weights", NULL, &f->n_weights, 10},
    };
    for (int i = 0; i < RESULT_FIELDS; i++) {
        if (strcmp(key, fields[i].key) == 0) {
            char *end = NULL;
            if (fields[i].d) {
                *fields[i].d = strtod(v, &end);
            } else {
                *fields[i].u = strtoull(v, &end, fields[i].base);
            }
            return *v && *end == '\0' ? 1u << i : 0;
        }
    }
    return 0;
}

bool imc_sweep_result_read(const char *path, uint64_t hash, struct imc_sweep_figures *f,
                           bool *changed)
{
    *changed = false;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return false;
    }
    char *text = NULL;
    size_t size = 0;
    if (imc_file_read_all(path, &text, &size) != IMC_OK) {
        return false;
    }
    memset(f, 0, sizeof(*f));
    unsigned found = 0;
    bool magic = strncmp(text, RESULT_MAGIC "\n", strlen(RESULT_MAGIC) + 1) == 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); magic && line;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            found |= parse_field(f, line, eq + 1);
        }
    }
    free(text);
    if (!magic || found != (1u << RESULT_FIELDS) - 1) {
        IMC_LOG_WRN("%s: not a complete sweep result: recomputing", path);
        return false;
    }
    *changed = f->hash != hash;
    f->done = !*changed;
    f->rank = -1;
    return f->done;
}

enum imc_status imc_sweep_measure(const char *path, struct imc_sweep_figures *f)
{
    struct imc_gguf *g = NULL;
    IMC_TRY(imc_gguf_open(&g, path));
    uint64_t bytes = 0, elems = 0;
    for (int64_t i = 0; i < imc_gguf_n_tensors(g); i++) {
        const struct imc_tensor_info *t = imc_gguf_tensor(g, i);
        if (imc_quantize_is_target(t)) {
            bytes += t->nbytes;
            elems += (uint64_t)imc_tensor_elems(t);
        }
    }
    f->size_bytes = imc_gguf_file_size(g);
    f->n_weights = elems;
    f->bpw = elems ? 8.0 * (double)bytes / (double)elems : 0.0;
    imc_gguf_free(g);
    return IMC_OK;
}
