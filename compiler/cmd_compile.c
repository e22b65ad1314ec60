/* cmd_compile.c — `gemmac compile`: a model ahead of time.
 *
 * The model is opened and bound like `gemmac run` does (so a wrong
 * checkpoint fails here, not later), its distinct kernels are compiled by
 * LLVM for the chosen target (backends/llvm/aot.h) and, for --emit exe (the
 * default), linked by `cc` with gemmac's own LLVM-free libraries into a
 * standalone executable whose main is compiler/aot_main.c. Those libraries
 * are found beside the running gemmac (its build tree), not at paths fixed
 * when gemmac was built. --emit lib instead merges the object and those
 * libraries (but the executable's main) into the static library NAME.a, with
 * NAME.h declaring its C API (aot_lib.h). Every output is written to a
 * temporary name and renamed, so a failed or interrupted compile leaves no
 * NAME (nor NAME.a or NAME.h) behind.
 *
 * With --embed-weights the checkpoint file (one .safetensors or .gguf; a
 * sharded checkpoint is refused) and the tokenizer.model beside a
 * safetensors file, when there is one, go inside the object (aot.h), each
 * with its size and FNV-1a hash for the manifest, so the executable runs
 * after the checkpoint is gone. */
#include "backends/llvm/aot.h"
#include "cli.h"
#include "json_format.h"
#include "model.h"
#include "report.h"
#include "targets.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char usage[] =
    "usage: gemmac compile <model> -o NAME [--target T] [--cpu NAME] [--gpu SM] [--emit KIND] [--weights DIR]\n"
    "                      [--embed-weights] [--report] [-O0|-O1|-O2] [--passes LIST]\n"
    "  <model>          a Hugging Face checkpoint dir, its config.json, a .gguf file, or a\n"
    "                   description .json with --weights\n"
    "  -o NAME          the output file\n"
    "  --target T       native (default: this CPU), x86_64, x86_64-v3 (AVX2), x86_64-v4 (AVX-512),\n"
    "                   aarch64 (64-bit Arm Linux) or nvptx (NVIDIA GPUs; `gemmac targets` lists them)\n"
    "  --gpu SM         nvptx: the PTX's architecture, sm_80 (default), sm_86, sm_89 or sm_90;\n"
    "                   the driver compiles it for the GPU present (any as new or newer)\n"
    "  --cpu NAME       aarch64: the Arm CPU (generic by default, neoverse-v1, cortex-a76, ...);\n"
    "                   LLVM takes its features (bf16, fp16, dot products) from the name\n"
    "  --emit KIND      exe (default): a standalone executable; lib: NAME.a and NAME.h, the model\n"
    "                   as a static library for C programs; obj, asm or llvm-ir: the kernels\n"
    "                   (for nvptx, asm is the PTX and obj the host object that carries it)\n"
    "  --weights DIR    the checkpoint, when <model> is a description\n"
    "  --embed-weights  put the checkpoint file (not a sharded one) and its tokenizer.model\n"
    "                   inside NAME, which then needs neither\n"
    "  --report         list every kernel call, the ops it absorbed and the bytes it reads and\n"
    "                   writes per token (with no -o: only the report)\n"
    CLI_PIPELINE_HELP
    "NAME takes the flags of `gemmac run` (without MODEL), `NAME logits --tokens ...` is the\n"
    "logits probe, and `NAME --version` prints what it was compiled from. It reads the\n"
    "checkpoint from the path it was compiled with (or --weights DIR) unless it embeds it,\n"
    "and does not need LLVM. It reruns exactly the passes it was compiled after.\n";

/* The static libraries an executable links, in link order (aot_main first);
 * a library (--emit lib) holds those from gm_aot_model on. */
