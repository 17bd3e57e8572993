#!/usr/bin/env python3
"""Reference vectors for the published HypLoRA branches (tests/autodiff/data/*.json).

An independent transcription of the published formulas (MATH_NOTES §4.1 `hyplora` and §3.3
`hyplora_simplified`; docs/hyplora.md Eq. (175)-(179), (190)-(191)) in PyTorch float64, with
gradients from autograd, including the θ gradient hook that clamps ∂L/∂θ to [-0.01, 0.01].
It shares no code with the C++ nodes (ops_hyplora_official.hpp) it checks.

The loss is L = Σ G ⊙ z with a fixed seed G, stored with each case; the C++ test runs
tape.backward(z, G) and compares z and every gradient.

    python3 tests/autodiff/make_official_reference.py     # rewrites tests/autodiff/data/
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")


# ---- the published forward passes, transcribed ---------------------------------------------
def official_forward(x, W0, bias, A, B, theta, s, gamma):
    """`hyplora`: x (N, D_in), W0 (D_out, D_in), A (r, D_in), B (D_out, r), theta, s (1,)."""
    n = torch.clamp(x.norm(dim=-1, keepdim=True), min=1e-7)
    x_hat = x / n
    K = F.softplus(theta) + 1e-6
    R = torch.sqrt(K)
    h = R * torch.sinh(torch.clamp(n / (s * R), max=12.0)) * x_hat
    y = (h @ A.T) @ B.T
    z0 = torch.sqrt((y * y).sum(dim=-1, keepdim=True) + 1.0 / torch.clamp(K, min=1e-6))
    q = torch.clamp(y.norm(dim=-1, keepdim=True), min=1e-7)
    th = z0 / R
    e = torch.clamp(th - 1.0, min=1e-6)
    g = torch.where(th < 1.01, torch.sqrt(2.0 * e), torch.acosh(torch.clamp(th, min=1.0 + 1e-7)))
    out = gamma * R * g * y / q
    return x @ W0.T + bias + out, th.detach().squeeze(-1), (n / (s * R)).detach().squeeze(-1)


def simplified_forward(x, W0, bias, A, B, k, gamma):
    """`hyplora_simplified`: k raw (1,)."""
    u = 2.0 * x / (1.0 + k * (x * x).sum(dim=-1, keepdim=True))
    y = (u @ A.T) @ B.T
    y0 = torch.sqrt((y * y).sum(dim=-1, keepdim=True) + k)
    out = y / (1.0 + torch.sqrt(torch.abs(k)) * y0)
    return x @ W0.T + bias + gamma * out


# ---- case construction -----------------------------------------------------------------------
def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def rows_at_norms(direction_rows, y_targets, A, B, s, theta):
    """x rows along given directions whose official |y| hits the targets (|h| is monotone in |x|)."""
    K = F.softplus(theta) + 1e-6
    R = math.sqrt(float(K))
    rows = []
    for d, target in zip(direction_rows, y_targets):
        d = d / d.norm()
        gain = float(((d @ A.T) @ B.T).norm())  # |y| = R sinh(ρ)·gain, ρ = |x|/(sR)
        rho = math.asinh(target / (R * gain))
        rows.append(d * rho * s * R)
    return torch.stack(rows)


def official_case(name, gen, N, D_in, D_out, r, theta, s, gamma, x=None, B_scale=0.5, y_targets=None,
                  B_zero=False):
    A = torch.randn(r, D_in, generator=gen) * 0.4
    B = torch.zeros(D_out, r) if B_zero else torch.randn(D_out, r, generator=gen) * B_scale
    W0 = torch.randn(D_out, D_in, generator=gen) * 0.3
    bias = torch.randn(D_out, generator=gen) * 0.1
    G = torch.randn(N, D_out, generator=gen)
    if x is None:
        x = torch.randn(N, D_in, generator=gen)
    if y_targets is not None:
        x = rows_at_norms(torch.randn(N, D_in, generator=gen), y_targets, A, B, s, torch.tensor([theta]))
    x = x.clone().requires_grad_(True)
    A.requires_grad_(True)
    B.requires_grad_(True)
    th = torch.tensor([theta], requires_grad=True)
    sv = torch.tensor([s], requires_grad=True)
    raw = {}
    th.register_hook(lambda g: raw.setdefault("theta", g.clone()))  # before the clamp
    th.register_hook(lambda g: g.clamp(-0.01, 0.01))                # the published hook
    z, theta_prime, rho = official_forward(x, W0, bias, A, B, th, sv, gamma)
    (z * G).sum().backward()
    regions = ["below_1" if t < 1 else ("small_angle" if t < 1.01 else "acosh") for t in theta_prime.tolist()]
    return {
        "name": name, "N": N, "D_in": D_in, "D_out": D_out, "r": r, "gamma": gamma, "theta": theta, "s": s,
        "x": flat(x), "W0": flat(W0), "bias": flat(bias), "A": flat(A), "B": flat(B), "G": flat(G),
        "z": flat(z), "grad_x": flat(x.grad), "grad_A": flat(A.grad), "grad_B": flat(B.grad),
        "grad_theta": float(th.grad), "grad_theta_unclipped": float(raw["theta"]), "grad_s": float(sv.grad),
        "theta_prime": [float(t) for t in theta_prime], "rho": [float(v) for v in rho], "regions": regions,
        "sinh_clamped": [bool(v > 12.0) for v in rho.tolist()],
    }


def simplified_case(name, gen, N, D_in, D_out, r, k, gamma, x_scales):
    A = torch.randn(r, D_in, generator=gen) * 0.4
    B = torch.randn(D_out, r, generator=gen) * 0.5
    W0 = torch.randn(D_out, D_in, generator=gen) * 0.3
    bias = torch.randn(D_out, generator=gen) * 0.1
    G = torch.randn(N, D_out, generator=gen)
    x = torch.randn(N, D_in, generator=gen)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor(x_scales).unsqueeze(-1) / math.sqrt(k)
    x.requires_grad_(True)
    A.requires_grad_(True)
    B.requires_grad_(True)
    kv = torch.tensor([k], requires_grad=True)
    z = simplified_forward(x, W0, bias, A, B, kv, gamma)
    (z * G).sum().backward()
    return {
        "name": name, "N": N, "D_in": D_in, "D_out": D_out, "r": r, "gamma": gamma, "k": k,
        "x": flat(x), "W0": flat(W0), "bias": flat(bias), "A": flat(A), "B": flat(B), "G": flat(G),
        "z": flat(z), "grad_x": flat(x.grad), "grad_A": flat(A.grad), "grad_B": flat(B.grad),
        "grad_k": float(kv.grad), "x_norm_sqrt_k": list(x_scales),
    }


def main():
    gen = torch.Generator().manual_seed(20241005)
    official = [
        # θ = 1 (K = softplus(1) = 1.3133, every script's default): one row per region of
        # MATH_NOTES §4.2 — |y| = 0.3 (θ' < 1), 0.75 (1 < θ' < 1.01), 1.5 (θ' ≥ 1.01).
        official_case("three_regions", gen, 3, 6, 5, 2, 1.0, 1.3, 0.5, y_targets=[0.3, 0.75, 1.5]),
        # random inputs, K = 1.3133, s = √D_in (the official initial value), larger gradients on θ
        official_case("random_sqrt_d", gen, 4, 9, 7, 3, 1.0, 3.0, 2.0, B_scale=3.0),
        # K < 1 (θ = −1): the output floor R·arcosh(1/K) as y → 0; one row exactly zero (n clamp)
        official_case("small_K_zero_row", gen, 3, 5, 4, 2, -1.0, 1.0, 1.0,
                      x=torch.cat([torch.randn(2, 5, generator=gen), torch.zeros(1, 5)])),
        # sinh clamp active: ρ = n/(sR) > 12 on every row (s small, |x| large)
        official_case("sinh_clamp", gen, 2, 4, 3, 2, 0.3, 0.05, 0.25, x=torch.randn(2, 4, generator=gen) * 3.0,
                      B_scale=1e-5),
        # the same three regions with a small γ, so that the θ hook does not clip (|∂L/∂θ| < 0.01)
        official_case("three_regions_unclipped", gen, 3, 5, 4, 3, 1.0, 0.8, 0.002, y_targets=[0.6, 0.755, 2.0]),
        # B = 0 (the initial state): y = 0, q = 1e-7; out = 0 but ∂B ≠ 0
        official_case("b_zero", gen, 3, 4, 3, 2, 1.0, 2.0, 0.5, B_zero=True),
    ]
    simplified = [
        # |x|·√k from well below 1 to past the fold-back at |x| = 1/√k
        simplified_case("k_half", gen, 4, 6, 5, 2, 0.5, 2.0, [0.1, 0.9, 1.0, 4.0]),
        simplified_case("k_one", gen, 3, 5, 4, 3, 1.0, 0.5, [0.3, 1.5, 10.0]),
        simplified_case("k_three_one_row", gen, 1, 3, 2, 1, 3.0, 1.0, [0.7]),
    ]
    for c in official:
        print(f"official {c['name']:18s} regions={c['regions']} clamped={c['sinh_clamped']} "
              f"dθ={c['grad_theta_unclipped']:.3e}")
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tests/autodiff/make_official_reference.py", "torch": torch.__version__,
            "dtype": "float64", "loss": "sum(G * z)"}
    with open(os.path.join(OUT, "official_reference.json"), "w") as f:
        json.dump({"meta": meta, "cases": official}, f, indent=None, separators=(",", ":"))
        f.write("\n")
    with open(os.path.join(OUT, "official_simplified_reference.json"), "w") as f:
        json.dump({"meta": meta, "cases": simplified}, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
