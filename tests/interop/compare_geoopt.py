#!/usr/bin/env python3
"""Compare hyplora's manifold ops with geoopt's in float64.

Runs interop_dump (seeded inputs + hyplora's results as JSON), recomputes every op with geoopt
and prints the max deviation per (model, op, K). Curvature mapping (docs/math.md §1):
geoopt Lorentz(k) has k = K; geoopt PoincareBall(c) has c = 1/K.

Exit codes: 0 all within tolerance, 1 a deviation too large, 77 geoopt not importable (ctest
SKIP_RETURN_CODE).
"""
import argparse
import json
import subprocess
import sys
import warnings

try:
    import torch
    import geoopt
except ImportError:
    print("SKIPPED: geoopt not installed (pip install -r tests/interop/requirements.txt)")
    sys.exit(77)

warnings.filterwarnings("ignore")
# Relative deviation allowed per op, float64 (measured maxima were ~3e-15 on the ball and up to
# 9e-13 for Lorentz expmap: geoopt's Lorentz exp/log/transp go through arcosh(−⟨x,y⟩/K), which
# loses digits that hyplora's asinh/chord forms keep, MATH_NOTES §5).
TOL = {
    ("ball", "expmap0"): 1e-12, ("ball", "logmap0"): 1e-12, ("ball", "dist"): 1e-12,
    ("ball", "transp"): 1e-12, ("ball", "expmap"): 1e-12, ("ball", "logmap"): 1e-12,
    ("lorentz", "expmap0"): 1e-12, ("lorentz", "logmap0"): 1e-12, ("lorentz", "dist"): 1e-12,
    ("lorentz", "transp"): 1e-11, ("lorentz", "expmap"): 1e-11, ("lorentz", "logmap"): 1e-11,
}


def t(a):
    return torch.tensor(a, dtype=torch.float64)


def geoopt_ops(model, K, c):
    # Pass the curvature as a float64 tensor: PoincareBall stores c through a softplus-inverse
    # raw value, and a Python float would go through float32 first (c off by ~1e-8).
    if model == "ball":
        m = geoopt.PoincareBall(c=t(1.0 / K))
    else:
        m = geoopt.Lorentz(k=t(K))
    x, y, u, u0 = t(c["x"]), t(c["y"]), t(c["u"]), t(c["u0"])
    return {
        "expmap0": m.expmap0(u0),
        "logmap0": m.logmap0(y),
        "dist": m.dist(x, y),
        "transp": m.transp(x, y, u),
        "expmap": m.expmap(x, u),
        "logmap": m.logmap(x, y),
    }


def rel_dev(ours, theirs):
    ours = t(ours)
    if ours.dim() == 1:
        ours, theirs = ours[:, None], theirs[:, None]
    scale = torch.clamp(theirs.norm(dim=-1), min=1.0)
    return float(((ours - theirs).norm(dim=-1) / scale).max())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="path to the interop_dump executable")
    args = ap.parse_args()
    out = subprocess.run([args.dump], check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    failed = 0
    print(f"torch {torch.__version__}, geoopt {geoopt.__version__}; max |ours - geoopt| / max(1, |geoopt|)")
    for case in data["cases"]:
        K = case["K"]
        for model in ("ball", "lorentz"):
            ref = geoopt_ops(model, K, case[model])
            for op, theirs in ref.items():
                dev = rel_dev(case[model][op], theirs)
                tol = TOL[(model, op)]
                ok = dev <= tol
                failed += not ok
                print(f"  K={K:<5} {model:8s} {op:8s} {dev:.3e}  (tol {tol:.0e}) {'ok' if ok else 'FAIL'}")
    total = len(data["cases"]) * 12
    print(f"interop: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
