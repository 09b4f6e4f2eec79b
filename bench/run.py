"""dmh benchmarks: denoising speed against CBM3D, images/s, training throughput against the machine's
measured fp32 matmul peak, quality from the study's Table 1, peak memory of tiled denoising, a profile, torch.compile,
the explorer's update time.

    .venv/bin/python bench/run.py                  # everything, full size; writes bench/results.json, bench/RESULTS.md
    .venv/bin/python bench/run.py --quick          # tiny sizes (checks the code; numbers mean nothing) -> bench/out/
    .venv/bin/python bench/run.py --only speed,train   # some sections (merged into the existing results.json)

Sections: env, speed, batch, train, quality, memory, profile, compile, explorer (see bench/README.md). Times are
wall-clock medians (time.perf_counter) after one warm-up call; the machine's load average is recorded, since on a busy
machine the numbers are not the machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout even when dmh is not installed (it normally is, editable)

from dmh.fast import fuse_conv_bn, prepare  # noqa: E402
from dmh.inference import denoise  # noqa: E402
from dmh.nets import DenoiseNet  # noqa: E402

SECTIONS = ("env", "speed", "batch", "train", "quality", "memory", "profile", "compile", "explorer")
TARGET_RATIO = 20.0  # denoising at least 20x faster than CBM3D
TARGET_UTIL = 0.6  # training step at >= 60% of the conv peak (width 1, batch 32, dmh.training's channels_last layout)
TARGET_MEM_MB = 2048.0  # peak memory of denoising a 4000 x 3000 image
TARGET_UPDATE_S = 1.0  # one explorer update (slider -> denoise -> task net -> PNG), one thread


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is. `FULL` is what `make bench` runs; `QUICK` only checks that the code works."""

    crop: int | None = None  # centre crop of kodim23 (None: the whole 768 x 512 photo)
    sigma: float = 25.0
    cbm3d_runs: int = 3  # CBM3D takes ~26 s a run on 2 cores
    net_runs: int = 5
    batch_n: int = 8
    batch_hw: int = 256
    train_batch: int = 32
    train_patch: int = 48
    train_steps: int = 5
    mm_n: int = 2048
    mm_runs: int = 7
    conv_peak_shape: tuple[int, int, int] = (4, 256, 64)  # batch, channels, side of a 3x3 conv
    mem_hw: tuple[int, int] = (3000, 4000)
    profile_hw: int = 256
    compile_hw: int = 256
    explorer_runs: int = 5


FULL = Sizes()
QUICK = Sizes(
    crop=96,
    cbm3d_runs=1,
    net_runs=2,
    batch_n=2,
    batch_hw=64,
    train_batch=4,
    train_steps=2,
    mm_n=512,
    mm_runs=3,
    conv_peak_shape=(1, 128, 32),
    mem_hw=(300, 400),
    profile_hw=64,
    compile_hw=64,
    explorer_runs=1,
)


# ---------------------------------------------------------------------------------------------------------- helpers
def timed(fn: Callable[[], Any], runs: int, warmup: int = 1) -> dict[str, Any]:
    """Median / min wall time of `fn()` in seconds over `runs` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(ts), "min_s": min(ts), "runs": runs}


def conv_flops(net: nn.Module, x: Tensor) -> dict[str, int]:
    """Forward FLOPs (2 x multiply-accumulates) of every Conv2d / ConvTranspose2d of `net` on input `x`, by name.

    Conv2d: out.numel() * in_channels / groups * kh * kw MACs. ConvTranspose2d: every input value is scattered through
    a (out_channels / groups) x kh x kw kernel: in.numel() * out_channels / groups * kh * kw MACs. Bias, BN, ReLU,
    sums and copies are not counted (they are memory-bound, not FLOP-bound).
    """
    flops: dict[str, int] = {}
    hooks = []
    for name, m in net.named_modules():
        if isinstance(m, nn.ConvTranspose2d):

            def hook(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor, name: str = name) -> None:
                k = mod.kernel_size[0] * mod.kernel_size[1]
                flops[name] = 2 * inp[0].numel() * (mod.out_channels // mod.groups) * k
        elif isinstance(m, nn.Conv2d):

            def hook(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor, name: str = name) -> None:
                k = mod.kernel_size[0] * mod.kernel_size[1]
                flops[name] = 2 * out.numel() * (mod.in_channels // mod.groups) * k
        else:
            continue
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return flops


def matmul_peak(n: int, runs: int) -> dict[str, Any]:
    """The machine's fp32 matmul rate: torch.mm of two n x n matrices, median over `runs`."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    t = timed(lambda: torch.mm(a, b), runs, warmup=2)
    return {"n": n, **t, "gflops": 2 * n**3 / t["median_s"] / 1e9, "gflops_best": 2 * n**3 / t["min_s"] / 1e9}


