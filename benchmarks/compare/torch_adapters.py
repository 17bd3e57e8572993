#!/usr/bin/env python3
"""The adapter layers of benchmarks/bench_adapters.cpp in PyTorch: a float64 cross-check of the C++
layers against torch autograd, and timings side by side with the C++ binary.

    python3 benchmarks/compare/torch_adapters.py build/benchmarks/bench_adapters [--quick] [--threads N]
    python3 benchmarks/compare/torch_adapters.py --check-only --dump build/benchmarks/adapters_dump
    python3 benchmarks/compare/torch_adapters.py --device cuda      # PyTorch on the GPU only

Cross-check (--check; on by default when adapters_dump sits next to the given bench_adapters,
--no-check skips it; --check-only runs nothing else, as ctest interop.torch_adapters does): runs
adapters_dump, which writes one safetensors file with, for every adapter kind (linear, lora,
dora, hyplora exact with σ_out = 1 and σ_out = σ, hyplora_official, hyplora_stereographic,
hyplora_official_simplified), seeded float64 inputs and parameters, the C++ output z and every
gradient (x, A, B, m, the raw curvature θ or k, the feature scale σ) of one forward + backward of
nn::AdaptedLinear<double> with a fixed upstream gradient. Each kind is recomputed here in float64
from its formulas with torch autograd (the official kind verbatim as the published code, θ hook
included), and the largest relative error per tensor is printed; exit status 1 if any exceeds
1e-10.

Timing: one step = forward, then backward w.r.t. x and the adapter parameters (W0, b frozen),
float32, d_in = d_out = d. Each kind is timed as the whole layer and as the adapter branch alone
(the frozen GEMM x·W0ᵀ and its backward excluded; DoRA's branch is s ⊙ γ·B·A·x, its
(s − 1) ⊙ x·W0ᵀ term needs the frozen GEMM) and printed next to the C++ Adapter/... and Branch/...
benchmarks with the ratios C++/torch. HypLoRA "official" is written as the published code does it
(a dozen elementwise ops, MATH_NOTES §4.1); "hyplora" (exact) and "stereographic" are plain torch
ops of docs/hyplora.md's formulas. --device cuda times PyTorch eager on the GPU at issue #6's
shapes (N 2048; D 4096, R 32 and 8; D 1024, R 32) to read beside bench_cuda_adapters, which
scripts/gpu-check.sh runs in the same script. Pinned versions: benchmarks/compare/requirements.txt.

Re-measuring a few cells on a noisy machine: --shapes 512:1024:32,2048:1024:32 --kinds hyplora,dora
--rounds 7 times, per shape and round, the C++ binary (a fresh run with that shape's benchmarks)
and then PyTorch, back to back, and prints the median of the per-round ratios with their range,
instead of one C++ run for the whole grid followed by one PyTorch pass minutes later.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # ctest treats 77 as "skipped"
    print(f"torch_adapters.py: {e}; pip install -r benchmarks/compare/requirements.txt", file=sys.stderr)
    sys.exit(77)

KINDS = ["linear", "lora", "dora", "hyplora", "hyplora_official", "hyplora_stereographic"]

# Float64 agreement required of every tensor, as max|C++ − torch| / max|torch|. Both sides compute
# the same functions in double (unit roundoff 1.1e-16) but in a different order: the C++ nodes are
# fused (|y| read off aᵀ(BᵀB)a, series for sinhc/asinhc near 0, saved per-token scalars), torch
# differentiates the plain formulas. At these shapes (sums of ≤ 12 terms, token norms 0.05–6)
# rounding accounts for ≤ 1e-13; 1e-10 leaves that margin while any formula or sign error shows
# up orders of magnitude above it (e.g. the official arcosh fallback differs from arcosh by 1e-4).
TOLERANCE = 1e-10
THETA_CLIP = 0.01  # the published hook on θ: ∂L/∂θ clamped to ±0.01 per backward call
K_EPS = 1e-6  # K = softplus(θ) + 1e-6 (published and AdaptedLinear's learned curvature)


def sinhc(t):
    return torch.where(t < 1e-4, 1 + t * t / 6, torch.sinh(t) / t.clamp_min(1e-30))


def asinhc(t):
    return torch.where(t < 1e-4, 1 - t * t / 6, torch.asinh(t) / t.clamp_min(1e-30))


class Layer:
    """W0 (d, d) and b frozen; A (r, d) Kaiming-uniform, B (d, r) small random (a trained-looking B).

    Curvature: K fixed (self.theta is None) or K = softplus(θ) + 1e-6 from the raw θ; the official
    kind always reads θ, official_simplified its raw k. Feature scale: σ (exact kind, output factor
    σ_out = σ when self.sigma_out) or the official s."""

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
        self.theta = None  # fixed K, except for the official kind (below)
        if kind == "hyplora_official":
            self.theta = torch.tensor(math.log(math.expm1(1.0 - K_EPS)), dtype=dtype)  # K = 1
        self.k = torch.tensor(1.0, dtype=dtype)  # official_simplified's raw k
        self.sigma = torch.tensor(1.0, dtype=dtype)
        self.sigma_out = False
        self.s = torch.tensor(math.sqrt(d) if kind == "hyplora_official" else 1.0, dtype=dtype)

    @classmethod
    def from_dump(cls, case, t, meta):
        """The layer of one adapters_dump case, float64, every dumped parameter a leaf that
        receives a gradient (W0 and b only for the plain layer, whose base is trainable)."""
        kind = meta["kind"]
        kind = "linear" if kind == "none" else kind
        W0 = t[f"{case}.W0"]
        L = cls.__new__(cls)
        L.kind, L.r = kind, meta.get("r", 0)
        L.W0, L.b = W0.clone(), t[f"{case}.b"].reshape(-1).clone()
        L.gamma = meta.get("gamma", 1.0)
        if kind != "linear":
            # γ from the config fields, as AdapterConfig::scaling() must give it
            gamma = meta["alpha"] / (math.sqrt(meta["r"]) if meta["rslora"] else meta["r"])
            if abs(gamma - L.gamma) > 1e-15 * abs(gamma):
                raise SystemExit(f"{case}: metadata gamma {L.gamma!r} != alpha/r {gamma!r}")
        leaf = lambda name, shape=None: t[f"{case}.{name}"].reshape(shape if shape is not None else
                                                                    t[f"{case}.{name}"].shape).clone().requires_grad_()
        if kind == "linear":
            L.W0.requires_grad_()
            L.b.requires_grad_()
        else:
            L.A, L.B = leaf("A"), leaf("B")
        L.m = leaf("m", (-1,)) if kind == "dora" else None
        learn_k, learn_s = meta.get("learn_curvature", False), meta.get("learn_feature_scale", False)
        K = meta.get("K", 1.0)
        L.K = torch.tensor(K, dtype=torch.float64)
        L.theta = leaf("k", ()) if learn_k and kind != "hyplora_official_simplified" else None
        L.k = leaf("k", ()) if learn_k and kind == "hyplora_official_simplified" else torch.tensor(K, dtype=torch.float64)
        if kind == "hyplora_official":
            if L.theta is None:  # the fixed θ AdaptedLinear stores: softplus⁻¹(K − 1e-6)
                y = K - K_EPS
                L.theta = torch.tensor(y + math.log(-math.expm1(-y)), dtype=torch.float64)
            else:  # the published hook, registered on the parameter
                L.theta.register_hook(lambda g: g.clamp(-THETA_CLIP, THETA_CLIP))
        fs = meta.get("feature_scale", 1.0)
        scale = leaf("sigma", ()) if learn_s else torch.tensor(fs, dtype=torch.float64)
        L.sigma, L.s = scale, scale
        L.sigma_out = meta.get("scale_out_by_sigma", False)
        return L

    def to(self, device):
        """Moves every tensor attribute to device, keeping which are leaves that want gradients."""
        for name, v in vars(self).items():
            if isinstance(v, torch.Tensor):
                setattr(self, name, v.detach().to(device).requires_grad_(v.requires_grad))
        return self

    def leaves(self):
        """Dump name -> torch leaf, for the gradients the C++ side dumped."""
        out = {"W0": self.W0, "b": self.b}
        if self.kind != "linear":
            out.update(A=self.A, B=self.B, m=self.m, sigma=self.sigma)
            out["k"] = self.k if self.kind == "hyplora_official_simplified" else self.theta
        return out

    def curvature(self):
        return self.K if self.theta is None else F.softplus(self.theta) + K_EPS

    def params(self):
        if self.kind == "linear":
            return []
        return [self.A, self.B] + ([self.m] if self.kind == "dora" else [])

    def branch(self, x):
        """The adapter's contribution (DoRA: its whole output minus nothing; see forward)."""
        k, A, B, g = self.kind, self.A, self.B, self.gamma
        if k == "lora":
            return g * ((x @ A.t()) @ B.t())
        if k == "hyplora":  # exact: γ·σ_out·f_R⁻¹(B A f_R(x/σ)), docs/hyplora.md Eq. (152)
            R = self.curvature().sqrt()
            sig = self.sigma
            n = x.norm(dim=1, keepdim=True)
            h = sinhc(n / (sig * R)) * (x / sig)
            y = (h @ A.t()) @ B.t()
            q = y.norm(dim=1, keepdim=True)
            return g * (sig if self.sigma_out else 1.0) * asinhc(q / R) * y
        if k == "hyplora_official":  # published forward, verbatim (MATH_NOTES §4.1)
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
        if k == "hyplora_stereographic":  # γ·y/(1 + √(1 + |y|²/K)), y = B A f_R(2x), Eq. (194)–(196)
            K = self.curvature()
            R = K.sqrt()
            n = x.norm(dim=1, keepdim=True)
            f = sinhc(2 * n / R) * (2 * x)
            y = (f @ A.t()) @ B.t()
            return g * y / (1 + torch.sqrt(1 + (y * y).sum(dim=1, keepdim=True) / K))
        if k == "hyplora_official_simplified":  # published `hyplora_simplified` (MATH_NOTES §3.3)
            kk = self.k
            x_sq = (x * x).sum(dim=-1, keepdim=True)
            u = 2 * x / (1 + kk * x_sq)  # the time coordinate it also computes is discarded
            y = (u @ A.t()) @ B.t()
            y0 = torch.sqrt((y * y).sum(dim=-1, keepdim=True) + kk)
            return g * y / (1 + torch.sqrt(kk.abs()) * y0)
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


