"""check_gguf_py.py DIR — the golden bytes in DIR against gguf-py's numpy quantizers.

gguf-py (llama.cpp's Python package, gguf.quants) has its own quantizers for the
32-element formats and for F16/BF16, written independently of ggml-quants.c. This
checks that they give exactly the bytes of DIR/<type>.bin for DIR/input.f32, and
writes DIR/f16.bin and DIR/bf16.bin from them. The K formats have no quantizer in
gguf-py; their bytes come from ggml-quants.c alone (golden_gen.c)."""
import sys
from pathlib import Path

import numpy as np
from gguf.constants import GGMLQuantizationType as T
from gguf.quants import quantize

d = Path(sys.argv[1])
x = np.fromfile(d / "input.f32", dtype="<f4").reshape(1, -1)
bad = 0
for name, t in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q4_1", T.Q4_1), ("q5_0", T.Q5_0), ("q5_1", T.Q5_1)]:
    same = quantize(x, t).tobytes() == (d / f"{name}.bin").read_bytes()
    print(f"{name}.bin: gguf-py {'identical' if same else 'DIFFERS'}")
    bad += not same
for name, t in [("f16", T.F16), ("bf16", T.BF16)]:
    (d / f"{name}.bin").write_bytes(quantize(x, t).tobytes())
    print(f"{name}.bin: written by gguf-py")
sys.exit(1 if bad else 0)