def conv_peak(shape: tuple[int, int, int], runs: int) -> dict[str, Any]:
    """The rate of a large compute-bound convolution (3x3, c -> c, channels_last, oneDNN): what the conv library
    reaches on this machine. On AMD CPUs MKL's sgemm (torch.mm) may run well below it (it does not take its AVX-512
    paths there), so both are reported."""
    n, c, hw = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, hw, hw, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3, generator=g).contiguous(memory_format=torch.channels_last)

    def run() -> Any:
        with torch.inference_mode():
            return nn.functional.conv2d(x, w, padding=1)

    t = timed(run, runs, warmup=2)
    flop = 2 * n * c * c * 9 * hw * hw
    return {"shape": list(shape), **t, "gflops": flop / t["median_s"] / 1e9, "gflops_best": flop / t["min_s"] / 1e9}


def kodim23(sizes: Sizes) -> tuple[Tensor, Tensor]:
    """(clean, noisy) kodim23 as (1, 3, H, W), noise seeded; centre-cropped to `sizes.crop` if set."""
    from dmh.data import load_photo
    from dmh.noise import add_noise

    clean = load_photo("kodim23")[None]
    if sizes.crop:
        h, w = clean.shape[-2:]
        c = sizes.crop
        clean = clean[..., (h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c].contiguous()
    return clean, add_noise(clean, sizes.sigma, torch.Generator().manual_seed(0))


def width1_net() -> DenoiseNet:
    """The paper's width-1 colour denoiser with seeded random weights (speed does not depend on the weights)."""
    torch.manual_seed(0)
    return DenoiseNet(3, 1.0).eval()


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A markdown table; floats printed with 4 significant digits."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------- sections
def bench_env(sizes: Sizes) -> dict[str, Any]:
    model = (
        next(
            (
                ln.split(":", 1)[1].strip()
                for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS"),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "loadavg_1min": os.getloadavg()[0],
    }
    env["md"] = table(["setting", "value"], [[k, v] for k, v in env.items()])
    return env


def bench_speed(sizes: Sizes) -> dict[str, Any]:
    """kodim23: the width-1 denoiser, plain and fast variants, against CBM3D in the same process."""
    from dmh.baselines import cbm3d
    from dmh.metrics import psnr

    clean, noisy = kodim23(sizes)
    net = width1_net()
    fused, fast = fuse_conv_bn(net), prepare(net)
    r = sizes.net_runs

    def infer(m: nn.Module) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return m(noisy)

        return run

    def no_grad() -> Any:
        with torch.no_grad():
            return net(noisy)

    variants = {
        "eval forward, no_grad, whole image": no_grad,
        "eval forward, inference_mode, whole image": infer(net),
        "denoise() tiles 256 [before]": lambda: denoise(net, noisy),
        "+ BN folded, whole image": infer(fused),
        "+ BN folded + channels_last, whole image": infer(fast),
        "denoise(fast=True) tiles 256 [after]": lambda: denoise(net, noisy, fast=True),
        "denoise(fast=True, tile=512)": lambda: denoise(net, noisy, fast=True, tile=512),
        "denoise(fast=True, tile=None)": lambda: denoise(net, noisy, fast=True, tile=None),
    }
    # The command users run: `dmh denoise IN OUT --blind` with the released model (width 0.5), PNG read and write
    # included (the target: at least 20x faster than CBM3D on a 768 x 512 photo).
    import tempfile

    from dmh.images import write_file
    from dmh.inference import denoise_file

    tmp = Path(tempfile.mkdtemp(prefix="dmh-bench-"))
    src = tmp / "noisy.png"
    write_file(src, (noisy[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
    variants["`dmh denoise --blind` (released colour-blind, PNG to PNG)"] = lambda: denoise_file(
        src, tmp / "out.png", blind=True, progress=False
    )
    res: dict[str, Any] = {
        "image": f"kodim23 {tuple(clean.shape[-2:])} sigma {sizes.sigma:g}",
        "net": "DenoiseNet(3, width=1), seeded random weights (speed does not depend on them)",
        "variants": {},
    }
    for name, fn in variants.items():
        res["variants"][name] = timed(fn, r)
        print(f"  {name}: {res['variants'][name]['median_s']:.3f} s", flush=True)
    with torch.inference_mode():
        res["max_abs_diff_fast_vs_plain"] = float((denoise(net, noisy, fast=True) - denoise(net, noisy)).abs().max())
    outs = []
    res["cbm3d"] = timed(lambda: outs.append(cbm3d(noisy, sizes.sigma)), sizes.cbm3d_runs, warmup=0)
    res["cbm3d"]["psnr"] = psnr(outs[-1], clean)
    res["noisy_psnr"] = psnr(noisy, clean)
    t_bm = res["cbm3d"]["median_s"]
    for v in res["variants"].values():
        v["x_faster_than_cbm3d"] = t_bm / v["median_s"]
    before = res["variants"]["denoise() tiles 256 [before]"]
    after = res["variants"]["denoise(fast=True) tiles 256 [after]"]
    best = min(res["variants"].items(), key=lambda kv: kv[1]["median_s"])
    res["ratio_before"], res["ratio_after"] = before["x_faster_than_cbm3d"], after["x_faster_than_cbm3d"]
    res["best"] = {"variant": best[0], "ratio": best[1]["x_faster_than_cbm3d"]}
    rows = [[n, v["median_s"], v["min_s"], v["x_faster_than_cbm3d"]] for n, v in res["variants"].items()]
    rows.append([f"CBM3D (bm3d.bm3d_rgb), PSNR {res['cbm3d']['psnr']:.2f} dB", t_bm, res["cbm3d"]["min_s"], 1.0])
    res["md"] = (
        f"{res['image']}; {res['net']}. Fast vs plain max |diff| {res['max_abs_diff_fast_vs_plain']:.2g}.\n\n"
        + table(["method", "median s", "min s", "x faster than CBM3D"], rows)
    )
    return res


def bench_batch(sizes: Sizes) -> dict[str, Any]:
    """Images per second for batches of 256 x 256 colour images, plain vs fast, and per thread count."""
    net = width1_net()
    fast = prepare(net)
    x = torch.rand(sizes.batch_n, 3, sizes.batch_hw, sizes.batch_hw, generator=torch.Generator().manual_seed(0))
    default_threads = torch.get_num_threads()
    res: dict[str, Any] = {"batch": list(x.shape), "rows": []}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        try:
            for name, m in (("plain eval, inference_mode", net), ("fast (BN folded, channels_last)", fast)):

                def run(m: nn.Module = m) -> Any:
                    with torch.inference_mode():
                        return m(x)

                t = timed(run, sizes.net_runs)
                res["rows"].append(
                    {"variant": name, "threads": threads, **t, "images_per_s": sizes.batch_n / t["median_s"]}
                )
        finally:
            torch.set_num_threads(default_threads)
    res["md"] = f"Batch {tuple(x.shape)}, DenoiseNet width 1.\n\n" + table(
        ["variant", "threads", "median s / batch", "images/s"],
        [[r["variant"], r["threads"], r["median_s"], r["images_per_s"]] for r in res["rows"]],
    )
    return res


def _train_step_fns(
    net: nn.Module, sizes: Sizes, channels_last: bool, batch_size: int, compiled: bool = False
) -> tuple[Callable, Callable]:
    """(full step, compute-only step): the study's denoiser step (blind sigma 5-55, MSE, Adam lr 1e-3); `compiled`
    runs the forward through torch.compile (its first call compiles: one untimed warm-up call)."""
    from dmh.data import PatchSampler, photos
    from dmh.losses import JointLoss
    from dmh.steps import noisy_batch, objective

    sampler = PatchSampler(list(photos("train").values()), sizes.train_patch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = JointLoss(0.0)
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    fwd = torch.compile(net) if compiled else net

    def batch() -> tuple[Tensor, Tensor]:
        clean = sampler.sample(batch_size, g)
        noisy = noisy_batch(clean, (5.0, 55.0), g)
        return noisy.contiguous(memory_format=fmt), clean.contiguous(memory_format=fmt)

    def compute(noisy: Tensor, clean: Tensor) -> None:
        loss, _ = objective(fwd, noisy, clean, loss_fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    fixed = batch()
    return (lambda: compute(*batch())), (lambda: compute(*fixed))


def bench_train(sizes: Sizes) -> dict[str, Any]:
    """One training step (batch, patch, Adam, MSE) at width 1 and the cpu preset's width; FLOP utilisation."""
    from dmh.presets import PRESETS

    peak = matmul_peak(sizes.mm_n, sizes.mm_runs)
    cpeak = conv_peak(sizes.conv_peak_shape, sizes.mm_runs)
    print(f"  matmul peak {peak['gflops']:.1f} GFLOP/s (n={sizes.mm_n}); conv peak {cpeak['gflops']:.1f}", flush=True)
    res: dict[str, Any] = {"matmul_peak": peak, "conv_peak": cpeak, "threads": torch.get_num_threads(), "rows": []}
    p = sizes.train_patch
    b = sizes.train_batch
    # (channels_last, batch, torch.compile): the default layout (before), dmh.training's channels_last (after), a
    # doubled batch and a compiled forward (tried, see RESULTS.md).
    variants = [(False, b, False), (True, b, False), (True, 2 * b, False), (True, b, True)]
    for width in (1.0, PRESETS["cpu"].colour_width):
        torch.manual_seed(0)
        net = DenoiseNet(3, width)
        fwd = sum(conv_flops(net.eval(), torch.zeros(1, 3, p, p)).values())
        for cl, bs, comp in variants:
            step_flops = 3 * fwd * bs  # backward ~ 2x forward (grads of inputs and of weights)
            net = DenoiseNet(3, width).train()
            if cl:
                net = net.to(memory_format=torch.channels_last)
            full, compute = _train_step_fns(net, sizes, cl, bs, comp)
            if comp:
                compute()  # compiles
            t_full = timed(full, sizes.train_steps)
            t_comp = timed(compute, sizes.train_steps)
            achieved = step_flops / t_comp["median_s"] / 1e9
            row = {
                "width": width,
                "channels_last": cl,
                "batch": bs,
                "compiled": comp,
                "fwd_gflop_per_sample": fwd / 1e9,
                "step_s": t_full["median_s"],
                "compute_step_s": t_comp["median_s"],
                "samples_per_s": bs / t_full["median_s"],
                "achieved_gflops": achieved,
                "utilisation": achieved / peak["gflops"],
                "utilisation_conv_peak": achieved / cpeak["gflops"],
                "utilisation_best_peak": achieved / max(peak["gflops"], cpeak["gflops"]),
            }
            res["rows"].append(row)
            print(
                f"  width {width} channels_last={cl} batch {bs} compiled={comp}: {row['samples_per_s']:.1f} "
                f"samples/s, {row['utilisation_conv_peak']:.1%} of the conv peak",
                flush=True,
            )
    res["utilisation_width1"] = res["rows"][1]["utilisation_conv_peak"]
    res["md"] = (
        f"Batch {sizes.train_batch} x 3 x {p} x {p}, Adam, MSE, blind sigma 5-55; {res['threads']} threads. "
        f"Matmul peak: torch.mm {sizes.mm_n}^3 fp32, median {peak['gflops']:.1f} GFLOP/s "
        f"(best {peak['gflops_best']:.1f}). Conv peak: 3x3 conv {tuple(cpeak['shape'])} (batch, channels, side), "
        f"channels_last, median {cpeak['gflops']:.1f} GFLOP/s. FLOPs: convolutions only, 2 x MACs, training = 3 x "
        "forward. dmh.training trains in channels_last when `TrainConfig.channels_last` is set (the released denoisers "
        "and the study's denoisers); the doubled batch and torch.compile rows are what was tried beside it.\n\n"
        + table(
            [
                "width",
                "channels_last",
                "batch",
                "compiled",
                "GFLOP/sample fwd",
                "step s",
                "compute-only s",
                "samples/s",
                "GFLOP/s",
                "of matmul peak",
                "of conv peak",
            ],
            [
                [
                    r["width"],
                    r["channels_last"],
                    r["batch"],
                    r["compiled"],
                    r["fwd_gflop_per_sample"],
                    r["step_s"],
                    r["compute_step_s"],
                    r["samples_per_s"],
                    r["achieved_gflops"],
                    f"{r['utilisation']:.1%}",
                    f"{r['utilisation_conv_peak']:.1%}",
                ]
                for r in res["rows"]
            ],
        )
    )
    return res


def bench_quality(sizes: Sizes, results_root: Path) -> dict[str, Any]:
    """Table 1 as the study wrote it (results/cpu/table1.json); nothing is retrained or re-evaluated here."""
    path = results_root / "cpu" / "table1.json"
    if not path.exists():
        msg = (
            f"skipped: {path} not found. It is written by the study (notebook 01, `make reproduce`); the bench "
            "reads it and never retrains."
        )
        return {"skipped": True, "md": msg}
    t1 = json.loads(path.read_text())
    mean = t1["mean"]
    sigmas = sorted({s for d in mean.values() for s in d}, key=float)
    preset = t1.get("preset", {})
    secs: dict[str, list[float]] = {}
    for r in t1.get("rows", []):
        secs.setdefault(r["method"], []).append(float(r.get("seconds", 0.0)))
    names = sorted({r["image"] for r in t1.get("rows", [])})
    rows = [
        [m, *[mean[m].get(s, float("nan")) for s in sigmas], statistics.mean(secs[m]) if secs.get(m) else float("nan")]
        for m in mean
    ]
    md = (
        f"Read from {path.relative_to(results_root.parent) if path.is_relative_to(results_root.parent) else path} "
        f"(written by the study, not recomputed). TEST photos {names}, centre crop {preset.get('photo_crop')}; "
        f"denoiser: cpu preset, width {preset.get('colour_width')}, {preset.get('colour_steps')} steps, blind "
        f"sigma {preset.get('colour_sigma_range')}. Mean PSNR (dB, 8-bit) per sigma; seconds per image as the "
        "study timed them; 'separate' is the trained denoiser (lambda = 0).\n\n"
        + table(["method", *[f"sigma {s}" for s in sigmas], "s / image"], rows)
    )
    return {"skipped": False, "source": str(path), "mean": mean, "preset": preset, "seconds": secs, "md": md}


def _memory_child(kind: str, h: int, w: int, fast: bool) -> None:
    """Run in a subprocess: build the width-1 net (and denoise an h x w image); print peak RSS as JSON."""
    net = width1_net()
    t = 0.0
    if kind == "denoise":
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        out = denoise(net, x, fast=fast)
        t = time.perf_counter() - t0
        assert out.shape == x.shape
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    # ru_maxrss survives exec: a child forked (or vforked) from a big parent starts at the parent's size. VmHWM is
    # the peak of this process's own address space; use it where /proc has it.
    status = Path("/proc/self/status")
    hwm = (
        [ln.split()[1] for ln in status.read_text().splitlines() if ln.startswith("VmHWM:")] if status.exists() else []
    )
    peak = int(hwm[0]) / 1024 if hwm else maxrss
    print(
        json.dumps({"peak_mb": peak, "ru_maxrss_mb": maxrss, "source": "VmHWM" if hwm else "ru_maxrss", "seconds": t})
    )


def bench_memory(sizes: Sizes) -> dict[str, Any]:
    """Peak RSS of tiled denoising of an h x w colour image, minus a process that only imports torch and builds
    the net."""
    h, w = sizes.mem_hw

    def child(*args: str) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--_child", *args]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    base = child("base", str(h), str(w), "0")
    res: dict[str, Any] = {
        "image": [3, h, w],
        "baseline_mb": base["peak_mb"],
        "source": base["source"],
        "rows": [],
        "image_buffers_mb": 2 * 3 * h * w * 4 / 2**20,
    }
    for fast in (False, True):
        r = child("denoise", str(h), str(w), str(int(fast)))
        row = {
            "fast": fast,
            "peak_mb": r["peak_mb"],
            "delta_mb": r["peak_mb"] - base["peak_mb"],
            "ru_maxrss_mb": r["ru_maxrss_mb"],
            "seconds": r["seconds"],
        }
        res["rows"].append(row)
        print(f"  fast={fast}: +{row['delta_mb']:.0f} MB over baseline, {row['seconds']:.1f} s", flush=True)
    res["delta_mb"] = max(r["delta_mb"] for r in res["rows"])
    res["md"] = (
        f"denoise() of a 3 x {h} x {w} image (tiles 256, overlap 32, 4 tiles a batch), DenoiseNet width 1, in a fresh "
        f"subprocess; peak RSS ({base['source']}) minus a baseline subprocess that imports torch and builds the net "
        f"({base['peak_mb']:.0f} MB). The input and output images alone take {res['image_buffers_mb']:.0f} MB.\n\n"
        + table(
            ["path", "peak RSS MB", "over baseline MB", "seconds"],
            [["fast" if r["fast"] else "plain", r["peak_mb"], r["delta_mb"], r["seconds"]] for r in res["rows"]],
        )
    )
    return res


def _top_ops(prof: Any, n: int = 10) -> list[dict[str, Any]]:
    ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ev) or 1.0
    return [
        {"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count, "share": e.self_cpu_time_total / total}
        for e in ev[:n]
    ]


def _layer_times(net: nn.Module, x: Tensor, runs: int) -> list[dict[str, Any]]:
    """Wall time of each conv layer (forward hooks around it), with its FLOPs and rate; median over `runs`."""
    flops = conv_flops(net, x)
    starts: dict[str, float] = {}
    times: dict[str, list[float]] = {n: [] for n in flops}
    hooks = []
    for name, m in net.named_modules():
        if name in flops:
            hooks.append(
                m.register_forward_pre_hook(lambda mod, inp, name=name: starts.__setitem__(name, time.perf_counter()))
            )
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out, name=name: times[name].append(time.perf_counter() - starts[name])
                )
            )
    t_total = []
    try:
        with torch.inference_mode():
            net(x)
            for v in times.values():
                v.clear()
            for _ in range(runs):
                t0 = time.perf_counter()
                net(x)
                t_total.append(time.perf_counter() - t0)
    finally:
        for h in hooks:
            h.remove()
    total = statistics.median(t_total)
    rows = [
        {
            "layer": n,
            "ms": statistics.median(times[n]) * 1e3,
            "gflop": flops[n] / 1e9,
            "gflops": flops[n] / statistics.median(times[n]) / 1e9,
        }
        for n in flops
    ]
    rows.append(
        {
            "layer": "everything else (pad, cat, ReLU, sums, BN in plain)",
            "ms": total * 1e3 - sum(r["ms"] for r in rows),
            "gflop": 0.0,
            "gflops": float("nan"),
        }
    )
    for r in rows:
        r["share"] = r["ms"] / (total * 1e3)
    return rows


def bench_profile(sizes: Sizes) -> dict[str, Any]:
    """Where the time goes: torch.profiler top ops (inference plain / fast, one training step) and per-layer times."""
    from torch.profiler import ProfilerActivity, profile

    hw = sizes.profile_hw
    x = torch.rand(1, 3, hw, hw, generator=torch.Generator().manual_seed(0))
    net = width1_net()
    fast = prepare(net)
    res: dict[str, Any] = {"input": list(x.shape)}
    for name, m in (("plain", net), ("fast", fast)):
        with torch.inference_mode():
            m(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(3):
                    m(x)
        res[f"ops_{name}"] = _top_ops(prof)
    res["layers_fast"] = _layer_times(fast, x, max(sizes.net_runs, 3))
    train_net = DenoiseNet(3, 1.0).train()
    _, compute = _train_step_fns(train_net, sizes, False, sizes.train_batch)
    compute()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        compute()
    res["ops_train_step"] = _top_ops(prof, 12)

    def ops_md(key: str) -> str:
        return table(
            ["op", "self ms", "calls", "share"],
            [[o["op"], o["self_ms"], o["calls"], f"{o['share']:.1%}"] for o in res[key]],
        )

    res["md"] = "\n\n".join(
        [
            f"Inference on {tuple(x.shape)}, width 1, 3 forwards. Plain eval:",
            ops_md("ops_plain"),
            "Fast (BN folded, channels_last):",
            ops_md("ops_fast"),
            "Per conv layer, fast path (forward hooks; FLOPs = 2 x MACs):",
            table(
                ["layer", "ms", "GFLOP", "GFLOP/s", "share"],
                [[r["layer"], r["ms"], r["gflop"], r["gflops"], f"{r['share']:.1%}"] for r in res["layers_fast"]],
            ),
            f"One training step (batch {sizes.train_batch}, {sizes.train_patch}^2, width 1, Adam):",
            ops_md("ops_train_step"),
        ]
    )
    return res


def bench_compile(sizes: Sizes) -> dict[str, Any]:
    """torch.compile (inductor) of the fast module against the eager fast module, on one input shape."""
    hw = sizes.compile_hw
    x = torch.rand(1, 3, hw, hw, generator=torch.Generator().manual_seed(0))
    net = width1_net()
    eager = prepare(net)
    res: dict[str, Any] = {"input": list(x.shape)}
    try:
        compiled = prepare(net, compile=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            y = compiled(x)
        res["first_call_s"] = time.perf_counter() - t0
    except Exception as e:  # no C++ compiler, unsupported platform, ...
        res["error"] = f"{type(e).__name__}: {e}"[:500]
        res["md"] = f"torch.compile failed here: {res['error']}"
        return res

    def run(m: nn.Module) -> Callable[[], Any]:
        def f() -> Any:
            with torch.inference_mode():
                return m(x)

        return f

    with torch.inference_mode():
        res["max_abs_diff"] = float((y - eager(x)).abs().max())
    res["eager"] = timed(run(eager), max(sizes.net_runs, 3))
    res["compiled"] = timed(run(compiled), max(sizes.net_runs, 3))
    res["speedup"] = res["eager"]["median_s"] / res["compiled"]["median_s"]
    res["md"] = (
        f"Input {tuple(x.shape)}; compile (first call) {res['first_call_s']:.1f} s; max |diff| "
        f"{res['max_abs_diff']:.2g}.\n\n"
        + table(
            ["module", "median s", "min s"],
            [
                ["prepare(net) eager", res["eager"]["median_s"], res["eager"]["min_s"]],
                ["prepare(net, compile=True)", res["compiled"]["median_s"], res["compiled"]["min_s"]],
            ],
        )
        + f"\n\nSpeed-up {res['speedup']:.2f}x."
    )
    return res


def bench_explorer(sizes: Sizes) -> dict[str, Any]:
    """Wall and CPU time of one explorer update (the sigma slider moves: noise, denoise, task network, figure, PNG) with
    DenoiseNet(width=0.5) and the real classifier A / segmenter B architectures (random weights) on a 28x28 item and a
    96x96 scene, on one thread as the browser's kernel beside a training run: median over `explorer_runs` updates."""
    from dmh.widgets import cpu_size_explorer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ex = cpu_size_explorer()
        _ = ex.ui  # builds the widgets
        ex.update()  # the first draw loads fonts
        rows = []
        for task in ("classification", "segmentation"):
            ex.w_task.value = task
            for sigma in (15, 50, 95):
                walls, cpus = [], []
                for k in range(sizes.explorer_runs):
                    t0, c0 = time.perf_counter(), time.thread_time()
                    ex.w_sigma.value = sigma + (k % 2)  # a slider move: every update recomputes
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.thread_time() - c0)
                    if ex.last_error is not None:
                        raise RuntimeError(ex.last_error)
                rows.append({"task": task, "sigma": sigma, "wall_s": statistics.median(walls),
                             "cpu_s": statistics.median(cpus), "max_wall_s": max(walls)})  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    worst = max(r["wall_s"] for r in rows)
    md = table(
        ["task", "sigma", "update wall (median)", "update CPU (median)", "slowest wall"],
        [
            [r["task"], r["sigma"], f"{r['wall_s']:.3f} s", f"{r['cpu_s']:.3f} s", f"{r['max_wall_s']:.3f} s"]
            for r in rows
        ],
    )
    return {"rows": rows, "worst_median_wall_s": worst, "md": md}


# ----------------------------------------------------------------------------------------------------------- report
def targets(results: dict[str, Any], quick: bool) -> str:
    rows = []
    if "speed" in results:
        s = results["speed"]
        rows.append(
            [
                f"{s['image']}: denoise vs CBM3D",
                f">= {TARGET_RATIO:g}x",
                f"{s['ratio_before']:.1f}x",
                f"{s['ratio_after']:.1f}x (best: {s['best']['ratio']:.1f}x, {s['best']['variant']})",
                "yes" if s["ratio_after"] >= TARGET_RATIO else "no",
            ]
        )
        cmd = next((v for k, v in s["variants"].items() if k.startswith("`dmh denoise")), None)
        if cmd is not None:
            x = cmd["x_faster_than_cbm3d"]
            rows.append(
                [f"{s['image']}: `dmh denoise --blind` (released model, files) vs CBM3D", f">= {TARGET_RATIO:g}x",
                 "-", f"{x:.1f}x", "yes" if x >= TARGET_RATIO else "no"]
            )  # fmt: skip
    if "train" in results and not all(
        {"batch", "width", "channels_last", "compiled"} <= set(x) for x in results["train"]["rows"]
    ):
        rows.append(["train step (results.json holds an older bench's train rows: run `--only train`)", "", "", "", ""])
    elif "train" in results:
        r = results["train"]["rows"]
        b = min(x["batch"] for x in r)
        plain = next(x for x in r if x["width"] == 1.0 and not x["channels_last"] and x["batch"] == b)
        cl = next(x for x in r if x["width"] == 1.0 and x["channels_last"] and x["batch"] == b and not x["compiled"])
        rows.append(
            [
                f"train step at width 1, batch {b}, of the conv peak measured in the same run",
                f">= {TARGET_UTIL:.0%}",
                f"{plain['utilisation_conv_peak']:.1%} (default layout)",
                f"{cl['utilisation_conv_peak']:.1%} (channels_last, as dmh.training)",
                "yes" if cl["utilisation_conv_peak"] >= TARGET_UTIL else "no",
            ]
        )
    if "memory" in results:
        m = results["memory"]
        plain = next(x for x in m["rows"] if not x["fast"])
        fast = next(x for x in m["rows"] if x["fast"])
        rows.append(
            [
                f"peak memory, {m['image'][2]}x{m['image'][1]} image",
                f"< {TARGET_MEM_MB:.0f} MB",
                f"{plain['delta_mb']:.0f} MB",
                f"{fast['delta_mb']:.0f} MB",
                "yes" if m["delta_mb"] < TARGET_MEM_MB else "no",
            ]
        )
    if "explorer" in results:
        w = results["explorer"]["worst_median_wall_s"]
        rows.append(
            ["explorer update (slider -> PNG), one thread, slowest task/sigma", f"< {TARGET_UPDATE_S:g} s", "-",
             f"{w:.3f} s", "yes" if w < TARGET_UPDATE_S else "no"]
        )  # fmt: skip
    note = " QUICK RUN: tiny sizes, the targets do not apply." if quick else ""
    return f"Before = plain path, after = fast path (dmh.fast).{note}\n\n" + table(
        ["target", "goal", "before", "after", "met"], rows
    )


def write_report(results: dict[str, Any], out: Path, quick: bool) -> Path:
    meta = results["meta"]
    parts = [
        "# dmh benchmarks" + (" (QUICK: sizes too small to mean anything)" if quick else ""),
        f"Written by `bench/run.py{' --quick' if quick else ''}` on {meta['date']} ({meta['host']}); "
        f"load average at start {meta['loadavg_start']:.2f}, at end {meta['loadavg_end']:.2f} on "
        f"{os.cpu_count()} cores. See bench/README.md for what is measured.",
        "## Targets",
        targets(results, quick),
    ]
    titles = {
        "env": "Machine and threads",
        "speed": "Denoising speed: kodim23 against CBM3D",
        "batch": "Images per second, 256 x 256 batches",
        "train": "Training throughput",
        "quality": "Quality (Table 1 of the study)",
        "memory": "Peak memory of tiled denoising",
        "profile": "Profile: where the time goes",
        "compile": "torch.compile",
        "explorer": "Explorer: one update",
    }
    for k in SECTIONS:
        if k in results:
            parts += [f"## {titles[k]}", results[k]["md"]]
    path = out / "RESULTS.md"
    path.write_text("\n\n".join(parts) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the code (writes to bench/out/)")
    ap.add_argument("--only", default="", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out")
    ap.add_argument("--out", default=None, help="output folder (default bench/, or bench/out/ with --quick)")
    ap.add_argument("--results", default=str(ROOT / "results"), help="the study's results root (for quality)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--_child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args._child:
        kind, h, w, fast = args._child
        _memory_child(kind, int(h), int(w), bool(int(fast)))
        return 0
    only = [s for s in args.only.split(",") if s] or list(SECTIONS)
    bad = set(only) - set(SECTIONS) | set(s for s in args.skip.split(",") if s) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections {sorted(bad)}; choose from {', '.join(SECTIONS)}")
    run = [s for s in only if s not in args.skip.split(",")]
    sizes = QUICK if args.quick else FULL
    out = Path(args.out) if args.out else ROOT / "bench" / ("out" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "results.json"
    results: dict[str, Any] = json.loads(jpath.read_text()) if jpath.exists() and args.only else {}
    from dmh.provenance import cores_busy

    load0, cores, busy = cores_busy()  # the same rule as `dmh reproduce`
    print(busy + ("" if load0 <= 0.25 * cores else " (the timings below are then not the machine's)"), flush=True)
    fns: dict[str, Callable[[], dict[str, Any]]] = {
        "env": lambda: bench_env(sizes),
        "speed": lambda: bench_speed(sizes),
        "batch": lambda: bench_batch(sizes),
        "train": lambda: bench_train(sizes),
        "quality": lambda: bench_quality(sizes, Path(args.results)),
        "memory": lambda: bench_memory(sizes),
        "profile": lambda: bench_profile(sizes),
        "compile": lambda: bench_compile(sizes),
        "explorer": lambda: bench_explorer(sizes),
    }
    for name in SECTIONS:
        if name not in run:
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        results[name] = fns[name]()
        results[name]["section_s"] = time.perf_counter() - t0
        results[name]["loadavg_1min"] = os.getloadavg()[0]
        print(results[name]["md"] + "\n", flush=True)
    results["meta"] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg()[0],
        "torch_threads": torch.get_num_threads(),
    }
    jpath.write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = write_report(results, out, args.quick)
    print(targets(results, args.quick))
    print(f"\nwrote {jpath} and {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
