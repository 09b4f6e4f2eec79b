"""The study's tables: Table 1 on the TEST photos (01), the task networks under noise (02), Tables 2 and 3 (04, 05),
ImageNet-20 through EfficientNet-Lite0 and the texture measures (07). Each writes its numbers to JSON in the
results folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dmh import runs
from dmh.baselines import cbm3d_many, cbm3d_mosaic, warm_cbm3d_mosaics
from dmh.checkpoint import write_json
from dmh.evalsets import (
    imagenet20_at,
    photo_noise,
    photo_tiles,
    test_photo_names,
    test_photos,
    test_set,
)
from dmh.evaluate import evaluate_many, evaluate_task
from dmh.inference import denoise
from dmh.layout import require
from dmh.metrics import psnr, ssim
from dmh.nets import DenoiseNet
from dmh.noise import noisy_images
from dmh.presets import Preset, check_scale
from dmh.study.bases import finetune, task_nets, unseen_classifier

__all__ = [
    "real_photo_rows",
    "saved_photo",
    "photo_panels",
    "photo_table",
    "table_rows",
    "task_table",
    "NOISE_SIGMAS",
    "STUDY_TASK_NETWORKS",
    "pretrained_summary",
    "task_noise_table",
    "imagenet_table",
    "texture_table",
]


def saved_photo(out: Path, sigma: float, method: str, name: str) -> Tensor:
    """A denoised TEST photo saved by `photo_table` as (1, 3, H, W) in [0, 1]."""
    from skimage.io import imread

    png = require(out / "photos" / f"{int(sigma)}" / method / f"{name}.png", "01_denoiser.ipynb")
    return torch.from_numpy(imread(png)).permute(2, 0, 1)[None].float() / 255.0


def photo_panels(
    name: str,
    sigma: float,
    p: Preset,
    out: Path,
    denoisers: dict[str, nn.Module] | None = None,
    with_saved: bool = False,
) -> dict[str, Tensor]:
    """Panels for `viz.comparison_grid`: noisy, CBM3D and the denoiser of 01 (as 01 saved them; with `denoisers`
    only if `with_saved`), each of `denoisers` run on the same noisy pixels, and the clean photo; (3, H, W) each."""
    names = test_photo_names(p)
    if name not in names:
        raise ValueError(f"{name!r} is not a TEST photo; choose from {names}")
    clean = test_photos(p)[name]
    noisy = photo_noise(clean, sigma, names.index(name), p)
    panels = {"noisy": noisy, "CBM3D": saved_photo(out, sigma, "CBM3D", name)}
    if denoisers is None or with_saved:
        panels[f"ours, {p.colour_steps:,} steps here"] = saved_photo(out, sigma, "separate", name)
    panels.update({label: denoise(net, noisy) for label, net in (denoisers or {}).items()})
    panels["clean"] = clean[None]
    return {k: v[0].clamp(0, 1) for k, v in panels.items()}


def photo_table(
    net: nn.Module,
    p: Preset,
    out: Path,
    progress: bool = True,
    released: dict[str, tuple[nn.Module, float | None]] | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Table 1 analogue: PSNR / SSIM on the TEST photos at `p.photo_sigmas` for noisy, CBM3D, the denoiser trained
    here ("separate") and the released denoisers.

    The noise of image k at sigma s is seeded by (p.seed, s, k), the same for every method. Denoised images of every
    method are saved to out/photos/<sigma>/<method>/<name>.png (8-bit) for the texture comparison (07).

    Args:
        released: method label -> (network, its training sigma or None for a blind one); a per-sigma network is
            scored at its own sigma only.
        notes: method label -> a note shown beside it in the table (e.g. how long it trained).

    Returns (and writes to out/table1.json): {"rows": [{"image", "sigma", "method", "psnr", "ssim", "seconds"}],
    "mean": {method: {sigma: psnr}}, "notes": {...}}.
    """
    check_scale(p)
    from skimage.io import imsave

    from dmh.metrics import to_uint8

    rows = []
    imgs = test_photos(p)
    noisy_all = {(s, k): photo_noise(clean, s, k, p) for s in p.photo_sigmas for k, clean in enumerate(imgs.values())}
    # CBM3D first, `p.workers` photos at once (one core each); "seconds" is each call's own time
    cbm3d_all = dict(zip(noisy_all, cbm3d_many([(x, s) for (s, _), x in noisy_all.items()], p.workers)))
    for s in p.photo_sigmas:
        for k, (name, clean) in enumerate(imgs.items()):
            noisy = noisy_all[s, k]
            t0 = time.perf_counter()
            den = denoise(net, noisy, fast=True)
            t_net = time.perf_counter() - t0
            bm, t_bm = cbm3d_all[s, k]
            methods = [("noisy", noisy, 0.0), ("CBM3D", bm, t_bm), ("separate", den, t_net)]
            for label, (rnet, rsigma) in (released or {}).items():
                if rsigma is None or float(rsigma) == float(s):
                    t0 = time.perf_counter()
                    methods.append((label, denoise(rnet, noisy, fast=True), time.perf_counter() - t0))
            for method, img, sec in methods:
                rows.append({"image": name, "sigma": s, "method": method, "psnr": psnr(img, clean),
                             "ssim": ssim(img, clean), "seconds": sec})  # fmt: skip
                path = out / "photos" / f"{int(s)}" / method / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                imsave(path, to_uint8(img)[0].transpose(1, 2, 0), check_contrast=False)
    mean: dict[str, dict[str, float]] = {}
    for r in rows:
        mean.setdefault(r["method"], {}).setdefault(str(int(r["sigma"])), []).append(r["psnr"])  # type: ignore[arg-type]
    mean = {m: {s: float(np.mean(v)) for s, v in d.items()} for m, d in mean.items()}
    result = {"rows": rows, "mean": mean, "notes": dict(notes or {}), "preset": p.asdict()}
    write_json(out / "table1.json", result, default=float)
    return result