# ---- float64 cross-check -------------------------------------------------------------------------

def read_safetensors(path):
    """(tensors, metadata) of a safetensors file: the `safetensors` package when installed (an
    independent reader of our writer's files), else this minimal little-endian reader."""
    try:
        from safetensors import safe_open
        with safe_open(path, framework="np") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except ImportError:
        pass
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    types = {"F64": "<f8", "F32": "<f4"}
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + b:8 + n + end], dtype=types[e["dtype"]]).reshape(e["shape"])
    return out, meta


def rel_err(cpp, ref):
    """max|cpp − ref| / max|ref| (normwise: entries near zero do not blow it up)."""
    scale = ref.abs().max().item()
    return (cpp - ref).abs().max().item() / (scale if scale > 0 else 1.0)


def official_regions(L, x):
    """How many tokens fall in each θ' region of the published branch (Eq. (178))."""
    with torch.no_grad():
        K = F.softplus(L.theta) + K_EPS
        R = K.sqrt()
        n = x.norm(dim=-1, keepdim=True).clamp_min(1e-7)
        h = R * torch.sinh((n / (L.s * R)).clamp(max=12.0)) * x / n
        y = (h @ L.A.t()) @ L.B.t()
        th = torch.sqrt((y * y).sum(-1) + 1 / K.clamp_min(1e-6)) / R
    return (f"θ' < 1: {int((th < 1).sum())}, [1, 1.01): {int(((th >= 1) & (th < 1.01)).sum())}, "
            f">= 1.01: {int((th >= 1.01).sum())}")


