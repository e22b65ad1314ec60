/* tokenizer.h — text <-> token ids for Gemma, through Google's SentencePiece
 * library. Gemma ships its vocabulary as a SentencePiece `tokenizer.model`
 * (a serialized ModelProto: BPE pieces with scores, byte fallback, no NFKC,
 * no dummy prefix), and the only way to reproduce its ids exactly is to run
 * the same library, so this module is a thin C API over libsentencepiece.
 * The implementation (tokenizer.cc) is the only C++ in gemmac: it catches
 * every exception and turns every failure into a gm_err, so callers stay in
 * plain C and nothing is ever thrown across this interface.
 *
 * Behaviour worth knowing:
 *  - rt_tok_encode adds no BOS; prepend rt_tok_bos() yourself.
 *  - Text is given with its length, so it may contain NUL bytes.
 *  - Chat markup such as "<start_of_turn>" / "<end_of_turn>" is a
 *    USER_DEFINED piece and is matched inside text as one id; CONTROL strings
 *    such as "<bos>" typed in text are NOT special, they encode as plain text.
 *  - Invalid UTF-8 is not an error. SentencePiece's normalizer replaces
 *    every byte that is not part of a well-formed UTF-8 sequence with its
 *    own U+FFFD (EF BF BD) before encoding: "a\xFFb" encodes exactly like
 *    "a\uFFFDb" and decodes back to "a\uFFFDb"; a truncated "\xE2\x82"
 *    becomes two U+FFFD. Lossy but deterministic, and the same ids that
 *    spm_encode and other libsentencepiece users (gemma.cpp) get. Raw bytes
 *    are NOT carried through as <0xNN> byte pieces.
 *    Decoding byte pieces (<0xNN>) that do not form valid UTF-8 likewise
 *    yields U+FFFD.
 *  - A literal U+2581 ("▁") in the input is SentencePiece's escaped space, so
 *    it decodes as " ": decode(encode(x)) == x for every x that is valid
 *    UTF-8 and contains no U+2581. */
#ifndef RT_TOKENIZER_H
#define RT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* common.h has no C++ guard of its own; the C headers it includes are
 * included above so that only its own declarations get C linkage. */
#ifdef __cplusplus
extern "C" {
#endif

#include "runtime/common.h"

typedef struct rt_tokenizer rt_tokenizer;

/* Loads a SentencePiece tokenizer.model. NULL with a one-line error naming
 * the file when it cannot be read or is not a SentencePiece model. */
rt_tokenizer *rt_tok_load(const char *path, gm_err *e);

/* Same, from the bytes of a serialized ModelProto (copied; `data` may be
 * freed afterwards). `origin` names the source in error messages. */
rt_tokenizer *rt_tok_load_from_memory(const void *data, size_t len, const char *origin, gm_err *e);

void rt_tok_free(rt_tokenizer *t); /* NULL is fine */

/* Encodes len bytes of text (no BOS added). On success *ids is a malloc'd
 * array of *n ids (never NULL, even when *n == 0; free it) and 0 is returned;
 * on failure -1 with e filled and *ids = NULL, *n = 0. */
int rt_tok_encode(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, gm_err *e);
/* The same with rt_tok_bos() in front (when the model has one): a prompt as the model starts it. */
int rt_tok_encode_bos(const rt_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, gm_err *e);

/* Decodes n ids into malloc'd text, NUL-terminated, its byte length (which
 * may include NUL bytes) in *len when len is not NULL. Control ids (<bos>,
 * <eos>, <pad>) decode to nothing. An id outside [0, vocab size) is an error
 * naming the id and the vocabulary size: NULL is returned. */
char *rt_tok_decode(const rt_tokenizer *t, const int32_t *ids, int n, size_t *len, gm_err *e);

/* The vocabulary piece of id as stored in the model, malloc'd (e.g. "▁world",
 * "<0x0A>", "<start_of_turn>"); NULL when id is out of range. This is the
 * inverse of rt_tok_piece_id and is meant for debugging. To stream text,
 * decode the ids generated so far and print what was added: a single byte
 * piece may be only part of a UTF-8 character. */
char *rt_tok_piece(const rt_tokenizer *t, int32_t id);

int rt_tok_vocab_size(const rt_tokenizer *t);
int32_t rt_tok_bos(const rt_tokenizer *t); /* -1 if the model has none */
int32_t rt_tok_eos(const rt_tokenizer *t); /* -1 if the model has none */

/* Id of an exact vocabulary piece, e.g. "<start_of_turn>", or -1 when the
 * model has no such piece (SentencePiece itself would answer <unk>'s id). */
int32_t rt_tok_piece_id(const rt_tokenizer *t, const char *piece);

#ifdef __cplusplus
}
#endif

#endif