static const char *const libraries[] = {"gm_aot", "gm_aot_model", "gm_cli", "gm_compiler", "gm_exec", "gm_ir", "gm_runtime"};
#define N_LIBRARIES (int)(sizeof libraries / sizeof *libraries)
static const char *const system_libs[] = {"-lsentencepiece", "-lcjson", "-lopenblas", "-lstdc++", "-lm", "-lpthread"};
#define N_SYSTEM (int)(sizeof system_libs / sizeof *system_libs)

typedef struct {
    const char *model, *out, *target, *gpu, *cpu, *weights;
    const gm_target_row *row;   /* the target's row (targets.h) */
    lv_emit_kind kind;
    int exe, lib, embed, report;
    gm_pipeline_opts pipeline;
} compile_args;

static int parse_emit(const char *v, compile_args *a) {
    static const struct {
        const char *name;
        lv_emit_kind kind;
    } kinds[] = {{"exe", LV_EMIT_OBJ}, {"lib", LV_EMIT_OBJ}, {"obj", LV_EMIT_OBJ}, {"asm", LV_EMIT_ASM}, {"llvm-ir", LV_EMIT_LLVM_IR}};
    for (int i = 0; i < 5; i++)
        if (!strcmp(v, kinds[i].name)) return a->kind = kinds[i].kind, a->exe = i == 0, a->lib = i == 1, 0;
    return cli_usage_error("compile", "--emit: expected exe, lib, obj, asm or llvm-ir, found \"%s\"", v);
}

