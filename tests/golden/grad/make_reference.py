#!/usr/bin/python3
"""Reference training gradients for the tiny Gemma oracle checkpoints (tests/golden/<case>/).

Independent of gemmac: a from-scratch Gemma 1/2/3 text forward pass in PyTorch float64 (HF
semantics, read from config.json), weights parsed straight from model.safetensors (F32 / BF16,
upcast to float64). For each case it
  1. checks the forward pass against the gemma_pytorch oracle logits
     (expected_prefill_logits.f32, every prompt of expected.json), and
  2. runs one fixed 20-token sequence, loss = mean next-token cross-entropy over the positions
     whose target flag is 1, backpropagates with autograd and writes, per checkpoint tensor,
     the gradient's L2 norm, a projection on a fixed pseudo-random vector and 16 sampled values
     to tests/golden/grad/<case>.json.

Conventions (also in README.md):
  tokens[0] = 2, tokens[i] = (37*i*i + 11*i + 5) % vocab for i = 1..19
  targets (flags) = [0]*6 + [1]*14; position t (0..18) predicts tokens[t+1] iff flags[t+1] == 1
  r_i = ((i * 2654435761) % 2**32) / 2**32 - 0.5, proj = sum_i g_i * r_i (row-major flattening)
  samples: index (k * 2654435761 + 12345) % n for k = 0..15

Usage: /usr/bin/python3 tests/golden/grad/make_reference.py [case ...]   (default: all cases)
"""
import json, math, os, struct, sys
import numpy as np
import torch

GOLDEN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(GOLDEN, "grad")
CASES = ["tiny-gemma1-mqa", "tiny-gemma1-mha", "tiny-gemma2", "tiny-gemma2-bf16",
         "tiny-gemma3", "tiny-gemma3-1b", "medium-gemma1-bf16"]
T = 20