def table_rows(
    task: str, base: DenoiseNet, p: Preset, out: Path, ablation: dict[str, Any], lam: float | None = None
) -> tuple[dict, dict]:
    """The fine-tuned rows of `task`'s table, one denoiser per seed of `p.seeds`, and their lambdas:

    - "separate": lam = 0; "joint (paper)": the paper's lambda; "joint (chosen)": `lam` when given (a notebook's
      knob), else the lambda chosen on validation data by `dmh.stats.choose_lambda` (in `ablation`, the result of
      `ablation`); "cross-task": the *other* task's joint denoiser at its chosen lambda (its paper lambda when none
      was chosen), never tuned through this task's network.

    Runs of the sweep's spec are loaded (kept or trained before); others are trained here (`dmh.runs.train_many`,
    which says how many and about how long first). Returns ({row: [nets]}, {row: {"task", "lam", "chosen_by"}})."""
    other = "B" if task == "A" else "A"

    def chosen(t: str) -> float:
        lam = ablation[t]["chosen"]["lam"]
        return ablation[t]["paper_lam"] if lam is None else lam

    lams = {"separate": (task, 0.0), "joint (paper)": (task, ablation[task]["paper_lam"]),
            "joint (chosen)": (task, chosen(task) if lam is None else float(lam)),
            "cross-task": (other, chosen(other))}  # fmt: skip
    specs = [runs.grey_run(p, t, lm, sd) for t, lm in lams.values() for sd in p.seeds]
    runs.train_many(specs, base, out, workers=p.workers, kept=p.kept_finetunes)
    rows = {row: [finetune(base, t, lm, p, out, seed=sd)[0] for sd in p.seeds] for row, (t, lm) in lams.items()}
    how = {"joint (chosen)": "the notebook's lam" if lam is not None else "03's rule on validation data"}
    return rows, {row: {"task": t, "lam": lm, "chosen_by": how.get(row, "fixed")} for row, (t, lm) in lams.items()}


