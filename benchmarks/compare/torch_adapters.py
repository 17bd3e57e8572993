#!/usr/bin/env python3
"""The adapter layers of benchmarks/bench_adapters.cpp in PyTorch, timed the same way, side by side
with the C++ binary.

    python3 benchmarks/compare/torch_adapters.py build/benchmarks/bench_adapters [--quick] [--threads N]

One step = forward, then backward w.r.t. x and the adapter parameters (W0, b frozen), float32,
d_in = d_out = d. Each kind is timed as the whole layer and as the adapter branch alone (the
frozen GEMM x·W0ᵀ and its backward excluded). HypLoRA "official" is written as the published
code does it (a dozen elementwise ops, MATH_NOTES §4.1); "hyplora" (exact) and "stereographic"
are plain torch ops of docs/math.md's formulas.

Not done here: a float64 cross-check of outputs and gradients against the C++ layers (that needs
a C++ dump program); the C++ side is checked against central differences in tests/nn instead.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

KINDS = ["linear", "lora", "dora", "hyplora", "hyplora_official", "hyplora_stereographic"]


def sinhc(t):
    return torch.where(t < 1e-4, 1 + t * t / 6, torch.sinh(t) / t.clamp_min(1e-30))


def asinhc(t):
    return torch.where(t < 1e-4, 1 - t * t / 6, torch.asinh(t) / t.clamp_min(1e-30))


class Layer:
    """W0 (d, d) and b frozen; A (r, d) Kaiming-uniform, B (d, r) small random (a trained-looking B)."""

    def __init__(self, kind, d, r, dtype=torch.float32):
        g = torch.Generator().manual_seed(0)
        u = lambda *s, b: (torch.rand(*s, generator=g, dtype=dtype) * 2 - 1) * b
        self.kind, self.r = kind, r
        self.W0 = u(d, d, b=1 / math.sqrt(d))
        self.b = u(d, b=1 / math.sqrt(d))
        self.A = u(r, d, b=1 / math.sqrt(d)).requires_grad_()
        self.B = u(d, r, b=0.02).requires_grad_()
        self.gamma = 2.0  # alpha = 2r, γ = α/r (as bench_adapters.cpp)
        self.m = self.W0.norm(dim=1).clone().requires_grad_()  # DoRA magnitude
        self.K = torch.tensor(1.0, dtype=dtype)
        self.theta = torch.tensor(math.log(math.expm1(1.0 - 1e-6)), dtype=dtype)  # K = softplus(θ)+1e-6 = 1
        self.s = torch.tensor(math.sqrt(d) if kind == "hyplora_official" else 1.0, dtype=dtype)

    def params(self):
        if self.kind == "linear":
            return []
        return [self.A, self.B] + ([self.m] if self.kind == "dora" else [])

    def branch(self, x):
        """The adapter's contribution (DoRA: its whole output minus nothing; see forward)."""
        k, A, B, g = self.kind, self.A, self.B, self.gamma
        if k == "lora":
            return g * ((x @ A.t()) @ B.t())
        if k == "hyplora":  # exact: γ·f_R⁻¹(B A f_R(x/σ)), σ = 1
            R = self.K.sqrt()
            n = x.norm(dim=1, keepdim=True)
            h = sinhc(n / R) * x
            y = (h @ A.t()) @ B.t()
            q = y.norm(dim=1, keepdim=True)
            return g * asinhc(q / R) * y
        if k == "hyplora_official":  # published forward, verbatim
            x_norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-7)
            x_dir = x / x_norm
            K = F.softplus(self.theta) + 1e-6
            sqrt_K = K.sqrt()
            arg = (x_norm / (self.s * sqrt_K)).clamp(max=12.0)
            h = sqrt_K * torch.sinh(arg) * x_dir
            y = (h @ A.t()) @ B.t()
            y_norm = y.norm(dim=-1, keepdim=True)
            z0 = torch.sqrt(y_norm ** 2 + 1.0 / K.clamp_min(1e-6))
            q = y_norm.clamp_min(1e-7)
            th = z0 / sqrt_K
            e = (th - 1).clamp_min(1e-6)
            gth = torch.where(th < 1.01, torch.sqrt(2 * e), torch.acosh(th.clamp_min(1 + 1e-7)))
            return g * sqrt_K * gth * y / q
        if k == "hyplora_stereographic":  # γ·y/(1 + √(1 + |y|²/K)), y = B A f_R(2x)
            R = self.K.sqrt()
            n = x.norm(dim=1, keepdim=True)
            f = sinhc(2 * n / R) * (2 * x)
            y = (f @ A.t()) @ B.t()
            return g * y / (1 + torch.sqrt(1 + (y * y).sum(dim=1, keepdim=True) / self.K))
        if k == "dora":  # the part beyond the frozen GEMM: (s−1)⊙(x W0ᵀ) needs that GEMM; see forward
            V = self.W0 + g * (B @ A)
            s = self.m / V.norm(dim=1)
            return s * (g * ((x @ A.t()) @ B.t()))
        raise ValueError(k)

    def forward(self, x):
        if self.kind == "linear":
            return F.linear(x, self.W0, self.b)
        if self.kind == "dora":  # exact norm gradient (not detached), as the C++ layer
            V = self.W0 + self.gamma * (self.B @ self.A)
            s = self.m / V.norm(dim=1)
            return s * (F.linear(x, self.W0) + self.gamma * ((x @ self.A.t()) @ self.B.t())) + self.b
        return F.linear(x, self.W0, self.b) + self.branch(x)


