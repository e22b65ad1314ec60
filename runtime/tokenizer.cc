/* tokenizer.cc — the C++17 shim between gemmac's C code and libsentencepiece
 * (see tokenizer.h for the behaviour it promises). It is the only C++ file
 * in the tree, and it exists because SentencePiece has no C API: Gemma's
 * token ids are defined by that library, so we call it rather than
 * reimplementing its BPE, normalizer and byte fallback.
 *
 * Rules kept here: every entry point is extern "C" and wraps its body in
 * try/catch, so no exception (std::bad_alloc included) ever unwinds into C;
 * SentencePiece's util::Status failures become one-line gm_err messages that
 * name the model's origin; results handed to C are malloc'd copies that the
 * caller frees with free(). */
#include "runtime/tokenizer.h"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <sentencepiece_processor.h>

struct rt_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string origin;
    int vocab = 0;
};

namespace {

/* SentencePiece messages may span lines; a gm_err holds one line. */
std::string one_line(std::string s) {
    for (char &c : s)
        if (c == '\n' || c == '\r') c = ' ';
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

int fail_exception(gm_err *e, const char *origin, const char *what, const std::exception *ex) {
    return gm_fail(e, "%s: %s failed: %s", origin, what,
                   ex ? one_line(ex->what()).c_str() : "unknown C++ exception");
}

char *dup_bytes(const std::string &s) {
    char *p = static_cast<char *>(gm_malloc(s.size() + 1));
    memcpy(p, s.data(), s.size());
    p[s.size()] = 0;
    return p;
}

const char *HINT = "pass --tokenizer FILE";

/* Why LoadFromSerializedProto refused the bytes, in words: its own message
 * for a protobuf parse failure is a source location and an expression. */
std::string load_detail(const sentencepiece::util::Status &st, std::string_view bytes) {
    std::string msg = one_line(st.error_message());
    if (msg.find("ParseFromArray") == std::string::npos) return msg;
    size_t i = 0;
    while (i < bytes.size() && (bytes[i] == ' ' || bytes[i] == '\t' || bytes[i] == '\r' || bytes[i] == '\n')) i++;
    if (i < bytes.size() && (bytes[i] == '{' || bytes[i] == '['))
        return "it looks like JSON, e.g. a Hugging Face tokenizer.json, not a serialized ModelProto";
    return "it does not parse as a serialized ModelProto protobuf";
}

} // namespace

extern "C" {

rt_tokenizer *rt_tok_load_from_memory(const void *data, size_t len, const char *origin, gm_err *e) {
    if (!origin) origin = "<memory>";
    rt_tokenizer *t = nullptr;
    try {
        if (!data && len) {
            gm_fail(e, "%s: no data", origin);
            return nullptr;
        }
        if (!len) {
            gm_fail(e, "%s: not a SentencePiece model (the file is empty); %s", origin, HINT);
            return nullptr;
        }
        t = new rt_tokenizer();
        t->origin = origin;
        std::string_view bytes(data ? static_cast<const char *>(data) : "", len);
        sentencepiece::util::Status st = t->sp.LoadFromSerializedProto(bytes);
        if (!st.ok()) {
            gm_fail(e, "%s: not a SentencePiece model (%s); %s", origin, load_detail(st, bytes).c_str(), HINT);
            delete t;
            return nullptr;
        }
        /* An empty buffer (or any bytes that happen to parse as an empty
         * protobuf message) loads as a model with no pieces. */
        t->vocab = t->sp.GetPieceSize();
        if (t->vocab <= 0) {
            gm_fail(e, "%s: not a SentencePiece model (it has no vocabulary pieces); %s", origin, HINT);
            delete t;
            return nullptr;
        }
        return t;
    } catch (const std::exception &ex) {
        fail_exception(e, origin, "loading the tokenizer", &ex);
    } catch (...) {
        fail_exception(e, origin, "loading the tokenizer", nullptr);
    }
    delete t;
    return nullptr;
}

rt_tokenizer *rt_tok_load(const char *path, gm_err *e) {
    if (!path || !*path) {
        gm_fail(e, "no tokenizer file given; %s", HINT);
        return nullptr;
    }
    gm_err re = {};
    size_t len = 0;
    char *buf = gm_read_file(path, &len, &re);
    if (!buf) {
        gm_fail(e, "%s; %s", re.msg, HINT);
        return nullptr;
    }
    rt_tokenizer *t = rt_tok_load_from_memory(buf, len, path, e);
    free(buf);
    return t;
}

void rt_tok_free(rt_tokenizer *t) {
    try {
        delete t;
    } catch (...) {
    }
}

/* rt_tok_encode, with the BOS id in front when with_bos and the model has one. */
static int encode(const rt_tokenizer *t, const char *text, size_t len, int with_bos, int32_t **ids, int *n, gm_err *e) {
    if (ids) *ids = nullptr;
    if (n) *n = 0;
    if (!t || !ids || !n) return gm_fail(e, "rt_tok_encode: NULL argument");
    if (!text && len) return gm_fail(e, "%s: encode: NULL text of length %zu", t->origin.c_str(), len);
    try {
        std::vector<int> out;
        sentencepiece::util::Status st = t->sp.Encode(std::string_view(text ? text : "", len), &out);
        if (!st.ok())
            return gm_fail(e, "%s: encode failed: %s", t->origin.c_str(), one_line(st.ToString()).c_str());
        if (out.size() > static_cast<size_t>(INT_MAX))
            return gm_fail(e, "%s: encode: %zu tokens is more than an int can count", t->origin.c_str(), out.size());
        int bos = with_bos ? t->sp.bos_id() : -1, lead = bos >= 0;
        int32_t *r = static_cast<int32_t *>(gm_malloc((out.size() + lead) * sizeof(int32_t)));
        if (lead) r[0] = bos;
        for (size_t i = 0; i < out.size(); i++) r[lead + i] = static_cast<int32_t>(out[i]);
        *ids = r;
        *n = static_cast<int>(out.size()) + lead;
        return 0;
    } catch (const std::exception &ex) {
        return fail_exception(e, t->origin.c_str(), "encode", &ex);
    } catch (...) {
        return fail_exception(e, t->origin.c_str(), "encode", nullptr);
    }
}

int rt_tok_encode(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, gm_err *e) {
    return encode(t, text, len, 0, ids, n, e);
}

int rt_tok_encode_bos(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, gm_err *e) {
    return encode(t, text, len, 1, ids, n, e);
}

char *rt_tok_decode(const rt_tokenizer *t, const int32_t *ids, int n, size_t *len, gm_err *e) {
    if (len) *len = 0;
    if (!t) {
        gm_fail(e, "rt_tok_decode: NULL tokenizer");
        return nullptr;
    }
    if (n < 0 || (n > 0 && !ids)) {
        gm_fail(e, "%s: decode: bad id list (n = %d)", t->origin.c_str(), n);
        return nullptr;
    }
    try {
        std::vector<int> in(static_cast<size_t>(n));
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= t->vocab) {
                gm_fail(e, "%s: decode: token id %ld (at position %d) is out of range: the vocabulary has %d pieces (ids 0..%d)",
                        t->origin.c_str(), static_cast<long>(ids[i]), i, t->vocab, t->vocab - 1);
                return nullptr;
            }
            in[static_cast<size_t>(i)] = ids[i];
        }
        std::string out;
        sentencepiece::util::Status st = t->sp.Decode(in, &out);
        if (!st.ok()) {
            gm_fail(e, "%s: decode failed: %s", t->origin.c_str(), one_line(st.ToString()).c_str());
            return nullptr;
        }
        if (len) *len = out.size();
        return dup_bytes(out);
    } catch (const std::exception &ex) {
        fail_exception(e, t->origin.c_str(), "decode", &ex);
    } catch (...) {
        fail_exception(e, t->origin.c_str(), "decode", nullptr);
    }
    return nullptr;
}

char *rt_tok_piece(const rt_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->vocab) return nullptr;
    try {
        return dup_bytes(t->sp.IdToPiece(id));
    } catch (...) {
        return nullptr;
    }
}

int rt_tok_vocab_size(const rt_tokenizer *t) { return t ? t->vocab : 0; }

int32_t rt_tok_bos(const rt_tokenizer *t) {
    if (!t) return -1;
    try {
        return t->sp.bos_id();
    } catch (...) {
        return -1;
    }
}

int32_t rt_tok_eos(const rt_tokenizer *t) {
    if (!t) return -1;
    try {
        return t->sp.eos_id();
    } catch (...) {
        return -1;
    }
}

int32_t rt_tok_piece_id(const rt_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    try {
        /* PieceToId answers <unk>'s id for an unknown piece, so check that
         * the id really spells `piece`. */
        int id = t->sp.PieceToId(piece);
        if (id < 0 || id >= t->vocab || t->sp.IdToPiece(id) != piece) return -1;
        return id;
    } catch (...) {
        return -1;
    }
}

} /* extern "C" */