def task_table(
    task: str,
    denoisers: dict[str, nn.Module | list[nn.Module]],
    p: Preset,
    out: Path,
    name: str,
    progress: bool = True,
    lams: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Table 2 / 3 analogue: rows noisy, CBM3D and each named denoiser (one, or a list: one per training seed),
    columns `p.task_sigmas`.

    Every row sees the same noisy pixels (`dmh.noise.noise_generator(p.seed, sigma, i)` for image i). The full test
    set gives "metric" and "psnr" (means over the row's seeds, with "metric_seeds" and "metric_std"); the CBM3D row
    runs on the first `p.task(task).n_bm3d` images only, so every row also gets "metric_subset" (and its seeds) on
    those images.

    Classifier A's table also scores every row through classifier C (`p.unseen_classifier`, a network of another
    family that no denoiser is fine-tuned through), on the same denoised pixels: "metric_unseen" (and its subset and
    seeds), top-1.

    Returns (and writes to out/<name>.json): {"task", "metric", "seeds", "lams", "rows": {row: {sigma: {...}}},
    "unseen": the name of C or None, "clean_unseen"}.
    """
    check_scale(p)
    tnet = task_nets()[task]
    unseen = unseen_classifier(p) if task == "A" else None
    also = {"unseen": unseen} if unseen is not None else None
    ts = p.task(task)
    metric, bs, n_sub = ts.metric, ts.eval_batch, ts.n_bm3d
    x, y = test_set(task, p)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    rows: dict[str, Any] = {"noisy": [None], "CBM3D": [cbm3d_mosaic]}
    rows.update({k: v if isinstance(v, list) else [v] for k, v in denoisers.items()})

    def summarise(res: dict[str, Any], key: str, vals: list[float]) -> None:
        res[key] = float(np.mean(vals))
        res[f"{key}_seeds"] = vals
        res[f"{key}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0

    # The CBM3D row's mosaics, `p.workers` at once into the disk cache; the table below reads them
    warm_cbm3d_mosaics([(noisy_images(x[i : i + bs], s, p.seed, i), s) for s in p.task_sigmas
                        for i in range(0, n_sub, bs)], p.workers)  # fmt: skip
    seed = p.seed  # image i's noise: dmh.noise.noise_generator(p.seed, s, i), the same for every row
    jobs, where = [], []
    for s in p.task_sigmas:
        for row, dens in rows.items():
            for den in dens:
                kw = {"sigma": s, "denoiser": den, "seed": seed, "batch_size": bs}
                # CBM3D on the subset only; every other row's subset numbers come from its full passes (`head`)
                jobs.append({**kw, "n": n_sub} if row == "CBM3D" else {**kw, "head": n_sub})
                where.append((s, row))
    results = evaluate_many(tnet, x, y, jobs, workers=p.workers, also=also, progress=progress, desc=name)
    grouped: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for key, r in zip(where, results):
        grouped.setdefault(key, []).append(r)
    for (s, row), res_list in grouped.items():
        res: dict[str, Any] = {}
        subs = [r if row == "CBM3D" else r["head"] for r in res_list]
        fulls = [] if row == "CBM3D" else res_list
        summarise(res, "metric_subset", [r[metric] for r in subs])
        summarise(res, "psnr_subset", [r["psnr"] for r in subs])
        if also:
            summarise(res, "metric_unseen_subset", [r["also"]["unseen"]["top1"] for r in subs])
        if fulls:
            summarise(res, "metric", [r[metric] for r in fulls])
            summarise(res, "psnr", [r["psnr"] for r in fulls])
            if also:
                summarise(res, "metric_unseen", [r["also"]["unseen"]["top1"] for r in fulls])
        table.setdefault(row, {})[str(int(s))] = res
    clean = evaluate_task(tnet, x, y, batch_size=bs, also=also)
    result = {"task": task, "metric": metric, "clean": clean[metric], "n": len(x), "n_subset": n_sub, "rows": table,
              "seeds": {row: len(d) for row, d in rows.items()}, "lams": dict(lams or {}), "preset": p.asdict(),
              "unseen": None if unseen is None else unseen.name}  # fmt: skip
    if unseen is not None:
        result["clean_unseen"] = clean["also"]["unseen"]["top1"]
    write_json(out / f"{name}.json", result, default=float)
    return result


NOISE_SIGMAS = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0)


#: The kept task networks the notebooks use (`task_nets`); the manifest also holds the released denoisers and the
#: first classifier A of black 28 x 28 canvases (`dmh.tasks.fashion_classifier`), which the study no longer uses.
STUDY_TASK_NETWORKS = ("fashion_item_classifier", "fashion_segmenter")


def pretrained_summary() -> dict[str, dict[str, Any]]:
    """How the kept A and B weights were trained, from data/pretrained/manifest.json: metrics (clean test and
    val), steps, minutes, threads, the commit and the weights' sha256 (so a result file names the weights it used)."""
    from dmh.tasks import read_manifest

    return {
        name: {
            "metrics": e["metrics"], "steps": e["config"]["max_steps"], "minutes": e["train_seconds"] / 60,
            "threads": e.get("threads"), "commit": e["commit"], "sha256": e["sha256"], "command": e["command"],
        }
        for name, e in read_manifest().items()
        if name in STUDY_TASK_NETWORKS
    }  # fmt: skip


def task_noise_table(p: Preset, out: Path, sigmas: tuple[float, ...] | list[float] | None = None) -> dict[str, Any]:
    """The "noisy input" row of every frozen network: A (top-1, Fashion-MNIST test), B (mean IoU, test scenes),
    EfficientNet-Lite0 (top-1 on ImageNet-20 at `p.imagenet_size`, mean and std over `p.imagenet_draws` seeded
    draws) at each sigma (0-255; None: `NOISE_SIGMAS`). Written to out/task_noise.json."""
    check_scale(p)
    sigmas = NOISE_SIGMAS if sigmas is None else tuple(float(s) for s in sigmas)
    from dmh.evaluate import noise_degradation
    from dmh.tasks import efficientnet_lite0

    nets = task_nets()
    xa, ya = test_set("A", p)
    xb, yb = test_set("B", p)
    xi, yi = imagenet20_at(p.imagenet_size)
    eff = efficientnet_lite0(size=p.eff_size)
    result = {
        "fashion_item_classifier": {
            "metric": "top1",
            "rows": noise_degradation(nets["A"], xa, ya, sigmas, seed=p.seed),
        },  # fmt: skip
        "fashion_segmenter": {
            "metric": "miou",
            "rows": noise_degradation(nets["B"], xb, yb, sigmas, seed=p.seed, batch_size=50),
        },
        "efficientnet_lite0": {
            "metric": "top1",
            "rows": noise_degradation(eff, xi, yi, sigmas, seed=p.seed, draws=p.imagenet_draws, batch_size=20),
        },  # fmt: skip
        "n": {"fashion_item_classifier": len(xa), "fashion_segmenter": len(xb), "efficientnet_lite0": len(xi)},
        "pretrained": pretrained_summary(),
        "preset": p.asdict(),
    }
    write_json(out / "task_noise.json", result, default=float)
    return result


def imagenet_table(denoisers: dict[str, nn.Module | list[nn.Module]], p: Preset, out: Path) -> dict[str, Any]:
    """Top-1 of EfficientNet-Lite0 on ImageNet-20 (at `p.imagenet_size`) for noisy / CBM3D / each denoiser (one, or a
    list: one per training seed), at `p.imagenet_sigmas`, mean over `p.imagenet_draws` seeded draws and the seeds
    (CBM3D: the first draw only, on a mosaic of the 20 images, see `cbm3d_mosaic`); "top1_std" is the spread over
    all draws and seeds. The evaluations run in `p.workers` one-thread processes (`evaluate_many`, cached).
    Written to out/imagenet20.json."""
    check_scale(p)
    from dmh.tasks import efficientnet_lite0

    eff = efficientnet_lite0(size=p.eff_size)
    x, y = imagenet20_at(p.imagenet_size)
    rows: dict[str, Any] = {"noisy": None, "CBM3D": cbm3d_mosaic, **denoisers}
    warm_cbm3d_mosaics([(noisy_images(x[i : i + 20], s, p.seed, i), s) for s in p.imagenet_sigmas
                        for i in range(0, len(x), 20)], p.workers)  # fmt: skip
    table: dict[str, dict[str, dict[str, float]]] = {}
    jobs, where = [], []  # every (sigma, row, seed, draw) evaluation, in `p.workers` one-thread processes
    for s in p.imagenet_sigmas:
        for row, den in rows.items():
            for d_ in den if isinstance(den, list) else [den]:
                for d in range(1 if row == "CBM3D" else p.imagenet_draws):
                    jobs.append({"sigma": s, "denoiser": d_, "seed": p.seed + d, "batch_size": 20})
                    where.append((s, row))
    done = iter(evaluate_many(eff, x, y, jobs, workers=p.workers, desc="imagenet20"))
    results = [(key, next(done)) for key in where]
    for s in p.imagenet_sigmas:
        for row, den in rows.items():
            draws = 1 if row == "CBM3D" else p.imagenet_draws
            dens = den if isinstance(den, list) else [den]
            res = [r for key, r in results if key == (s, row)]
            table.setdefault(row, {})[str(int(s))] = {
                "top1": float(np.mean([r["top1"] for r in res])), "top1_std": float(np.std([r["top1"] for r in res])),
                "psnr": float(np.mean([r["psnr"] for r in res])), "draws": draws, "seeds": len(dens),
            }  # fmt: skip
    clean = evaluate_task(eff, x, y, batch_size=20)["top1"]
    result = {"clean": clean, "rows": table, "preset": p.asdict()}
    write_json(out / "imagenet20.json", result, default=float)
    return result


def texture_table(
    denoisers: dict[str, nn.Module | list[nn.Module]], p: Preset, out: Path, table1: Path
) -> dict[str, Any]:
    """Texture measures on the TEST photos at each of `p.photo_sigmas`: PSNR, SSIM, high-frequency energy kept
    (`high_frequency_ratio`, 1 = as much as the clean photo) and gradient similarity, for noisy and CBM3D (read from
    the PNGs 01 saved) and each denoiser (one, or a list: one per training seed; run here on the same noisy pixels).
    Each row of the result names its image, sigma, method and seed (0 for the untrained ones). Written to
    out/texture.json."""
    check_scale(p)
    from dmh.metrics import gradient_similarity, high_frequency_ratio

    require(table1, "01_denoiser.ipynb")
    imgs = test_photos(p)
    rows = []
    for s in p.photo_sigmas:
        for k, (name, clean) in enumerate(imgs.items()):
            noisy = photo_noise(clean, s, k, p)
            panels = [("noisy", 0, noisy), ("CBM3D", 0, saved_photo(out, s, "CBM3D", name))]
            for label, nets in denoisers.items():
                nets = nets if isinstance(nets, list) else [nets]
                panels += [(label, sd, denoise(net, noisy, fast=True)) for sd, net in enumerate(nets)]
            for method, sd, img in panels:
                rows.append({"image": name, "sigma": s, "method": method, "seed": sd, "psnr": psnr(img, clean),
                             "ssim": ssim(img, clean), "hf_ratio": high_frequency_ratio(img.clamp(0, 1), clean),
                             "gms": gradient_similarity(img, clean)})  # fmt: skip
    result = {"rows": rows, "preset": p.asdict()}
    write_json(out / "texture.json", result, default=float)
    return result


def real_photo_rows(denoisers: dict[str, list[nn.Module]], p: Preset, out: Path) -> dict[str, Any]:
    """07's fine-tuned rows on real photos, with error bars over training seeds: every tile (`dmh.evalsets.
    photo_tiles`, 224 x 224) of the TEST photos and ImageNet-20 (the first `p.real_tiles`), noisy at
    `p.eff_val_sigma` with `p.real_draws` seeded noise draws; per row and seed, the agreement of
    EfficientNet-Lite0's top-1 on the denoised tile with its top-1 on the clean tile, and the same through
    EfficientNet-Lite2, which no denoiser was trained through. `denoisers`: {row: [one denoiser per seed]} (and the
    noisy input as a row of its own). Written to out/real_photos.json: {"sigma", "draws", "n", "rows": {row:
    {"lite0": [per seed], "lite2": [...], "psnr": [...], "lite0_draws": [per draw, mean over seeds],
    "lite2_draws": [...]}}}."""
    check_scale(p)
    from dmh.tasks import efficientnet_lite0, efficientnet_lite2

    side = p.eff_size
    x, where = photo_tiles(224)  # the classifiers resize to their side inside their wrappers
    x, where = x[: p.real_tiles], where[: p.real_tiles]
    draws = p.real_draws
    nets = {"lite0": efficientnet_lite0(size=side), "lite2": efficientnet_lite2(size=None if side == 224 else side)}
    with torch.inference_mode():
        clean_top = {k: torch.cat([n(x[i : i + 16]).argmax(1) for i in range(0, len(x), 16)]) for k, n in nets.items()}
    s = p.eff_val_sigma
    all_rows = {"noisy": [None], **denoisers}
    jobs = [{"sigma": s, "denoiser": den, "seed": p.seed + d, "batch_size": 16}
            for dens in all_rows.values() for den in dens for d in range(draws)]  # fmt: skip
    results = iter(evaluate_many(nets["lite0"], x, clean_top["lite0"], jobs, workers=p.workers,
                                 also={"lite2": (nets["lite2"], clean_top["lite2"])}, desc="real photos"))  # fmt: skip
    rows: dict[str, Any] = {}
    for row, dens in all_rows.items():
        per: dict[str, list[list[float]]] = {"lite0": [], "lite2": [], "psnr": []}
        for _ in dens:
            vals: dict[str, list[float]] = {"lite0": [], "lite2": [], "psnr": []}
            for _ in range(draws):
                r = next(results)
                vals["lite0"].append(r["top1"])
                vals["lite2"].append(r["also"]["lite2"]["top1"])
                vals["psnr"].append(r["psnr"])
            for k in per:
                per[k].append(vals[k])
        rows[row] = {k: [float(np.mean(v)) for v in per[k]] for k in per}
        for k in ("lite0", "lite2"):
            rows[row][f"{k}_draws"] = [float(np.mean([v[d] for v in per[k]])) for d in range(draws)]
    result = {"sigma": s, "draws": draws, "n": len(x), "side": int(x.shape[-1]), "tiles": where, "rows": rows,
              "preset": p.asdict()}  # fmt: skip
    write_json(out / "real_photos.json", result, default=float)
    return result