def time_step(fn, X, G, params, reps, min_time=0.3):
    def step():
        x = X.detach().requires_grad_()
        out = fn(x)
        out.backward(G)
        for p in params:
            p.grad = None
    step()
    t0 = time.perf_counter()
    step()
    one = time.perf_counter() - t0
    iters = max(1, int(min_time / max(one, 1e-6)))
    res = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        res.append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(res)


def shapes(quick):
    out = []
    for d in (256, 1024, 4096):
        for n in (128, 512, 2048):
            for r in (8, 32):
                if quick and not (n == 512 and (d <= 1024 or r == 32)):
                    continue
                out.append((n, d, r))
    return out


def run_cpp(binary, quick, threads, reps):
    flt = "Adapter/.*/n:512/(d:(256|1024)/|d:4096/r:32)" if quick else "Adapter/"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [binary, f"--benchmark_filter={flt}", "--benchmark_format=json", f"--benchmark_repetitions={reps}",
           "--benchmark_report_aggregates_only=true"]
    print("running:", " ".join(cmd), file=sys.stderr)
    data = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    res = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            # run_name carries a "/real_time" suffix (UseRealTime); key by the bare name
            res[b["run_name"].split("/real_time")[0]] = b["real_time"]  # ms
    return data.get("context", {}), res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", help="path to bench_adapters (omit to time PyTorch only)")
    ap.add_argument("--quick", action="store_true", help="n=512 shapes only (plus the goal shape d=4096, r=32)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(torch.__config__.show())
    print("BLAS_INFO:", torch.backends.mkl.is_available() and "MKL available" or "no MKL")
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")

    cpp = {}
    if a.binary:
        ctx, cpp = run_cpp(a.binary, a.quick, a.threads, a.reps)
        print(f"C++: {ctx.get('num_cpus')} CPUs, OMP_NUM_THREADS={a.threads}")

    print(f"\n{'shape':<22}{'kind':<24}{'torch layer ms':>15}{'torch branch ms':>16}{'C++ ms':>9}{'C++/torch':>10}")
    for n, d, r in shapes(a.quick):
        X = torch.rand(n, d) * 2 - 1
        G = torch.rand(n, d) * 2 - 1
        shape = f"n:{n}/d:{d}/r:{r}"
        for k in KINDS:
            L = Layer(k, d, r)
            tl = time_step(L.forward, X, G, L.params(), a.reps)
            tb = time_step(L.branch, X, G, L.params(), a.reps) if k not in ("linear",) else float("nan")
            c = cpp.get(f"Adapter/{k}/{shape}")
            cs = f"{c:9.3f}{c / tl:10.3f}" if c is not None else f"{'-':>9}{'-':>10}"
            print(f"{shape:<22}{k:<24}{tl:15.3f}{tb:16.3f}{cs}", flush=True)
        print()


if __name__ == "__main__":
    main()