def check(dump_bin, out_path):
    """Runs adapters_dump, recomputes every case with torch autograd; True when all agree."""
    torch.set_default_dtype(torch.float64)
    print("running:", dump_bin, out_path, file=sys.stderr)
    subprocess.run([dump_bin, out_path], check=True, stdout=subprocess.DEVNULL)
    arrays, meta = read_safetensors(out_path)
    t = {k: torch.from_numpy(np.array(v, dtype=np.float64)) for k, v in arrays.items()}
    cases = meta["cases"].split(",")
    print(f"\nfloat64 cross-check, C++ (nn::AdaptedLinear<double>) vs torch {torch.__version__} autograd "
          f"({meta.get('shape', '')}); max |C++ − torch| / max |torch| per tensor, tolerance {TOLERANCE:g}")
    worst_all, ok = 0.0, True
    for case in cases:
        cm = json.loads(meta[case])
        L = Layer.from_dump(case, t, cm)
        x = t[f"{case}.x"].clone().requires_grad_()
        z = L.forward(x)
        z.backward(t[f"{case}.G"])
        errs = {"z": rel_err(t[f"{case}.z"], z.detach())}
        leaves = L.leaves()
        for key in sorted(k for k in t if k.startswith(f"{case}.grad.")):
            what = key[len(case) + 6:]
            ref = x.grad if what == "x" else leaves[what].grad
            if ref is None:
                raise SystemExit(f"{case}: torch computed no gradient for '{what}'")
            errs[f"grad.{what}"] = rel_err(t[key], ref.reshape(t[key].shape))
        worst = max(errs.values())
        worst_all = max(worst_all, worst)
        bad = [k for k, e in errs.items() if not e <= TOLERANCE]  # NaN fails too
        ok = ok and not bad
        note = ""
        if cm["kind"] == "hyplora_official":
            gt = L.theta.grad.item()
            note = f"  [{official_regions(L, x.detach())}; ∂L/∂θ = {gt:.4g}{' (clipped)' if abs(gt) >= THETA_CLIP else ''}]"
        print(f"  {case:<28} max {worst:9.2e}  {'ok' if not bad else 'FAIL ' + ','.join(bad)}{note}")
        print("    " + "  ".join(f"{k} {e:.1e}" for k, e in errs.items()))
    print(f"cross-check {'passed' if ok else 'FAILED'}: worst relative error {worst_all:.2e} (tolerance {TOLERANCE:g})")
    torch.set_default_dtype(torch.float32)
    return ok


