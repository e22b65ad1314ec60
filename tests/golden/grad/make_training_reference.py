#!/usr/bin/python3
"""Reference LoRA gradients and AdamW loss curves for the tiny Gemma oracle checkpoints.

Shares the float64 Gemma forward pass of make_reference.py (imported). Writes to tests/golden/grad/:

  lora-<case>.json        (tiny-gemma3, tiny-gemma2) gradients of the S1 loss w.r.t. every LoRA
                          adapter (formula init below), same per-tensor summary as <case>.json.
  adamw-<mode>-<case>.json  (full: tiny-gemma1-mqa, tiny-gemma3; lora: tiny-gemma3) 50 AdamW steps
                          on the batch {S1, S2}; the batch loss of each step before its update.

Conventions (also in README.md):
  probe(i) = ((i * 2654435761) % 2**32) / 2**32 - 0.5      (integer arithmetic, then float64)
  S1: T = 20, tokens[0] = 2, tokens[i] = (37*i*i + 11*i + 5) % vocab, flags [0]*6 + [1]*14
  S2: T = 16, tokens[0] = 2, tokens[i] = (53*i*i +  7*i + 3) % vocab, flags [0]*4 + [1]*12
  sequence loss: mean CE of logits[t] vs tokens[t+1] over t with flags[t+1] == 1
  batch loss: (sum of CE over S1's 14 scored positions + sum over S2's 12) / 26
  LoRA on q/k/v/o/gate/up/down_proj of every layer: y = x W^T + (alpha/rank) (x A^T) B^T,
  A [rank, in], B [out, rank], rank 2, alpha 4; base weights frozen;
  init A[i] = 0.2 * probe(i), B[i] = 0.2 * probe(i + 7919) over row-major flattenings;
  names "<W name>.lora_a" / "<W name>.lora_b".
  AdamW: torch.optim.AdamW(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01), per step: zero
  grads, batch loss, backward, step. full mode: every checkpoint tensor, lr 1e-3; lora mode: only
  A and B, lr 1e-2.

Usage: /usr/bin/python3 tests/golden/grad/make_training_reference.py [--fd]
  --fd also checks every LoRA gradient's proj against a central finite difference (not written).
"""
import json, math, os, sys
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference import GOLDEN, OUT, forward, load_safetensors, summarize, write_json  # noqa: E402

RANK, ALPHA = 2, 4
STEPS = 50
BETAS, EPS, WD = (0.9, 0.999), 1e-8, 0.01
LORA_CASES = ["tiny-gemma3", "tiny-gemma2"]
ADAMW_RUNS = [("full", "tiny-gemma1-mqa", 1e-3), ("full", "tiny-gemma3", 1e-3),
              ("lora", "tiny-gemma3", 1e-2)]
LORA_TARGETS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
MADE_BY = f"tests/golden/grad/make_training_reference.py, PyTorch {torch.__version__} float64 autograd"


def probe(n, offset=0):
    """float64 [n]: probe(offset + i) for i = 0..n-1."""
    i = np.arange(n, dtype=np.int64) + offset                # (i * 2654435761) < 2**63 here
    return ((i * 2654435761) % 4294967296).astype(np.float64) / 4294967296.0 - 0.5


def sequences(V):
    s1 = [2] + [(37 * i * i + 11 * i + 5) % V for i in range(1, 20)]
    s2 = [2] + [(53 * i * i + 7 * i + 3) % V for i in range(1, 16)]
    return [(s1, [0] * 6 + [1] * 14), (s2, [0] * 4 + [1] * 12)]


def ce_sum(cfg, W, seq, lora=None):
    """(sum of next-token CE over the scored positions, their count) for one sequence."""
    tokens, flags = seq
    logits = forward(cfg, W, tokens, lora, ALPHA / RANK)
    pos = [t for t in range(len(tokens) - 1) if flags[t + 1] == 1]
    tgt = torch.tensor([tokens[t + 1] for t in pos])
    return torch.nn.functional.cross_entropy(logits[pos], tgt, reduction="sum"), len(pos)


def batch_loss(cfg, W, seqs, lora=None):
    """Token-weighted mean CE over all scored positions of all sequences."""
    parts = [ce_sum(cfg, W, s, lora) for s in seqs]
    return sum(p[0] for p in parts) / sum(p[1] for p in parts)


def load(case):
    d = os.path.join(GOLDEN, case)
    return json.load(open(os.path.join(d, "config.json"))), load_safetensors(os.path.join(d, "model.safetensors"))