static int parse_args(int argc, char **argv, compile_args *a) {
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = cli_value(argc, argv, &i, "-o"))) a->out = v;
        else if ((v = cli_value(argc, argv, &i, "--target"))) a->target = v;
        else if ((v = cli_value(argc, argv, &i, "--gpu"))) a->gpu = v;
        else if ((v = cli_value(argc, argv, &i, "--cpu"))) a->cpu = v;
        else if ((v = cli_value(argc, argv, &i, "--weights"))) a->weights = v;
        else if (cli_is(argv[i], "--embed-weights")) a->embed = 1;
        else if ((v = cli_value(argc, argv, &i, "--emit"))) {
            if (parse_emit(v, a)) return 2;
        } else if (cli_is(argv[i], "--report")) a->report = 1;
        else if (cli_pipeline_flag(argc, argv, &i, &a->pipeline)) continue;
        else if (argv[i][0] == '-') return cli_usage_error("compile", "unknown flag %s", argv[i]);
        else if (!a->model) a->model = argv[i];
        else return cli_usage_error("compile", "unexpected argument %s", argv[i]);
    }
    if (!a->model) return cli_usage_error("compile", "no model given");
    if (a->pipeline.weights_dtype)
        return cli_usage_error("compile", "--weights-dtype: an executable carries its weights as stored; quantize the "
                                          "checkpoint first (gemmac quantize CKPT --to %s -o m.gguf) and compile that",
                               a->pipeline.weights_dtype);
    if (!a->out && !a->report) return cli_usage_error("compile", "-o NAME is required");
    if (a->lib && a->out && a->out[strspn(a->out, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+")])
        return cli_usage_error("compile", "-o %s: --emit lib needs paths of letters, digits and / . _ - + only (ar -M)",
                               a->out);
    if (!(a->row = gm_target_find(a->target)))
        return cli_usage_error("compile", "--target: unknown target \"%s\" (available: %s; gemmac targets lists them)",
                               a->target, gm_target_names());
    if (!a->row->cc)
        return cli_usage_error("compile", "--target %s: a backend of gemmac run, not a compile target (available: %s)",
                               a->target, gm_target_names());
    /* --cpu and --gpu are checked here, against the tables the targets compile with. */
    int arm = !strcmp(a->row->name, "aarch64"), gpu = !strcmp(a->row->name, "nvptx");
    if (a->cpu && !arm)
        return cli_usage_error("compile", "--cpu %s: --cpu picks the Arm CPU of --target aarch64 (x86-64 has levels "
                                          "instead: --target x86_64-v3 or x86_64-v4)", a->cpu);
    if (a->cpu && !aarch64_cpu_known(a->cpu))
        return cli_usage_error("compile", "--cpu: unknown Arm CPU \"%s\" (available: %s)", a->cpu, aarch64_cpu_names());
    if (a->gpu && !gpu)
        return cli_usage_error("compile", "--gpu %s: --gpu picks the GPU architecture of --target nvptx", a->gpu);
    if (a->gpu && !nv_gpu_known(a->gpu))
        return cli_usage_error("compile", "--gpu: unknown GPU \"%s\" (available: %s)", a->gpu, nv_gpu_names());
    if (!a->gpu) a->gpu = "sm_80";
    return cli_check_options("compile", &a->pipeline);
}

/* Where the runtime libraries are: beside the running gemmac in its build
 * tree, or in ../lib/gemmac when it is installed (cmake --install). */
static int own_dir(char *dir, size_t len, gm_err *e) {
    ssize_t n = readlink("/proc/self/exe", dir, len - 1);
    if (n <= 0) return gm_fail(e, "cannot find the gemmac executable (/proc/self/exe)");
    dir[n] = 0;
    *strrchr(dir, '/') = 0;
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/libgm_runtime.a", dir);
    if (access(probe, R_OK) && strlen(dir) + 16 < len) strcat(dir, "/../lib/gemmac");
    return 0;
}

/* paths[i]: library i of the target's runtime beside gemmac; -1 after reporting one missing. */
static int library_paths(const gm_target_row *t, char paths[N_LIBRARIES][PATH_MAX + 64], gm_err *e) {
    char dir[PATH_MAX];
    if (own_dir(dir, sizeof dir, e)) return -1;
    for (int i = 0; i < N_LIBRARIES; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s%slib%s.a", dir, t->lib_dir, *t->lib_dir ? "/" : "", libraries[i]);
        if (access(paths[i], R_OK) && *t->lib_dir)
            return gm_fail(e, "%s: not found: the %s runtime is built with gemmac when its cross toolchain is installed "
                              "(scripts/deps.sh as root, then rebuild)", paths[i], t->name);
        if (access(paths[i], R_OK))
            return gm_fail(e, "%s: not found; gemmac compile needs its build tree or its installation", paths[i]);
    }
    return 0;
}

/* Runs argv (its standard input from the file in_path, when not NULL) to
 * make out (named so in messages; hint says where the tool comes from); -1
 * after reporting. */
static int spawn(const char *const *argv, const char *in_path, const char *out, const char *hint, gm_err *e) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (in_path) posix_spawn_file_actions_addopen(&fa, 0, in_path, O_RDONLY, 0);
    pid_t pid;
    int status = 0, err = posix_spawnp(&pid, argv[0], &fa, NULL, (char **)argv, environ);
    if (!err && waitpid(pid, &status, 0) < 0) err = errno;
    posix_spawn_file_actions_destroy(&fa);
    if (err) return gm_fail(e, "%s: cannot run %s to make it: %s; %s", out, argv[0], strerror(err), hint);
    if (WIFSIGNALED(status))
        return gm_fail(e, "%s: %s was killed by signal %d while making it", out, argv[0], WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return gm_fail(e, "%s: %s failed making it (exit status %d; its messages, if any, are above)", out, argv[0],
                       WEXITSTATUS(status));
    return 0;
}

/* CC -o exe obj <the target's runtime libraries> <system libraries>; -1 after reporting. */
static int link_exe(const gm_target_row *t, const char *obj, const char *exe, const char *out, gm_err *e) {
    char paths[N_LIBRARIES][PATH_MAX + 64], deps[PATH_MAX + 64];
    if (library_paths(t, paths, e) || (t->deps_dir && own_dir(deps, PATH_MAX, e))) return -1;
    const char *argv[8 + N_LIBRARIES + N_SYSTEM] = {t->cc, "-o", exe, obj};
    int n = 4;
    if (t->deps_dir) snprintf(deps + strlen(deps), sizeof deps - strlen(deps), "/%s", t->deps_dir), argv[n++] = "-L", argv[n++] = deps;
    for (int i = 0; i < N_LIBRARIES; i++) argv[n++] = paths[i];
    for (int i = 0; i < N_SYSTEM; i++) argv[n++] = system_libs[i];
#ifdef GM_SANITIZE_LINK
    if (!*t->lib_dir) argv[n++] = GM_SANITIZE_LINK; /* this machine's libraries are a sanitizer build's */
#endif
    return spawn(argv, NULL, out,
                 *t->lib_dir ? "gemmac compile links with it: scripts/deps.sh installs the cross toolchain"
                             : "gemmac compile links with cc: install a C compiler (gcc or clang) as cc on PATH",
                 e);
}

/* ar's MRI scripts take file names of these characters only. */
static int mri_safe(const char *path, gm_err *e) {
    for (const char *p = path; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/._-+", *p))
            return gm_fail(e, "%s: --emit lib needs paths of letters, digits and / . _ - + only (ar -M)", path);
    return 0;
}

/* The static library lib: obj and gemmac's libraries from gm_aot_model on,
 * merged by an `ar -M` script (written to script); -1 after reporting. */
static int make_lib(const gm_target_row *t, const char *obj, const char *lib, const char *out, const char *script,
                    gm_err *e) {
    char paths[N_LIBRARIES][PATH_MAX + 64];
    if (library_paths(t, paths, e) || mri_safe(obj, e) || mri_safe(lib, e)) return -1;
    gm_buf b = {0};
    gm_buf_printf(&b, "create %s\naddmod %s\n", lib, obj);
    int rc = 0;
    for (int i = 1; i < N_LIBRARIES && !rc; i++)
        if (strcmp(libraries[i], "gm_cli")) rc = mri_safe(paths[i], e) || (gm_buf_printf(&b, "addlib %s\n", paths[i]), 0);
    gm_buf_printf(&b, "save\nend\n");
    if (!rc) rc = gm_write_file_atomic(script, b.s, strlen(b.s), e);
    free(b.s);
    if (!rc)
        rc = spawn((const char *[]){"ar", "-M", NULL}, script, out, "--emit lib merges with ar: install binutils", e);
    unlink(script);
    return rc;
}

/* The declarations of compiler/aot_lib.h, for NAME.h: keep them in step. */
/* The text of compiler/aot_lib_api.h, embedded by the build. */
static const char lib_api[] =
#include "aot_lib_api.inc"
    ;

/* NAME.h (to path) for the library of model: its API, and how to link it. */
static int write_header(const char *path, const compile_args *a, const char *model, gm_err *e) {
    const char *base = strrchr(a->out, '/') ? strrchr(a->out, '/') + 1 : a->out;
    gm_buf b = {0}, guard = {0};
    gm_buf_puts(&guard, "GM_LIB_");
    for (const char *p = base; *p; p++) gm_buf_printf(&guard, "%c", isalnum((unsigned char)*p) ? toupper((unsigned char)*p) : '_');
    gm_buf_printf(&b, "/* %s.h — the Gemma model \"%s\" compiled by gemmac %s for %s%s.\n"
                      " * Link: %s prog.c %s.a", base, model, GM_VERSION, a->target,
                  a->embed ? ", weights embedded" : "", a->row->cc, base);
    for (int i = 0; i < N_SYSTEM; i++) gm_buf_printf(&b, " %s", system_libs[i]);
    gm_buf_printf(&b, "\n * One model per program: the names below are the same in every such library. */\n"
                      "#ifndef %s_H\n#define %s_H\n\n#include <stddef.h>\n#include <stdint.h>\n\n"
                      "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n%s\n#ifdef __cplusplus\n}\n#endif\n\n#endif\n",
                  guard.s, guard.s, lib_api);
    int rc = gm_write_file_atomic(path, b.s, strlen(b.s), e);
    free(b.s);
    free(guard.s);
    return rc;
}

/* b for the file at path (made absolute in real): its size and hash. */
static int blob_of(const char *path, const char *name, const char *role, char *real, lv_aot_blob *b, gm_err *e) {
    void *map;
    if (!realpath(path, real)) return gm_fail(e, "%s: cannot embed: %s", path, strerror(errno));
    if (gm_map_file(real, role, &map, &b->size, e)) return -1;
    *b = (lv_aot_blob){name, role, real, b->size, gm_fnv1a(GM_FNV1A_SEED, map, b->size)};
    munmap(map, b->size);
    return 0;
}

/* Whether value v is read by a node. */
static int is_read(const ir_graph *g, int v) {
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < ir_ops[g->nodes[i].op].n_inputs; k++)
            if (g->nodes[i].in[k] == v) return 1;
    return 0;
}

/* Whether checkpoint tensor `name` is read only through packed copies: no
 * node reads it as stored, and every weight derived from it is packed. */
static int packed_only(const ir_graph *g, const char *name) {
    int copies = 0;
    for (int v = 0; v < g->n_values; v++) {
        const ir_value *w = &g->values[v];
        if (w->kind != IR_WEIGHT) continue;
        if (!w->derived_from && !strcmp(w->name, name) && is_read(g, v)) return 0;
        if (!w->derived_from || strcmp(w->derived_from, name)) continue;
        if (!w->panel) return 0;
        copies++;
    }
    return copies > 0;
}

/* Whether tensor `name` is one of the n "NAME DTYPE ROWS COLS" lines. */
static int is_listed(char *const *listed, int n, const char *name) {
    size_t len = strlen(name);
    for (int k = 0; k < n; k++)
        if (!strncmp(listed[k], name, len) && listed[k][len] == ' ') return 1;
    return 0;
}

/* The GGUF an executable carries beside its packed weights: m's file less
 * the tensors only their packed copies are read from, which it lists under
 * GM_PACKED_ONLY_KEY for model.c to bind (so the weights are there once).
 * 1 when written to path, 0 when nothing is left out, -1 after reporting. */
static int slim_checkpoint(const gm_model *m, const char *path, gm_err *e) {
    const ir_graph *g = m->graph;
    char **listed = gm_calloc(gguf_tensor_count(m->gguf) + 1, sizeof *listed);
    int n = 0, rc = 0;
    for (int i = 0; i < gguf_tensor_count(m->gguf); i++)
        if (packed_only(g, gguf_tensor_at(m->gguf, i)->name)) {
            const gm_tensor *t = weights_find(m->weights, gguf_tensor_at(m->gguf, i)->name);
            char line[400];
            snprintf(line, sizeof line, "%s %s %lld %lld", t->name, gm_dtype_name(t->dtype), (long long)t->shape[0],
                     (long long)t->shape[1]);
            listed[n++] = gm_strdup(line);
        }
    gguf_out *w = n ? gguf_out_new() : NULL;
    for (int i = 0; w && i < gguf_kv_count(m->gguf); i++) gguf_set_kv(w, gguf_kv_at(m->gguf, i));
    if (w) gguf_set_array(w, GM_PACKED_ONLY_KEY, GGUF_T_STRING, (uint64_t)n, listed);
    for (int i = 0; w && !rc && i < gguf_tensor_count(m->gguf); i++) {
        const gm_tensor *t = weights_find(m->weights, gguf_tensor_at(m->gguf, i)->name);
        int64_t ne[GM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) ne[d] = t->shape[t->ndim - 1 - d];
        if (!is_listed(listed, n, t->name)) rc = gguf_add_tensor(w, t->name, t->ndim, ne, t->dtype, e);
    }
    if (w && !rc) rc = gguf_write_begin(w, path, e);
    for (int i = 0; w && !rc && i < gguf_tensor_count(m->gguf); i++) {
        const gm_tensor *t = weights_find(m->weights, gguf_tensor_at(m->gguf, i)->name);
        if (!is_listed(listed, n, t->name)) rc = gguf_write_data(w, t->data, t->nbytes, e);
    }
    if (w && !rc) rc = gguf_write_finish(w, e);
    gguf_out_free(w);
    for (int k = 0; k < n; k++) free(listed[k]);
    free(listed);
    return rc ? -1 : n > 0;
}

/* The files --embed-weights puts in the executable (aot.h): the packed
 * weights (written to pack, a temporary file, when the model has any), the
 * checkpoint (a GGUF without what only the pack is read for: written to
 * slim), and its tokenizer; their number, or -1 after reporting. A sharded
 * checkpoint (an index) is refused. */
static int embedded_files(gm_model *m, const char *pack, const char *slim, char real[3][PATH_MAX], lv_aot_blob b[3],
                          gm_err *e) {
    const char *w = m->weights_path;
    char file[PATH_MAX + 40];
    struct stat st;
    int dir = !stat(w, &st) && S_ISDIR(st.st_mode), n = 0;
    snprintf(file, sizeof file, dir ? "%s/model.safetensors.index.json" : "%s", w);
    if (dir ? !access(file, F_OK) : gm_ends_with(w, ".json"))
        return gm_fail(e, "%s: a sharded checkpoint cannot be embedded (--embed-weights takes one .safetensors or "
                          ".gguf file); merge its shards, or compile without --embed-weights", file);
    if (m->n_packed && (gm_model_write_pack(m, pack, e) ||
                        blob_of(pack, "embedded:packed-weights", "packed weights", real[n], &b[n], e)))
        return -1;
    n += m->n_packed > 0;
    int slimmed = m->n_packed && m->gguf && !m->source_weights ? slim_checkpoint(m, slim, e) : 0;
    if (slimmed < 0) return -1;
    if (dir) snprintf(file, sizeof file, "%s/model.safetensors", w);
    if (blob_of(slimmed ? slim : file, m->gguf ? "embedded:model.gguf" : "embedded:model.safetensors", "weights",
                real[n], &b[n], e))
        return -1;
    n++;
    snprintf(file, sizeof file, "%.*s/tokenizer.model", (int)(strrchr(real[n - 1], '/') - real[n - 1]), real[n - 1]);
    if (!m->gguf && !access(file, R_OK)) { /* a .gguf holds its tokenizer */
        if (blob_of(file, "embedded:tokenizer.model", "tokenizer", real[n], &b[n], e)) return -1;
        n++;
    }
    return n;
}

/* The kernels of m and what the executable needs, emitted to tmp; what was
 * emitted, as a line for stderr, to summary (printed once all is written, so
 * that a failure leaves one line). */
static int emit(const compile_args *a, gm_model *m, const char *tmp, char *summary, size_t len, gm_err *e) {
    char *origin = NULL, *ckpt = NULL, weights[PATH_MAX];
    cJSON *desc = gm_description_load(a->model, &origin, &ckpt, e);
    if (!realpath(m->weights_path, weights)) snprintf(weights, sizeof weights, "%s", m->weights_path);
    char *text = desc ? json_format(desc) : NULL;
    const ir_graph *g = m->graph;
    ex_kernel *ks = gm_malloc(g->n_nodes * sizeof *ks);
    int *which = gm_malloc(g->n_nodes * sizeof *which), n = ex_kernels_of(g, m->bound, ks, which);
    char real[3][PATH_MAX], pack[PATH_MAX + 40], slim[PATH_MAX + 40];
    lv_aot_blob blobs[3];
    snprintf(pack, sizeof pack, "%s.pack.tmp.%ld", tmp, (long)getpid());
    snprintf(slim, sizeof slim, "%s.gguf.tmp.%ld", tmp, (long)getpid());
    int n_blobs = a->embed ? embedded_files(m, pack, slim, real, blobs, e) : 0;
    lv_aot_model am = {a->target, a->gpu, a->cpu, g->name, text, weights, m->passes, blobs, n_blobs};
    int rc = text && n_blobs >= 0 ? lv_aot_emit(&am, ks, n, a->kind, tmp, e) : -1;
    if (!rc)
        snprintf(summary, len, "gemmac: %s: %d ops in %d kernels for %s (passes: %s)%s\n", g->name, g->n_nodes, n,
                 a->target, *m->passes ? m->passes : "none", n_blobs ? ", weights embedded" : "");
    free(ks);
    free(which);
    free(text);
    cJSON_Delete(desc);
    free(origin);
    free(ckpt);
    unlink(pack); /* both assembled into the object by now */
    unlink(slim);
    return rc;
}

/* --emit lib: NAME.a from obj, and NAME.h, each renamed from a temporary
 * (tmp) only when both are written; -1 after reporting. */
static int emit_lib(const compile_args *a, const gm_model *m, const char *obj, char *tmp, size_t len, gm_err *e) {
    char *lib = gm_malloc(len), *hdr = gm_malloc(len), *htmp = gm_malloc(len), *script = gm_malloc(len);
    snprintf(lib, len, "%s.a", a->out);
    snprintf(hdr, len, "%s.h", a->out);
    snprintf(htmp, len, "%s.h.tmp.%ld", a->out, (long)getpid());
    snprintf(script, len, "%s.mri.tmp.%ld", a->out, (long)getpid());
    int rc = make_lib(a->row, obj, tmp, lib, script, e);
    if (!rc) rc = write_header(htmp, a, m->graph->name, e);
    if (!rc && rename(tmp, lib)) rc = gm_fail(e, "%s: cannot write: %s", lib, strerror(errno));
    if (!rc && rename(htmp, hdr)) {
        rc = gm_fail(e, "%s: cannot write: %s", hdr, strerror(errno));
        unlink(lib);
    }
    unlink(htmp);
    free(lib);
    free(hdr);
    free(htmp);
    free(script);
    return rc;
}

static int compile(const compile_args *a, gm_model *m, gm_err *e) {
    size_t len = strlen(a->out) + 40;
    char *tmp = gm_malloc(len), *obj = gm_malloc(len);
    snprintf(tmp, len, "%s.tmp.%ld", a->out, (long)getpid());
    snprintf(obj, len, "%s.o.tmp.%ld", a->out, (long)getpid());
    char summary[1024] = "";
    int rc = emit(a, m, a->exe || a->lib ? obj : tmp, summary, sizeof summary, e);
    if (!rc && a->lib) rc = emit_lib(a, m, obj, tmp, len, e);
    else {
        if (!rc && a->exe) rc = link_exe(a->row, obj, tmp, a->out, e);
        if (!rc && rename(tmp, a->out)) rc = gm_fail(e, "%s: cannot write: %s", a->out, strerror(errno));
    }
    unlink(obj);
    if (rc) unlink(tmp);
    else fputs(summary, stderr);
    free(tmp);
    free(obj);
    return rc;
}

int cmd_compile(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (cli_is(argv[i], "--help") || cli_is(argv[i], "-h")) return cli_help(usage);
    compile_args a = {.target = "native", .kind = LV_EMIT_OBJ, .exe = 1, .pipeline = {.level = GM_DEFAULT_LEVEL}};
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    gm_err e;
    a.pipeline.target = a.target;
    double t0 = gm_now_s();
    gm_model *m = gm_model_open_with(a.model, a.weights, &a.pipeline, &e);
    if (m && a.report) gm_report(m, stdout);
    rc = m && (!a.out || !compile(&a, m, &e)) ? 0 : cli_error(&e);
    struct stat st;
    char lib[PATH_MAX];
    snprintf(lib, sizeof lib, a.lib ? "%s.a" : "%s", a.out);
    if (!rc && !stat(lib, &st))
        gm_say("wrote %s%s (%.1f MB) in %.2f s\n", lib, a.lib ? " and its .h" : "", st.st_size / 1e6,
                gm_now_s() - t0);
    gm_model_free(m);
    return rc;
}