# ---- timing --------------------------------------------------------------------------------------

def time_step(fn, X, G, params, reps, min_time=0.3):
    sync = torch.cuda.synchronize if X.is_cuda else (lambda: None)

    def step():
        x = X.detach().requires_grad_()
        out = fn(x)
        out.backward(G)
        for p in params:
            p.grad = None
    step()
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    one = time.perf_counter() - t0
    iters = max(1, int(min_time / max(one, 1e-6)))
    res = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        sync()
        res.append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(res)


def shapes(quick, device="cpu", only=None):
    if only:  # "N:D:R,N:D:R"
        return [tuple(int(v) for v in item.split(":")) for item in only.split(",")]
    if device != "cpu":  # issue #6's goal shape and the two bench_cuda_adapters also runs
        return [(2048, 4096, 32), (2048, 4096, 8), (2048, 1024, 32)]
    out = []
    for d in (256, 1024, 4096):
        for n in (128, 512, 2048):
            for r in (8, 32):
                if quick and not (n == 512 and (d <= 1024 or r == 32)):
                    continue
                out.append((n, d, r))
    return out


def run_cpp(binary, quick, threads, reps, flt=None):
    if flt is None:
        flt = "(Adapter|Branch)/.*/n:512/(d:(256|1024)/|d:4096/r:32)" if quick else "(Adapter|Branch)/"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [binary, f"--benchmark_filter={flt}", "--benchmark_format=json", f"--benchmark_repetitions={reps}",
           "--benchmark_report_aggregates_only=true"]
    print("running:", " ".join(cmd), file=sys.stderr)
    data = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    res = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median" or (reps == 1 and b.get("run_type") == "iteration"):
            # run_name carries a "/real_time" suffix (UseRealTime); key by the bare name
            res[b["run_name"].split("/real_time")[0]] = b["real_time"]  # ms
    return data.get("context", {}), res


