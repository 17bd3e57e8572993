#!/usr/bin/env python3
"""One GPT training step, hyplora (hyplora-finetune bench-step) vs PyTorch, side by side.

    python3 benchmarks/compare/torch_gpt.py build/examples/transformer/hyplora-finetune \
        [--threads N] [--rounds 5] [--iters 3] [--warmup 2] [--modes full,lora,hyplora] [--device cpu|cuda] [--wait-policy default|PASSIVE|ACTIVE]
        [-- bench-step options, e.g. --width 256 --batch 8]

The model is examples/transformer/model.hpp written in plain torch: byte vocabulary V = 256,
learned token + position embeddings, pre-norm blocks (layer norm eps 1e-5, or RMS norm), causal
multi-head attention (F.scaled_dot_product_attention, is_causal), GELU (tanh) MLP of width 4C,
output head tied to the token embedding, mean cross-entropy. One step = zero grads, forward,
backward, global grad-norm clip, AdamW (β = (0.9, 0.95), as the C++ Trainer). Every setting
(B, T, C, layers, heads, rank, α, K, σ, clip, lr) is read from `hyplora-finetune bench-step
--print-config` with the same C++ options, so both sides run identical shapes.

Modes: full (every weight trains), lora and hyplora on q, k, v, o, fc1, fc2 (base weights and
embeddings frozen). HypLoRA is the exact layer of ops_hyplora.hpp in torch ops:
    z = x·W0ᵀ + b + γ·σ_out·asinhc(|y|/R)·y,   y = B·A·(sinhc(|x|/(σR))·x/σ),   R = √K,
with σ = σ_out = √C and K = 1 as the example's AdaptedLinear config (values from the C++ config).

Timing: the script runs the C++ binary and a fresh torch subprocess per (round, mode), alternating
which goes first, with the same thread count (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = N for C++,
torch.set_num_threads(N) for torch; OMP_WAIT_POLICY as in the environment, see main());
ms/step is the median over all rounds × iters timed steps.
--device cuda (issue #6): both sides on the GPU — the C++ binary runs `bench-step --device cuda` (it
must be built with CUDA: gpt_cuda.cu), torch runs eager CUDA in float32 with TF32 off (cuBLAS's
default on the C++ side too), with torch.cuda.synchronize() before and after each timed step
(the C++ step ends by reading its loss back, which waits for the device the same way).
Peak memory: C++ VmHWM of its process (bench-step, one process per mode); torch ru_maxrss of its
fresh subprocess (tracemalloc cannot see torch's allocator). "base" is the RSS before the model is
built (the C++ binary, or the imported torch libraries), so peak − base is the step's own memory.
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

MODES = ["full", "lora", "hyplora"]


# ---- the torch worker (runs in a fresh process per mode) ------------------------------------
def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def worker(mode, cfg, threads, iters, warmup, device="cpu"):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False  # full float32 GEMMs, as the C++ side's cuBLAS default
        torch.backends.cudnn.allow_tf32 = False
    base_rss = rss_mib()
    torch.manual_seed(0)
    V, Tb, C, L, H = cfg["vocab"], cfg["block_size"], cfg["C"], cfg["layers"], cfg["heads"]
    B, T = cfg["B"], cfg["T"]
    r, gamma = cfg["rank"], cfg["alpha"] / cfg["rank"]
    R = math.sqrt(cfg["K"])
    sigma, sigma_out = cfg["sigma"], cfg["sigma_out"]
    targets = set(cfg["targets"])
    tiny = 1e-4  # below this the series 1 ± t²/6 is exact in float (C++: numerics<T>::sinhc_series_below)

    def sinhc(t):
        # sinh(min(t, m))/t past the clamp, as lorentz_rows::exp_coeffs
        return torch.where(t < tiny, 1 + t * t / 6, torch.sinh(t.clamp(max=cfg["max_exp_arg"])) / t.clamp_min(1e-30))

    def asinhc(t):
        return torch.where(t < tiny, 1 - t * t / 6, torch.asinh(t) / t.clamp_min(1e-30))

    def u(*shape, bound):
        return (torch.rand(*shape) * 2 - 1) * bound

    a = 0.02 * math.sqrt(3.0)
    P = {"wte": u(V, C, bound=a), "wpe": u(Tb, C, bound=a)}
    resid = 1.0 / math.sqrt(2.0 * max(1, L))
    names = ["q", "k", "v", "o", "fc1", "fc2"]
    dims = {"q": (C, C), "k": (C, C), "v": (C, C), "o": (C, C), "fc1": (C, 4 * C), "fc2": (4 * C, C)}
    for l in range(L):
        p = f"h.{l}."
        for n in ("ln_1", "ln_2"):
            P[p + n + ".weight"] = torch.ones(C)
            if not cfg["rms_norm"]:
                P[p + n + ".bias"] = torch.zeros(C)
        for n in names:
            din, dout = dims[n]
            bound = 1 / math.sqrt(din)
            P[p + n + ".weight"] = u(dout, din, bound=bound) * (resid if n in ("o", "fc2") else 1.0)
            P[p + n + ".bias"] = u(dout, bound=bound)
    P["ln_f.weight"] = torch.ones(C)
    if not cfg["rms_norm"]:
        P["ln_f.bias"] = torch.zeros(C)
    full = mode == "full"
    P = {k: t.to(device) for k, t in P.items()}  # initialised on the CPU (same stream), then moved
    for t in P.values():
        t.requires_grad_(full)
    adapters = {}
    if not full:
        for l in range(L):
            for n in names:
                if n in targets:
                    din, dout = dims[n]
                    A = u(r, din, bound=1 / math.sqrt(din)).to(device).requires_grad_()  # Kaiming-uniform(a = √5)
                    Bm = torch.zeros(dout, r, device=device, requires_grad=True)
                    adapters[f"h.{l}.{n}"] = (A, Bm)

    def linear(x, key):
        z = F.linear(x, P[key + ".weight"], P[key + ".bias"])
        ad = adapters.get(key)
        if ad is None:
            return z
        A, Bm = ad
        if mode == "lora":
            return z + gamma * F.linear(F.linear(x, A), Bm)
        # hyplora (exact): γσ_out·f_R⁻¹(B A f_R(x/σ))
        h = sinhc(x.norm(dim=-1, keepdim=True) / (sigma * R)) * (x / sigma)
        y = F.linear(F.linear(h, A), Bm)
        return z + (gamma * sigma_out) * asinhc(y.norm(dim=-1, keepdim=True) / R) * y

    def norm(x, key):
        if cfg["rms_norm"]:
            return F.rms_norm(x, (C,), P[key + ".weight"], eps=1e-5)
        return F.layer_norm(x, (C,), P[key + ".weight"], P[key + ".bias"], eps=1e-5)

    pos = torch.arange(T, device=device).repeat(B)

    def loss_fn(ids, tg):
        x = F.embedding(ids, P["wte"]) + F.embedding(pos, P["wpe"])  # (B·T, C)
        for l in range(L):
            p = f"h.{l}."
            h = norm(x, p + "ln_1")
            q, k, v = (linear(h, p + n).view(B, T, H, C // H).transpose(1, 2) for n in ("q", "k", "v"))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B * T, C)
            x = x + linear(att, p + "o")
            x = x + linear(F.gelu(linear(norm(x, p + "ln_2"), p + "fc1"), approximate="tanh"), p + "fc2")
        logits = F.linear(norm(x, "ln_f"), P["wte"])  # tied head (B·T, V)
        return F.cross_entropy(logits, tg)

    params = list(P.values()) if full else [t for ab in adapters.values() for t in ab]
    kw = dict(lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    try:
        opt = torch.optim.AdamW(params, fused=True, **kw)  # torch's fastest AdamW (CPU: 2.4+)
        opt_kind = "fused"
    except (RuntimeError, TypeError, ValueError):
        opt = torch.optim.AdamW(params, foreach=True, **kw)
        opt_kind = "foreach"
    ids = torch.full((B * T,), ord("x"), dtype=torch.long, device=device)  # bench-step's batch: a text of 'x'
    tg = ids.clone()
    clip = cfg["clip"]

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(ids, tg)
        loss.backward()
        if math.isfinite(clip):
            torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
        opt.step()
        return loss.item()

    loss0 = step()
    for _ in range(max(0, warmup - 1)):
        step()
    ms = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        ms.append(1000.0 * (time.perf_counter() - t0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    out = {"mode": mode, "ms": ms, "peak_rss_mib": peak, "base_rss_mib": base_rss, "loss0": loss0,
           "trainable": sum(t.numel() for t in params), "optimizer": opt_kind, "threads": torch.get_num_threads(),
           "device": torch.cuda.get_device_name() if cuda else "cpu"}
    if cuda:
        out["device_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


# ---- the driver ----------------------------------------------------------------------------------
def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", help="path to hyplora-finetune")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (one process per side and mode each)")
    ap.add_argument("--iters", type=int, default=3, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--wait-policy", choices=["default", "PASSIVE", "ACTIVE"], default="default",
                    help="OMP_WAIT_POLICY for the C++ side (default: as the environment has it)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: both sides on the GPU (C++ bench-step --device cuda, torch eager CUDA)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    cxx_args = argv[argv.index("--") + 1:] if "--" in argv else []  # after "--": bench-step options
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    a.cxx_args = cxx_args
    if a.worker:
        worker(a.worker, json.loads(a.config), a.threads, a.iters, a.warmup, a.device)
        return
    if a.device == "cuda":
        a.cxx_args = ["--device", "cuda", *a.cxx_args]
    modes = [m for m in a.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            sys.exit(f"torch_gpt.py: unknown mode '{m}' (expected {', '.join(MODES)})")

    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    # OMP_WAIT_POLICY: libgomp's default (spin briefly, then sleep) on both sides, as a user runs
    # them, unless --wait-policy says otherwise. With OpenBLAS's OpenMP build (what CMake picks and
    # scripts/bootstrap.sh installs) OpenBLAS and the library share one OpenMP team, and PASSIVE
    # only adds a futex wake-up to each of the step's ~150 parallel regions (full step, 2 threads:
    # ~135 ms passive vs ~114 ms default). Only with OpenBLAS's pthreads build do spinning OpenMP
    # workers starve its separate GEMM threads (a LoRA step measured 2.9 s spinning vs 0.31 s
    # passive): use --wait-policy PASSIVE there.
    cxx_env = dict(env)
    if a.wait_policy != "default":
        cxx_env["OMP_WAIT_POLICY"] = a.wait_policy
    cfg = run_json([a.binary, "bench-step", "--print-config", *a.cxx_args], env)

    import torch

    print("== torch", torch.__version__, "==")
    print(torch.__config__.show().strip())
    print(torch.__config__.parallel_info().strip())
    print(f"threads: {a.threads} (torch.set_num_threads; C++ OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = {a.threads}, "
          f"C++ OMP_WAIT_POLICY = {cxx_env.get('OMP_WAIT_POLICY', 'unset (libgomp default)')}); "
          f"load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print("config:", json.dumps(cfg))

    cxx = {m: [] for m in modes}
    tor = {m: [] for m in modes}
    cxx_mem, tor_mem, info = {}, {}, {}
    for rnd in range(a.rounds):
        for m in modes:
            runs = [("hyplora", [a.binary, "bench-step", "--modes", m, "--iters", str(a.iters), "--warmup",
                                 str(a.warmup), *a.cxx_args]),
                    ("torch", [sys.executable, os.path.abspath(__file__), a.binary, "--worker", m, "--config",
                               json.dumps(cfg), "--threads", str(a.threads), "--iters", str(a.iters), "--warmup",
                               str(a.warmup), "--device", a.device])]
            if rnd % 2:
                runs.reverse()  # alternate which side runs first, so drift hits both alike
            for side, cmd in runs:
                j = run_json(cmd, cxx_env if side == "hyplora" else env)
                if side == "hyplora":
                    r = j["modes"][m]
                    cxx[m] += r["ms"]
                    cxx_mem[m] = max(cxx_mem.get(m, (0, 0)), (r["peak_rss_mib"], j["base_rss_mib"]))
                    info[("hyplora", m)] = (r["loss0"], r["trainable"], j.get("device", "cpu") if a.device == "cuda" else j["threads"])
                else:
                    tor[m] += j["ms"]
                    tor_mem[m] = max(tor_mem.get(m, (0, 0)), (j["peak_rss_mib"], j["base_rss_mib"]))
                    info[("torch", m)] = (j["loss0"], j["trainable"], j["optimizer"] + (f" on {j['device']}" if a.device == "cuda" else ""))
        print(f"round {rnd + 1}/{a.rounds} done (load average {os.getloadavg()[0]:.2f})", file=sys.stderr)

    tokens = cfg["B"] * cfg["T"]
    print(f"\nOne training step of B = {cfg['B']} x T = {cfg['T']} tokens, C = {cfg['C']}, {cfg['layers']} layers, "
          f"{cfg['heads']} heads; {'GPU (float32, no TF32)' if a.device == 'cuda' else f'{a.threads} thread(s)'}; "
          f"median of {a.rounds} rounds x {a.iters} steps each side")
    hdr = (f"{'mode':<9}{'hyplora ms':>11}{'torch ms':>10}{'ratio':>7}{'hyplora tok/s':>15}{'torch tok/s':>13}"
           f"{'hyplora MiB':>17}{'torch MiB':>17}")
    print(hdr)
    for m in modes:
        hc, tc = statistics.median(cxx[m]), statistics.median(tor[m])
        (hp, hb), (tp, tb) = cxx_mem[m], tor_mem[m]
        print(f"{m:<9}{hc:>11.1f}{tc:>10.1f}{hc / tc:>7.2f}{tokens * 1000 / hc:>15.0f}{tokens * 1000 / tc:>13.0f}"
              f"{f'{hp:.0f} (+{hp - hb:.0f})':>17}{f'{tp:.0f} (+{tp - tb:.0f})':>17}")
    print("MiB: peak RSS (peak minus RSS before the model was built). ratio = hyplora / torch; goal <= 0.8.")
    print("sanity (first-step loss should be ~ln 256 = 5.55 on both sides; trainable counts must match):")
    for m in modes:
        hl, hn, ht = info[("hyplora", m)]
        tl, tn, to = info[("torch", m)]
        flag = "" if hn == tn else "   <-- trainable counts differ"
        print(f"  {m:<8} loss0 {hl:.4f} / {tl:.4f}   trainable {hn} / {tn}   C++ {'device' if a.device == 'cuda' else 'threads'} {ht}"
              f"   torch AdamW {to}{flag}")


if __name__ == "__main__":
    main()
