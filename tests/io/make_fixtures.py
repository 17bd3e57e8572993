#!/usr/bin/env python3
"""Write the safetensors fixtures of tests/io with the reference `safetensors` package (+ torch).

The generated files are small and committed, so the C++ tests need no Python. Re-run after
changing this script:   python3 tests/io/make_fixtures.py
With --verify FILE ...  it instead loads files (e.g. written by hyplora's SafetensorsWriter) with
the reference implementation and prints what it found, exiting non-zero if loading fails.

The values are formulas the C++ tests recompute (tests/io/test_safetensors.cpp,
tests/io/test_adapter_file.cpp); keep both sides in sync.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# Inputs for the F16/BF16 tensors: float32 values of these doubles, then torch's own rounding.
# Covers ties, overflow to Inf, F16 subnormals, underflow to 0, signed zero, Inf and NaN.
HALF_INPUTS = [1.0 / 3.0, -65504.0, 65520.0, 6e-8, 1e-8, 0.1, -0.0, 2049.0,
               1.00048828125, 3.0e38, float("inf"), float("nan")]


def mixed():
    f32 = torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.25 - 0.5
    f64 = torch.tensor([1.0 / 3.0, -2.5, 1e-300], dtype=torch.float64)
    half_in = torch.tensor(HALF_INPUTS, dtype=torch.float32).reshape(3, 4)
    tensors = {
        "f32_mat": f32,
        "f64_vec": f64,
        "f16_mat": half_in.to(torch.float16),
        "bf16_mat": half_in.to(torch.bfloat16),
        "i64_ids": torch.tensor([1, -2, 3], dtype=torch.int64),
    }
    save_file(tensors, os.path.join(HERE, "mixed.safetensors"),
              metadata={"format": "pt", "note": "hyplora fixture"})


def same_dtype():
    # One dtype and one metadata key: the reference layout is then fully determined (name order),
    # so hyplora's writer must reproduce this file byte for byte.
    tensors = {
        "alpha": torch.tensor([[1.5, -2.0], [0.125, 3.0]], dtype=torch.float32),
        "beta": torch.tensor([0.1, 0.2, 0.3], dtype=torch.float32),
        "gamma": torch.tensor(7.0, dtype=torch.float32),
    }
    save_file(tensors, os.path.join(HERE, "same_dtype.safetensors"), metadata={"format": "pt"})


def peft_adapter():
    # Two modules, r = 4, D_in = 6, D_out = 5; the keys and config as PEFT writes them.
    # A[i, j] = 0.01 (i D_in + j) - 0.1 (+0.5 for v_proj);  B[i, j] = 0.02 (i R + j) - 0.2.
    d = os.path.join(HERE, "peft_adapter")
    os.makedirs(d, exist_ok=True)
    r, d_in, d_out = 4, 6, 5
    pre = "base_model.model.model.layers.0.self_attn."
    tensors = {}
    for mod, off in (("q_proj", 0.0), ("v_proj", 0.5)):
        a = torch.arange(r * d_in, dtype=torch.float64).reshape(r, d_in) * 0.01 - 0.1 + off
        b = torch.arange(d_out * r, dtype=torch.float64).reshape(d_out, r) * 0.02 - 0.2
        tensors[pre + mod + ".lora_A.weight"] = a.to(torch.float32)
        tensors[pre + mod + ".lora_B.weight"] = b.to(torch.float32)
    tensors[pre + "q_proj.lora_k"] = torch.tensor([1.0], dtype=torch.float32)  # shape [1]
    tensors[pre + "v_proj.lora_norm_scale"] = torch.tensor(2.449489742783178, dtype=torch.float32)  # []
    save_file(tensors, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    config = {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tiny-llama",
        "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
        "lora_alpha": 8, "lora_dropout": 0.05, "modules_to_save": None, "peft_type": "LORA",
        "r": r, "rank_pattern": {}, "revision": None, "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM", "use_rslora": False,
    }
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def verify(paths):
    for p in paths:
        t = load_file(p)
        for k in sorted(t):
            print(f"{p}: {k} {t[k].dtype} {list(t[k].shape)} sum={t[k].double().sum().item():.9g}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--verify":
        verify(sys.argv[2:])
    else:
        os.makedirs(HERE, exist_ok=True)
        mixed()
        same_dtype()
        peft_adapter()
        print("wrote fixtures under", HERE)