def lora_init(cfg, W):
    """{W name: (A, B)} leaf tensors with the formula init, for every adapted layer matmul."""
    lora = {}
    for i in range(cfg["num_hidden_layers"]):
        for t in LORA_TARGETS:
            name = f"model.layers.{i}.{t}.weight"
            out_f, in_f = W[name].shape
            A = torch.from_numpy(0.2 * probe(RANK * in_f).reshape(RANK, in_f))
            B = torch.from_numpy(0.2 * probe(out_f * RANK, 7919).reshape(out_f, RANK))
            lora[name] = (A.requires_grad_(True), B.requires_grad_(True))
    return lora


def lora_params(lora):
    """{adapter name: tensor}, sorted by name."""
    named = {}
    for n, (A, B) in lora.items():
        named[n + ".lora_a"], named[n + ".lora_b"] = A, B
    return dict(sorted(named.items()))


def fd_check(cfg, W, seqs, lora, grads):
    """Finite-difference derivative of the loss along probe(i) per adapter vs its proj.

    Returns (worst relative, median relative, worst absolute) disagreement."""
    rels, abss = [], []
    with torch.no_grad():
        for n, p in lora_params(lora).items():
            r = torch.from_numpy(probe(p.numel()).reshape(p.shape))
            proj = summarize(grads[n])["proj"]
            base, h, f = p.clone(), 1e-4, {}
            for k in (-2, -1, 1, 2):
                p.copy_(base + k * h * r)
                f[k] = batch_loss(cfg, W, seqs, lora).item()
            p.copy_(base)
            fd = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)   # 4-point central, O(h^4)
            abss.append(abs(fd - proj))
            rels.append(abss[-1] / max(abs(proj), 1e-300))
            if rels[-1] > 1e-6:
                print(f"    FD {n}: proj {proj!r} fd {fd!r} rel {rels[-1]:.2e}")
    return max(rels), float(np.median(rels)), max(abss)


def lora_grads(case, fd):
    cfg, W = load(case)
    seqs = sequences(W["model.embed_tokens.weight"].shape[0])[:1]   # S1 only
    lora = lora_init(cfg, W)
    loss = batch_loss(cfg, W, seqs, lora)
    loss.backward()
    params = lora_params(lora)
    tensors = {n: {"shape": list(p.shape), **summarize(p.grad)} for n, p in params.items()}
    doc = {"case": case, "tokens": seqs[0][0], "targets": seqs[0][1], "loss": loss.item(),
           "rank": RANK, "alpha": ALPHA, "made_by": MADE_BY}
    write_json(os.path.join(OUT, f"lora-{case}.json"), doc, tensors)
    msg = f"lora-{case:16s} loss {loss.item()!r}  {len(tensors)} adapters"
    if fd:
        worst, med, wabs = fd_check(cfg, W, seqs, lora, {n: p.grad for n, p in params.items()})
        msg += f"  FD vs proj: worst rel {worst:.1e}, median rel {med:.1e}, worst abs {wabs:.1e}"
    print(msg)


def adamw(mode, case, lr):
    cfg, W = load(case)
    seqs = sequences(W["model.embed_tokens.weight"].shape[0])
    if mode == "full":
        W = {n: t.clone().requires_grad_(True) for n, t in sorted(W.items())}
        lora, trained = None, list(W.values())
    else:
        lora = lora_init(cfg, W)
        trained = list(lora_params(lora).values())
    opt = torch.optim.AdamW(trained, lr=lr, betas=BETAS, eps=EPS, weight_decay=WD,
                            amsgrad=False, foreach=False)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = batch_loss(cfg, W, seqs, lora)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    doc = {"case": case, "mode": mode, "lr": lr, "weight_decay": WD, "betas": list(BETAS), "eps": EPS}
    if mode == "lora":
        doc.update(rank=RANK, alpha=ALPHA)
    doc.update(batch=[{"tokens": t, "targets": f} for t, f in seqs], losses=losses, made_by=MADE_BY)
    write_json(os.path.join(OUT, f"adamw-{mode}-{case}.json"), doc)
    print(f"adamw-{mode}-{case:16s} lr {lr}  loss[0] {losses[0]!r}  loss[49] {losses[-1]!r}")


if __name__ == "__main__":
    torch.set_num_threads(1)                                 # fixed reduction order: reproducible files
    fd = "--fd" in sys.argv[1:]
    for c in LORA_CASES:
        lora_grads(c, fd)
    for run in ADAMW_RUNS:
        adamw(*run)