def load_safetensors(path):
    """Return {name: float64 torch tensor}; supports F32 and BF16."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = blob[base + b:base + e]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).astype(np.float64)
        else:
            raise ValueError(f"{name}: unsupported dtype {info['dtype']}")
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def rmsnorm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (1.0 + w)


def rope(x, pos, theta):
    """x: [heads, S, hd]; rotate-half RoPE, pair (i, i + hd/2) turned by pos * theta^(-2i/hd)."""
    hd = x.shape[-1]
    inv = theta ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
    ang = pos[:, None] * inv[None, :]                       # [S, hd/2]
    cos, sin = torch.cos(ang), torch.sin(ang)
    a, b = x[..., :hd // 2], x[..., hd // 2:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def layer_kinds(cfg):
    n, mt = cfg["num_hidden_layers"], cfg["model_type"]
    if mt == "gemma":
        return ["full_attention"] * n
    if cfg.get("layer_types"):
        return list(cfg["layer_types"])
    if mt == "gemma2":                                       # even layers slide
        return ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    p = cfg.get("sliding_window_pattern", 6)                 # gemma3: every p-th layer global
    return ["full_attention" if (i + 1) % p == 0 else "sliding_attention" for i in range(n)]


def forward(cfg, W, ids, lora=None, lora_scale=0.0):
    """Logits [S, V] (float64) for one causal sequence of token ids.

    lora: optional {W name: (A [rank, in], B [out, rank])}; each named layer matmul then becomes
    y = x W^T + lora_scale * (x A^T) B^T (used by make_training_reference.py)."""
    def mm(h, name):
        y = h @ W[name].T
        if lora and name in lora:
            A, B = lora[name]
            y = y + lora_scale * ((h @ A.T) @ B.T)
        return y

    mt = cfg["model_type"]
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    scale = cfg.get("query_pre_attn_scalar") or hd
    scale = float(scale) ** -0.5
    softcap = cfg.get("attn_logit_softcapping") if mt == "gemma2" else None
    final_cap = cfg.get("final_logit_softcapping") if mt == "gemma2" else None
    rs = cfg.get("rope_scaling") or {}
    lin_factor = float(rs.get("factor", 1.0)) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
    sandwich = mt in ("gemma2", "gemma3_text")

    S = len(ids)
    E = W["model.embed_tokens.weight"]
    x = E[torch.tensor(ids)] * math.sqrt(H)
    pos = torch.arange(S, dtype=torch.float64)
    qi, kj = torch.arange(S)[:, None], torch.arange(S)[None, :]
    causal = kj <= qi
    for i, kind in enumerate(layer_kinds(cfg)):
        p = f"model.layers.{i}."
        sliding = kind == "sliding_attention"
        mask = causal & (qi - kj < cfg["sliding_window"]) if sliding else causal
        if mt == "gemma3_text":
            theta = cfg["rope_local_base_freq"] if sliding else cfg["rope_theta"]
            lpos = pos if sliding else pos / lin_factor
        else:
            theta, lpos = cfg.get("rope_theta", 10000.0), pos

        # --- attention ---
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = mm(h, p + "self_attn.q_proj.weight").view(S, nh, hd).transpose(0, 1)
        k = mm(h, p + "self_attn.k_proj.weight").view(S, nkv, hd).transpose(0, 1)
        v = mm(h, p + "self_attn.v_proj.weight").view(S, nkv, hd).transpose(0, 1)
        if mt == "gemma3_text":
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, lpos, theta), rope(k, lpos, theta)
        k = k.repeat_interleave(nh // nkv, dim=0)            # GQA: query head j -> kv head j // g
        v = v.repeat_interleave(nh // nkv, dim=0)
        s = (q @ k.transpose(1, 2)) * scale                  # [nh, S, S]
        if softcap:
            s = softcap * torch.tanh(s / softcap)
        s = s.masked_fill(~mask, float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(S, nh * hd)
        a = mm(o, p + "self_attn.o_proj.weight")
        if sandwich:
            x = x + rmsnorm(a, W[p + "post_attention_layernorm.weight"], eps)
            h = rmsnorm(x, W[p + "pre_feedforward_layernorm.weight"], eps)
        else:
            x = x + a
            h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)

        # --- MLP ---
        m = gelu_tanh(mm(h, p + "mlp.gate_proj.weight")) * mm(h, p + "mlp.up_proj.weight")
        m = mm(m, p + "mlp.down_proj.weight")
        x = x + (rmsnorm(m, W[p + "post_feedforward_layernorm.weight"], eps) if sandwich else m)

    logits = rmsnorm(x, W["model.norm.weight"], eps) @ E.T
    if final_cap:
        logits = final_cap * torch.tanh(logits / final_cap)
    return logits


def summarize(g):
    g = g.detach().contiguous().view(-1).numpy()
    n = g.size
    i = np.arange(n, dtype=np.int64)                         # n * 2654435761 < 2**63 here
    r = ((i * 2654435761) % 4294967296).astype(np.float64) / 4294967296.0 - 0.5
    idx = [(k * 2654435761 + 12345) % n for k in range(16)]
    return {"norm": math.sqrt(math.fsum((g * g).tolist())),
            "proj": math.fsum((g * r).tolist()),
            "samples": [[j, float(g[j])] for j in idx]}


def write_json(path, doc, tensors=None):
    """One top-level key per line (one tensor per line under "tensors"): diffable yet compact."""
    lines = [json.dumps({k: v}, separators=(",", ":"))[1:-1] for k, v in doc.items()]
    text = "{\n" + ",\n".join(lines)
    if tensors is not None:
        tl = [f"  {json.dumps(n)}:{json.dumps(v, separators=(',', ':'))}" for n, v in tensors.items()]
        text += ',\n"tensors":{\n' + ",\n".join(tl) + "\n}}\n"
    else:
        text += "\n}\n"
    with open(path, "w") as f:
        f.write(text)


def run_case(case):
    d = os.path.join(GOLDEN, case)
    cfg = json.load(open(os.path.join(d, "config.json")))
    exp = json.load(open(os.path.join(d, "expected.json")))
    W = load_safetensors(os.path.join(d, "model.safetensors"))
    V = W["model.embed_tokens.weight"].shape[0]

    # 1. forward check against the gemma_pytorch oracle
    ref = np.fromfile(os.path.join(d, "expected_prefill_logits.f32"), dtype="<f4").astype(np.float64)
    off, diffs = 0, []
    with torch.no_grad():
        for pr in exp["prompts"]:
            ids = pr["prompt"]
            want = ref[off:off + len(ids) * V].reshape(len(ids), V)
            off += len(ids) * V
            diffs.append(float(np.abs(forward(cfg, W, ids).numpy() - want).max()))
    assert off == ref.size, "logits file size mismatch"
    fwd = max(diffs)

    # 2. loss + gradients
    tokens = [2] + [(37 * i * i + 11 * i + 5) % V for i in range(1, T)]
    flags = [0] * 6 + [1] * (T - 6)
    params = {n: t.clone().requires_grad_(True) for n, t in W.items()}
    logits = forward(cfg, params, tokens)
    pos = [t for t in range(T - 1) if flags[t + 1] == 1]
    loss = torch.nn.functional.cross_entropy(logits[pos], torch.tensor([tokens[t + 1] for t in pos]))
    loss.backward()

    tensors = {n: {"shape": list(p.shape), **summarize(p.grad)} for n, p in sorted(params.items())}
    doc = {"case": case, "tokens": tokens, "targets": flags, "loss": loss.item(),
           "forward_max_abs_diff": fwd,
           "made_by": f"tests/golden/grad/make_reference.py, PyTorch {torch.__version__} float64 autograd"}
    write_json(os.path.join(OUT, case + ".json"), doc, tensors)
    print(f"{case:20s} forward max|d| per prompt {['%.2e' % x for x in diffs]}  loss {loss.item()!r}")
    return fwd


if __name__ == "__main__":
    torch.set_num_threads(1)                                 # fixed reduction order: reproducible files
    for c in sys.argv[1:] or CASES:
        run_case(c)