def print_torch_config():
    """torch's BLAS/LAPACK and thread settings (the figures depend on them)."""
    cfg = torch.__config__.show()
    setting = lambda key: (re.search(rf"\b{key}=([^,\s]+)", cfg) or [None, "?"])[1]
    libs = [ln.strip(" -") for ln in cfg.splitlines() if "Math Kernel" in ln or "OpenBLAS" in ln or "oneDNN" in ln
            or "MKL-DNN" in ln]
    print(f"torch {torch.__version__}: BLAS_INFO={setting('BLAS_INFO')}, LAPACK_INFO={setting('LAPACK_INFO')}, "
          f"USE_OPENMP={setting('USE_OPENMP')}; " + "; ".join(libs))
    print(f"torch threads: get_num_threads() = {torch.get_num_threads()}, get_num_interop_threads() = "
          f"{torch.get_num_interop_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS', 'unset')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", nargs="?", help="path to bench_adapters (omit to time PyTorch only)")
    ap.add_argument("--quick", action="store_true", help="n=512 shapes only (plus the goal shape d=4096, r=32)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--shapes", help="only these shapes, N:D:R[,N:D:R...] (e.g. 512:1024:32)")
    ap.add_argument("--kinds", help=f"only these kinds, comma-separated, of {','.join(KINDS)}")
    ap.add_argument("--rounds", type=int, default=1,
                    help="> 1: per shape, alternate C++ and PyTorch this many times (each --reps) and report "
                         "the median and range of the per-round ratios")
    ap.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                    help="float64 cross-check against adapters_dump (default: when it is found)")
    ap.add_argument("--check-only", action="store_true", help="run the cross-check and exit (no timing)")
    ap.add_argument("--dump", help="path to adapters_dump (default: next to the binary)")
    ap.add_argument("--out", help="where adapters_dump writes its file (default: a temporary file)")
    ap.add_argument("--device", default="cpu", help="torch device for the timing (cuda: PyTorch eager on the GPU, "
                    "no C++ side; compare with bench_cuda_adapters)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    dump = a.dump or (os.path.join(os.path.dirname(os.path.abspath(a.binary)), "adapters_dump") if a.binary else None)
    want = a.check if a.check is not None else (a.check_only or bool(dump and os.path.isfile(dump)))
    if a.check_only and a.check is False:
        ap.error("--check-only contradicts --no-check")
    if want:
        if not (dump and os.path.isfile(dump)):
            ap.error(f"--check needs adapters_dump (not found: {dump}); build the target or pass --dump")
        with tempfile.TemporaryDirectory() as tmp:
            ok = check(dump, a.out or os.path.join(tmp, "adapters_dump.safetensors"))
        if a.check_only or not ok:
            sys.exit(0 if ok else 1)
    elif a.check_only:
        ap.error("--check-only needs adapters_dump (--dump)")

    kinds = KINDS
    if a.kinds:
        kinds = [k for k in a.kinds.split(",") if k]
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            ap.error(f"--kinds: unknown {bad}; known: {KINDS}")
    print_torch_config()
    if a.rounds > 1:
        if not a.binary or a.device != "cpu":
            ap.error("--rounds needs the C++ binary and --device cpu")
        paired_rounds(a, kinds)
        return
    cpp = {}
    if a.binary:
        ctx, cpp = run_cpp(a.binary, a.quick, a.threads, a.reps)
        print(f"C++: {ctx.get('num_cpus')} CPUs, OMP_NUM_THREADS={a.threads}")

    print("\nms per step (median); ratio = C++/torch; branch = the adapter alone, frozen GEMM excluded")
    print(f"{'shape':<22}{'kind':<24}{'torch layer':>12}{'C++ layer':>10}{'ratio':>7}"
          f"{'torch branch':>14}{'C++ branch':>11}{'ratio':>7}")
    fmt = lambda v: f"{v:.3f}" if v is not None and v == v else "-"
    ratio = lambda c, t: f"{c / t:.3f}" if c is not None and t == t else "-"
    if a.device != "cpu":
        if a.binary:
            ap.error("--device cuda times PyTorch only; the C++ side on the GPU is bench_cuda_adapters")
        print(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    for n, d, r in shapes(a.quick, a.device, a.shapes):
        X = (torch.rand(n, d) * 2 - 1).to(a.device)
        G = (torch.rand(n, d) * 2 - 1).to(a.device)
        shape = f"n:{n}/d:{d}/r:{r}"
        for k in kinds:
            L = Layer(k, d, r).to(a.device)
            tl = time_step(L.forward, X, G, L.params(), a.reps)
            tb = time_step(L.branch, X, G, L.params(), a.reps) if k != "linear" else float("nan")
            cl, cb = cpp.get(f"Adapter/{k}/{shape}"), cpp.get(f"Branch/{k}/{shape}")
            print(f"{shape:<22}{k:<24}{fmt(tl):>12}{fmt(cl):>10}{ratio(cl, tl):>7}"
                  f"{fmt(tb):>14}{fmt(cb):>11}{ratio(cb, tb):>7}", flush=True)
        print()


def paired_rounds(a, kinds):
    """Per shape, a.rounds rounds of (C++ run of that shape's benchmarks, then PyTorch), each side a
    median of a.reps; prints medians of both sides and the median [min, max] of per-round ratios."""
    print(f"\n{a.rounds} paired rounds per shape, each C++ then PyTorch (medians of {a.reps}); "
          f"ratio = C++/torch, median of the per-round ratios [min, max]")
    print(f"{'shape':<22}{'kind':<24}{'torch ms':>10}{'C++ ms':>9}{'ratio':>7}{'range':>16}   "
          f"{'torch br':>9}{'C++ br':>9}{'ratio':>7}{'range':>16}")
    rng = lambda v: f"[{min(v):.3f}, {max(v):.3f}]" if v else "-"
    med = lambda v: f"{statistics.median(v):.3f}" if v else "-"
    for n, d, r in shapes(a.quick, "cpu", a.shapes):
        X, G = torch.rand(n, d) * 2 - 1, torch.rand(n, d) * 2 - 1
        shape = f"n:{n}/d:{d}/r:{r}"
        layers = {k: Layer(k, d, r) for k in kinds}
        flt = f"^(Adapter|Branch)/({'|'.join(kinds)})/{shape}(/|$)"
        acc = {k: {"tl": [], "cl": [], "rl": [], "tb": [], "cb": [], "rb": []} for k in kinds}
        for _ in range(a.rounds):
            _, cpp = run_cpp(a.binary, False, a.threads, a.reps, flt)
            for k, L in layers.items():
                tl = time_step(L.forward, X, G, L.params(), a.reps)
                cl = cpp.get(f"Adapter/{k}/{shape}")
                v = acc[k]
                v["tl"].append(tl)
                if cl is not None:
                    v["cl"].append(cl)
                    v["rl"].append(cl / tl)
                if k != "linear":
                    tb = time_step(L.branch, X, G, L.params(), a.reps)
                    cb = cpp.get(f"Branch/{k}/{shape}")
                    v["tb"].append(tb)
                    if cb is not None:
                        v["cb"].append(cb)
                        v["rb"].append(cb / tb)
        for k in kinds:
            v = acc[k]
            print(f"{shape:<22}{k:<24}{med(v['tl']):>10}{med(v['cl']):>9}{med(v['rl']):>7}{rng(v['rl']):>16}   "
                  f"{med(v['tb']):>9}{med(v['cb']):>9}{med(v['rb']):>7}{rng(v['rb']):>16}", flush=True)
        print()


if __name__ == "__main__":
    main()
