"""Reference greedy continuations and logits of the real Gemma 3 270M GGUF,
computed by an implementation gemmac does not share code with: Hugging Face
transformers' Gemma3ForCausalLM in float32 on CPU, its weights dequantized
from the same GGUF file by llama.cpp's gguf-py (transformers' GGUF loader,
which also takes the +1 off the norm weights and rebuilds the config and the
tokenizer from the file's metadata). See README.md for versions and commands.

usage: python make_reference.py GGUF_DIR OUT.json
"""
import hashlib, importlib.metadata, json, os, sys, time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "gemma-3-270m-q4_k_m.gguf"
STEPS = 40     # greedy steps per prompt
TOP_K = 40     # logits kept per step
PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain photosynthesis in one sentence.",
    # longer than the 512-token sliding window of the local layers
    "Here is a list of numbers: " + ", ".join(str(i) for i in range(1, 301))
    + ". What is the sum of the first three numbers in the list?",
]


def chat(text):
    return "<start_of_turn>user\n" + text + "<end_of_turn>\n<start_of_turn>model\n"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@torch.no_grad()
def greedy(model, ids):
    """STEPS greedy steps with the KV cache (argmax, ties to the lowest id, no
    stop at EOS); row s of the logits picks continuation[s]."""
    out = model(torch.tensor([ids]), use_cache=True)
    cache, rows, cont = out.past_key_values, [], []
    logits = out.logits[0, -1]
    for s in range(STEPS):
        rows.append(logits.clone())
        cont.append(int(torch.argmax(logits)))
        if s + 1 < STEPS:
            out = model(torch.tensor([[cont[-1]]]), past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[0, -1]
    # the same rows from one cache-less forward over prompt + continuation[:-1]
    full = model(torch.tensor([ids + cont[:-1]]), use_cache=False).logits[0, len(ids) - 1:]
    drift = float((torch.stack(rows) - full).abs().max())
    return cont, torch.stack(rows), drift


def record(text, ids, cont, rows, drift):
    top = torch.topk(rows, TOP_K, dim=1)
    two = torch.topk(rows, 2, dim=1).values
    return {
        "text": text,
        "chat": True,
        "ids": ids,
        "continuation": cont,
        "top_ids": top.indices.tolist(),
        "top_logits": [[round(float(v), 5) for v in r] for r in top.values],
        "margins": [round(float(a - b), 5) for a, b in two],
        "logsumexp": [round(float(v), 5) for v in torch.logsumexp(rows, dim=1)],
        "prefill_vs_decode_max_abs_diff": drift,
    }


def main():
    src, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        src, gguf_file=GGUF, dtype=torch.float32, attn_implementation="eager").eval()
    prompts = []
    for text in PROMPTS:
        t = time.time()
        ids = [model.config.bos_token_id] + tok.encode(chat(text), add_special_tokens=False)
        cont, rows, drift = greedy(model, ids)
        prompts.append(record(text, ids, cont, rows, drift))
        print(f"{len(ids)} prompt ids, {time.time() - t:.1f} s: {tok.decode(cont)!r}", file=sys.stderr)
    doc = {
        "model": {"file": GGUF, "sha256": sha256(os.path.join(src, GGUF))},
        "generator": {
            "script": "tests/real-model/make_reference.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "dtype": "float32",
            "attn_implementation": "eager",
        },
        "steps": STEPS,
        "top_k": TOP_K,
        "prompts": prompts,
    }
    with open(out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
