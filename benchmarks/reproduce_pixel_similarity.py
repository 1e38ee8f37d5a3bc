"""Reproduce the pixel-similarity regulariser ST_h (arXiv 2410.03952) at CPU scale.

For grayscale CIFAR-10 (the 4000 / 1000 subset: 3600 training images, 400 held
out to choose alpha), MNIST and Fashion-MNIST (5000 training images, 500 held
out, all 10000 test images) it trains, with the same narrow ResNet-18 layout and
recipe (width 8, 10 epochs):

* ``unregularised``   alpha = 0 (the paper's U model), seed 0
* ``ST_h``            the paper's Th and the alpha that the R0/U0 >= 0.9 rule picks on
                      the held-out images among the paper's alpha and smaller ones
* ``noise-aug``       alpha = 0, Gaussian-noise augmentation (baseline)
* ``blur``            alpha = 0, a fixed Gaussian blur in front of the net (baseline)
* ``surrogate-U``     alpha = 0, seed 1: source of the transferred FGSM (as the paper)
* ``surrogate-ST_h``  ST_h, seed 1: transfer from an independently regularised model

and evaluates them under the paper's black-box attacks (Gaussian noise and
FGSM transferred from ``surrogate-U``, 10 strengths on 1000 test images; the
Boundary attack with 50 steps on 100 images and, in the ``long-boundary``
stage, 5000 steps on 30), white-box PGD-20 on 100 images and, in the
``autoattack`` stage, standard AutoAttack at its default budget on 100 images,
and the Fourier spectrum of the Boundary attack's minimal perturbations. Models
are cached in ``benchmarks/results/models/``; results go to
``benchmarks/results/pixel_similarity/`` (JSON, markdown, PNG).

Run as two single-thread processes side by side (about 65 minutes on the 2-core
machine shared with two other jobs; see docs/defenses/pixel-similarity.md)::

    export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
    S=benchmarks/reproduce_pixel_similarity.py
    (python $S --datasets cifar10-gray && python $S --datasets fashion-mnist &&
     python $S --stage autoattack --datasets fashion-mnist) &
    (python $S --datasets mnist &&
     python $S --stage long-boundary --datasets cifar10-gray mnist &&
     python $S --stage autoattack --datasets mnist cifar10-gray) &
    wait

Without ``--datasets`` a stage runs every data set in turn. ``--quick`` runs a
tiny version (about a minute) to check the script.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np
import torch

import robustlearn
from robustlearn.atomic_file import atomic_path
from robustlearn.plugins.pixel_similarity import (
    GaussianNoiseScorer,
    PixelSimilarityClassifier,
    R0U0Refit,
)

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "pixel_similarity"
MODELS = ROOT / "results" / "models"
DATA = ROOT.parent.parent / "shared" / "data"

#: Per dataset: sizes, the paper's alpha/Th (README table, task = reg data), attack ranges
#: (the paper's, on [0, 1] pixels), white-box epsilons (the method card's), baselines, and
#: the multiples of the paper's alpha the R0/U0 rule chooses from (alpha 0 always runs).
#: ``n_val`` training images are held out for that choice; ``n_train + n_val`` = 4000 is the
#: whole grayscale CIFAR-10 subset in ../shared/data. ``boundary_long``: images for the
#: 5000-step Boundary attack (0 = not run).
DATASETS = {
    "cifar10-gray": dict(n_train=3600, n_val=400, n_test=1000, epochs=10, alpha=10.0,
                         threshold=0.8, noise_max=0.1, fgsm_max=0.02,
                         pgd_eps=(1 / 255, 2 / 255), noise_aug=0.1, blur=1.0,
                         boundary_long=30, alpha_grid=(1.0, 0.1)),
    "mnist": dict(n_train=5000, n_val=500, n_test=10000, epochs=10, alpha=4.0, threshold=0.2,
                  noise_max=0.5, fgsm_max=0.5, pgd_eps=(0.05, 0.1),
                  noise_aug=0.3, blur=1.0, boundary_long=30, alpha_grid=(1.0, 0.1, 0.01)),
    "fashion-mnist": dict(n_train=5000, n_val=500, n_test=10000, epochs=10, alpha=10.0,
                          threshold=0.8, noise_max=0.5, fgsm_max=0.5, pgd_eps=(0.05, 0.1),
                          noise_aug=0.3, blur=1.0, boundary_long=0, alpha_grid=(1.0, 0.1)),
}
COMMON = dict(width=8, k=16, n_regularization=1000, calibration_fraction=0.0, device="cpu")
N_EVAL = 1000          # test images for the noise and transferred-FGSM curves
N_POINTS = 10          # equally spaced strengths per curve, 0 included (the paper's 10)
N_BOUNDARY = 100       # images for the 50-step Boundary attack (paper: 1000 x 5 repeats)
N_WHITEBOX = 100       # images for PGD-20
N_AUTOATTACK = 100     # images for AutoAttack (unregularised and ST_h only)
AA_STEPS, AA_QUERIES = 100, 5000  # AutoAttack's defaults (APGD/FAB steps, Square queries)
STEPS_LONG = 5000      # long Boundary attack, on DATASETS[...]["boundary_long"] images


START = time.time()


def log(msg):
    print(f"[{time.time() - START:7.1f}s] {msg}", flush=True)


def model_specs(cfg, alpha):
    st = dict(alpha=alpha, threshold=cfg["threshold"])
    u = dict(alpha=0.0)
    return {
        "unregularised": dict(u, random_state=0),
        "ST_h": dict(st, random_state=0),
        "noise-aug": dict(u, noise_sigma=cfg["noise_aug"], random_state=0),
        "blur": dict(u, blur_sigma=cfg["blur"], random_state=0),
        "surrogate-U": dict(u, random_state=1),
        "surrogate-ST_h": dict(st, random_state=1),
    }


def select_alpha(dataset, cfg, X, y, Xv, yv, tag, quick):
    """The paper's rule on held-out training images: among alphas with R0 >= 0.9 U0, the
    one most accurate under Gaussian noise (sigma = half the paper's range)."""
    scorer = GaussianNoiseScorer(sigma=cfg["noise_max"] / 2, random_state=0)
    alphas = [0.0] + [cfg["alpha"] * f for f in cfg["alpha_grid"]]
    if len(alphas) == 2:
        return {"param_alpha": alphas, "selected_alpha": cfg["alpha"], "rule_met": None,
                "R0/U0": [], "note": "single alpha: the paper's, no selection"}
    cv = {"param_alpha": alphas, "mean_test_accuracy": [], "mean_test_robustness": []}
    for alpha in alphas:
        name = "unregularised" if alpha == 0 else f"ST_h-alpha{alpha:g}"
        params = dict(COMMON, max_epochs=cfg["epochs"], alpha=alpha,
                      threshold=cfg["threshold"], random_state=0)
        if quick:
            params.update(n_regularization=50)
        model, _ = fit_cached(name, dataset, params, X, y, tag)
        cv["mean_test_accuracy"].append(accuracy(model, Xv, yv))
        cv["mean_test_robustness"].append(scorer(model, Xv, yv))
    refit = R0U0Refit(ratio=0.9)
    best = refit(cv)
    cv["R0/U0"] = refit.ratios(cv).tolist()
    cv["selected_alpha"] = alphas[best] if alphas[best] > 0 else None
    if cv["selected_alpha"] is None:  # no alpha met the rule: keep the paper's, say so
        cv["selected_alpha"] = cfg["alpha"]
        cv["rule_met"] = False
    else:
        cv["rule_met"] = True
    log(f"{dataset} selection: {cv}")
    return cv


def fit_cached(name, dataset, params, X, y, tag):
    if name == "ST_h":  # the same fit as the selection's run at this alpha
        name = f"ST_h-alpha{params['alpha']:g}"
    path = MODELS / f"pixel_similarity_{tag}_{dataset}_n{len(X)}_{name}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            model, seconds = pickle.load(f)
        current = model.get_params()
        if all(current[k] == v for k, v in params.items()):
            return model, seconds
    t = time.time()
    model = PixelSimilarityClassifier(**params).fit(X, y)
    seconds = time.time() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump((model, seconds), f)
    return model, seconds


def accuracy(model, X, y):
    return float(np.mean(model.predict(X) == y))


def noise_curve(model, X, y, sigmas, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(X.shape).astype(np.float32)  # same draws for every model
    return [accuracy(model, np.clip(X + s * noise, 0, 1), y) for s in sigmas]


def fgsm_direction(source, X, y):
    """Sign of the source model's cross-entropy gradient: FGSM at every epsilon is
    ``clip(x + eps * sign)`` (one gradient, as Goodfellow et al. 2015 define it)."""
    signs = []
    for start in range(0, len(X), 250):
        x = torch.from_numpy(X[start:start + 250]).requires_grad_(True)
        yb = torch.from_numpy(np.searchsorted(source.classes_, y[start:start + 250]))
        loss = torch.nn.functional.cross_entropy(source.logits(x), yb, reduction="sum")
        signs.append(torch.autograd.grad(loss, x)[0].sign().numpy())
    return np.concatenate(signs)


def transfer_curve(source, victims, X, y, eps):
    sign = fgsm_direction(source, X, y)
    return {name: [accuracy(m, np.clip(X + e * sign, 0, 1), y) for e in eps]
            for name, m in victims.items()}


def boundary(model, X, y, steps, seed=0):
    """Median per-pixel squared l2 of successful minimal adversarials, success rate, deltas."""
    correct = model.predict(X) == y
    Xc, yc = X[correct], y[correct]
    if not len(Xc):
        return dict(n=int(len(X)), n_correct=0, success_rate=None,
                    median_sq_l2_per_pixel=None), Xc
    attack = robustlearn.make_attack("boundary", estimator=model, steps=steps, random_state=seed)
    adv = attack.generate(Xc, yc, epsilons=[None])[0]
    success = model.predict(adv) != yc
    d = ((adv - Xc) ** 2).reshape(len(Xc), -1).mean(1)
    return dict(
        n=int(len(X)), n_correct=int(correct.sum()), success_rate=float(success.mean()),
        median_sq_l2_per_pixel=float(np.median(d[success])) if success.any() else None,
    ), (adv - Xc)[success]


def whitebox(model, X, y, eps):
    """White-box PGD-20 (l_inf, random start) at every epsilon."""
    pgd = robustlearn.make_attack("linf-pgd", estimator=model, steps=20, random_state=0)
    adv = pgd.generate(X, y, epsilons=list(eps))
    return {"pgd20": [accuracy(model, a, y) for a in adv]}


def autoattack(model, X, y, eps, quick):
    """Standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square) at ``eps``, with its budget."""
    steps, queries = (10, 100) if quick else (AA_STEPS, AA_QUERIES)
    aa = robustlearn.make_attack("autoattack", estimator=model, steps=steps,
                                 n_queries=queries, random_state=0)
    t = time.time()
    adv = aa.generate(X, y, epsilons=[eps])[0]
    return dict(epsilon=eps, n=int(len(X)), clean=accuracy(model, X, y),
                accuracy=accuracy(model, adv, y), steps=steps, n_queries=queries,
                components=list(aa.components), seconds=round(time.time() - t, 1))


def radial_spectrum(deltas):
    """Mean over perturbations of the normalised radially averaged power spectrum (or None)."""
    if len(deltas) == 0:
        return None
    d = deltas.reshape(len(deltas), -1, *deltas.shape[-2:]).mean(1)
    power = np.abs(np.fft.fftshift(np.fft.fft2(d), axes=(-2, -1))) ** 2
    h, w = d.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h // 2, xx - w // 2).round().astype(int)
    n_bins = min(h, w) // 2 + 1
    spectra = []
    for p in power:
        s = np.bincount(r.ravel(), p.ravel(), minlength=r.max() + 1)[:n_bins]
        s = s / np.bincount(r.ravel(), minlength=r.max() + 1)[:n_bins]
        spectra.append(s / s.sum())
    return np.mean(spectra, axis=0)


def low_frequency_fraction(spectrum):
    """Share of the (radially averaged) power at radii up to a quarter of the band."""
    cut = max(1, (len(spectrum) - 1) // 4)
    return float(spectrum[: cut + 1].sum())


def load(dataset, cfg, quick=False):
    """Training subset, held-out validation images (for the selection), test subset.

    One draw (``random_state=0``) of ``n_train + n_val`` training images: the first
    ``n_train`` train every model, the rest choose alpha. With a single alpha there is
    nothing to select and nothing is held out.
    """
    n_val = 0 if len(cfg["alpha_grid"]) == 1 else cfg["n_val"]
    X, y = robustlearn.load_dataset(dataset, "train", n=cfg["n_train"] + n_val, data_dir=DATA,
                                    random_state=0)
    Xt, yt = robustlearn.load_dataset(dataset, "test", n=cfg["n_test"], data_dir=DATA,
                                      random_state=0)
    n = cfg["n_train"]
    return X[:n], y[:n], X[n:], y[n:], Xt, yt


def dataset_config(dataset, quick):
    cfg = dict(DATASETS[dataset])
    if quick:
        cfg.update(n_train=200, n_val=100, n_test=100, epochs=1,
                   boundary_long=min(5, cfg["boundary_long"]))
    return cfg


def fit_all(dataset, cfg, X, y, tag, quick, alpha):
    models, info = {}, {}
    for name, spec in model_specs(cfg, alpha).items():
        params = dict(COMMON, max_epochs=cfg["epochs"], **spec)
        if quick:
            params.update(n_regularization=50)
        models[name], sec = fit_cached(name, dataset, params, X, y, tag)
        info[name] = dict(params=params, fit_seconds=round(sec, 1))
    return models, info


def main_stage(dataset, cfg, res, quick, tag, save):
    """Training, noise, transferred FGSM, Boundary-50 and PGD of one dataset (``save()``
    after each part, so a stopped run keeps what it finished)."""
    X, y, Xv, yv, Xt, yt = load(dataset, cfg, quick)
    res["sizes"] = dict(n_train=len(X), n_val=len(Xv), n_test=len(Xt))
    res["selection"] = select_alpha(dataset, cfg, X, y, Xv, yv, tag, quick)
    models, info = fit_all(dataset, cfg, X, y, tag, quick, res["selection"]["selected_alpha"])
    res["models"] = info
    for name, m in models.items():
        info[name]["clean"] = accuracy(m, Xt, yt)
        log(f"{dataset} {name}: fit {info[name]['fit_seconds']:.0f}s "
            f"clean {info[name]['clean']:.3f}")
    victims = {k: v for k, v in models.items() if not k.startswith("surrogate")}
    res["U0"] = info["unregularised"]["clean"]
    res["R0/U0"] = info["ST_h"]["clean"] / res["U0"]
    save()

    ne = 40 if quick else N_EVAL
    Xe, ye = Xt[:ne], yt[:ne]
    sigmas = list(np.linspace(0, cfg["noise_max"], N_POINTS))
    res["gaussian_noise"] = {"sigma": sigmas, **{k: noise_curve(m, Xe, ye, sigmas)
                                                  for k, m in victims.items()}}
    log(f"{dataset} noise done")
    eps = list(np.linspace(0, cfg["fgsm_max"], N_POINTS))
    for src in ("U", "ST_h"):
        res[f"fgsm_from_surrogate_{src}"] = {
            "epsilon": eps, **transfer_curve(models[f"surrogate-{src}"], victims, Xe, ye, eps)}
    log(f"{dataset} transfer FGSM done")
    save()
    nb = 10 if quick else N_BOUNDARY
    res["boundary_50"], res["spectra"] = {}, res.get("spectra", {})
    for name in ("unregularised", "ST_h", "noise-aug", "blur"):
        res["boundary_50"][name], deltas = boundary(models[name], Xt[:nb], yt[:nb], 50)
        if len(deltas):
            res["spectra"][f"boundary_50/{name}"] = radial_spectrum(deltas).tolist()
    log(f"{dataset} boundary-50 done")
    save()
    nw = 20 if quick else N_WHITEBOX
    res["whitebox"] = {"epsilon": list(cfg["pgd_eps"]), "n": int(min(nw, len(Xt)))}
    for name, m in victims.items():
        res["whitebox"][name] = whitebox(m, Xt[:nw], yt[:nw], cfg["pgd_eps"])
    log(f"{dataset} white-box PGD done")


AA_MODELS = ("unregularised", "ST_h")


def autoattack_stage(dataset, cfg, res, quick, tag, save, names=AA_MODELS):
    """Standard AutoAttack at the larger white-box epsilon on cached models (``names``;
    earlier results of other models of the data set are kept)."""
    X, y, _, _, Xt, yt = load(dataset, cfg, quick)
    models, _ = fit_all(dataset, cfg, X, y, tag, quick, res["selection"]["selected_alpha"])
    n = 10 if quick else N_AUTOATTACK
    res.setdefault("autoattack", {})
    for name in names:
        res["autoattack"][name] = autoattack(models[name], Xt[:n], yt[:n], cfg["pgd_eps"][-1],
                                             quick)
        log(f"{dataset} autoattack {name}: {res['autoattack'][name]}")
        save()


def long_boundary_stage(dataset, cfg, res, quick, tag, save):
    """The Boundary attack with ``STEPS_LONG`` steps on a few images (cached models)."""
    X, y, _, _, Xt, yt = load(dataset, cfg, quick)
    models, _ = fit_all(dataset, cfg, X, y, tag, quick, res["selection"]["selected_alpha"])
    n_long, steps = cfg["boundary_long"], (100 if quick else STEPS_LONG)
    res["boundary_long"] = {"steps": steps}
    res.setdefault("spectra", {})
    for name in ("unregularised", "ST_h"):
        t = time.time()
        res["boundary_long"][name], deltas = boundary(models[name], Xt[:n_long], yt[:n_long],
                                                      steps)
        res["boundary_long"][name]["seconds"] = round(time.time() - t, 1)
        if len(deltas):
            res["spectra"][f"boundary_long/{name}"] = radial_spectrum(deltas).tolist()
        log(f"{dataset} boundary-{steps} {name} done")
        save()


STAGES = {"main": "results.json", "long-boundary": "long_boundary.json",
          "autoattack": "autoattack.json"}


def update_json(path, update):
    """Read ``path`` (if any), apply ``update(dict)``, write it back, under a file lock:
    stages of different data sets may run in parallel processes and share the file."""
    import fcntl

    MODELS.mkdir(parents=True, exist_ok=True)  # git-ignored: the lock file goes there
    with open(MODELS / f"pixel_similarity_{path.parent.name}_{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {"datasets": {}}
        update(data)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(data, indent=1))


def run(quick=False, stage="main", datasets=None, aa_models=AA_MODELS):
    """Run one stage on some data sets (all by default). ``main`` writes ``results.json``,
    ``long-boundary`` ``long_boundary.json`` and ``autoattack`` ``autoattack.json``; each
    replaces only the entries of the data sets it runs, so stages and data sets can run in
    parallel processes, and every run rewrites the markdown and the plots from whatever
    results exist."""
    torch.set_num_threads(1)
    tag = "quick" if quick else "full"
    out_dir = OUT / "quick" if quick else OUT
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STAGES[stage]
    config = dict(COMMON, datasets=DATASETS, n_eval=N_EVAL, n_points=N_POINTS,
                  n_boundary=N_BOUNDARY, n_whitebox=N_WHITEBOX, n_autoattack=N_AUTOATTACK,
                  aa_steps=AA_STEPS, aa_queries=AA_QUERIES, steps_long=STEPS_LONG, quick=quick)
    t0 = time.time()
    for dataset in datasets or DATASETS:
        cfg = dataset_config(dataset, quick)
        res = {}

        def save(dataset=dataset, res=res):
            def update(data):
                data["config"] = config
                data["datasets"][dataset] = res
            update_json(path, update)

        if stage == "main":
            main_stage(dataset, cfg, res, quick, tag, save)
        elif stage == "autoattack" or cfg["boundary_long"]:
            # the alpha the main stage selected
            main = json.loads((out_dir / "results.json").read_text())
            res["selection"] = main["datasets"][dataset]["selection"]
            if stage == "autoattack":
                if path.exists():  # keep the other models' AutoAttack results
                    old = json.loads(path.read_text())["datasets"].get(dataset, {})
                    res["autoattack"] = old.get("autoattack", {})
                autoattack_stage(dataset, cfg, res, quick, tag, save, aa_models)
            else:
                long_boundary_stage(dataset, cfg, res, quick, tag, save)
        else:
            continue
        res["seconds"] = round(time.time() - t0, 1)
        t0 = time.time()
        for key, spectrum in res.get("spectra", {}).items():
            res.setdefault("spectrum_low_fraction", {})[key] = low_frequency_fraction(
                np.asarray(spectrum))
        save()
        log(f"{dataset} {stage} done in {res['seconds']} s")
    report(out_dir)
    log("done")


def merged_results(out_dir):
    """``results.json`` with the other stages' files merged in (whichever exist)."""
    merged = {"datasets": {}, "seconds": {}}
    for stage, name in STAGES.items():
        path = out_dir / name
        if not path.exists():
            continue
        part = json.loads(path.read_text())
        for dataset, res in part["datasets"].items():
            if stage == "autoattack" and res.get("autoattack"):
                # the models may be attacked in several runs (--aa-models): add their times
                merged["seconds"][f"{stage} {dataset} (attack time of "
                                  f"{', '.join(res['autoattack'])})"] = round(
                    sum(v["seconds"] for v in res["autoattack"].values()), 1)
            elif "seconds" in res:
                merged["seconds"][f"{stage} {dataset}"] = res["seconds"]
            into = merged["datasets"].setdefault(dataset, {})
            for key, value in res.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    into[key] = {**into[key], **value}
                elif key not in into or name == "results.json":
                    into[key] = value
    return merged


def report(out_dir):
    results = merged_results(out_dir)
    write_markdown(results, out_dir / "results.md")
    plot(results, out_dir)


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def write_markdown(results, path):
    lines = []
    for dataset, res in results["datasets"].items():
        if "whitebox" not in res:  # the main stage has not finished it yet
            continue
        sizes = res.get("sizes", {})
        lines += [f"### {dataset}", "",
                  f"Images: {sizes.get('n_train')} training, {sizes.get('n_val')} held out "
                  f"for the choice of alpha, {sizes.get('n_test')} test (clean accuracy); "
                  f"curves on the first {min(N_EVAL, sizes.get('n_test') or N_EVAL)}, "
                  f"Boundary-50 on {res['boundary_50']['unregularised']['n']}, "
                  f"PGD-20 on {res['whitebox'].get('n')}.", "",
                  "| model | alpha | clean (test) | training seconds |", "|---|---|---|---|",
                  *[f"| {name} | {m['params'].get('alpha', 0):g} | {_pct(m['clean'])} "
                    f"| {m['fit_seconds']} |" for name, m in res["models"].items()], "",
                  f"U0 = {_pct(res['U0'])} %, R0/U0 = {res['R0/U0']:.3f} (test); alpha "
                  f"{res['selection']['selected_alpha']:g} chosen from "
                  f"{res['selection']['param_alpha']} with validation R0/U0 "
                  f"{[round(r, 3) for r in res['selection']['R0/U0']]} "
                  f"(rule met: {res['selection']['rule_met']}; None = nothing to select)", "",
                  "| model | clean | noise (max sigma) | FGSM from U (mid / max eps) "
                  "| FGSM from ST_h (max eps) | PGD-20 (eps1 / eps2) | AutoAttack (eps2) "
                  "| Boundary-50 median sq. l2/pixel (success) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name in ("unregularised", "ST_h", "noise-aug", "blur"):
            fg = res["fgsm_from_surrogate_U"][name]
            fr = res["fgsm_from_surrogate_ST_h"][name]
            wb = res["whitebox"][name]
            b = res["boundary_50"][name]
            med = b["median_sq_l2_per_pixel"]
            lines.append(
                f"| {name} | {_pct(res['models'][name]['clean'])} "
                f"| {_pct(res['gaussian_noise'][name][-1])} "
                f"| {_pct(fg[len(fg) // 2])} / {_pct(fg[-1])} | {_pct(fr[-1])} "
                f"| {_pct(wb['pgd20'][0])} / {_pct(wb['pgd20'][1])} "
                f"| {_pct(res.get('autoattack', {}).get(name, {}).get('accuracy'))} "
                f"| {'-' if med is None else f'{med:.2e}'} ({_pct(b['success_rate'])} %) |")
        if "boundary_long" in res:
            long = res["boundary_long"]
            lines += ["", f"Boundary, {long['steps']} steps: " + "; ".join(
                f"{k}: median {v['median_sq_l2_per_pixel']:.2e} "
                f"(success {_pct(v['success_rate'])} % of {v['n_correct']} correctly classified)"
                if v["median_sq_l2_per_pixel"] is not None else f"{k}: no success"
                for k, v in long.items() if k != "steps")]
        if res.get("autoattack"):
            lines += ["", "AutoAttack: " + "; ".join(
                f"{k}: {_pct(v['accuracy'])} % of {v['n']} at eps {v['epsilon']:.4g} "
                f"(clean {_pct(v['clean'])} %; {'+'.join(v['components'])}, {v['steps']} "
                f"steps, {v['n_queries']} queries; {v['seconds']} s)"
                for k, v in res["autoattack"].items())]
        lines += ["", "Low-frequency share (radii up to a quarter of the band) of the "
                  "minimal perturbations' power: " + "; ".join(
                      f"{k}: {v:.3f}" for k, v in res.get("spectrum_low_fraction", {}).items()),
                  ""]
    lines += ["Wall time (s): " + ", ".join(
        f"{k} {v}" for k, v in results.get("seconds", {}).items()), ""]
    path.write_text("\n".join(lines) + "\n")


def plot(results, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d, res in results["datasets"].items() if "whitebox" in res]
    if not datasets:
        return
    fig, axes = plt.subplots(3, len(datasets), figsize=(4.2 * len(datasets), 10))
    axes = np.atleast_2d(axes).reshape(3, len(datasets))
    for col, dataset in enumerate(datasets):
        res = results["datasets"][dataset]
        for row, (key, xkey, title) in enumerate([
            ("gaussian_noise", "sigma", "Gaussian noise"),
            ("fgsm_from_surrogate_U", "epsilon", "FGSM transferred from U"),
            ("fgsm_from_surrogate_ST_h", "epsilon", "FGSM transferred from ST_h"),
        ]):
            ax = axes[row, col]
            for name in ("unregularised", "ST_h", "noise-aug", "blur"):
                ax.plot(res[key][xkey], res[key][name], marker=".", label=name)
            ax.set_title(f"{dataset}: {title}", fontsize=9)
            ax.set_xlabel(xkey)
            ax.set_ylabel("accuracy")
            ax.set_ylim(0, 1)
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=110)
    plt.close(fig)

    panels = [(d, kind) for d in datasets for kind in ("boundary_50", "boundary_long")
              if any(k.startswith(kind) for k in results["datasets"][d].get("spectra", {}))]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (dataset, kind) in zip(axes[0], panels):
        res = results["datasets"][dataset]
        for key, s in res["spectra"].items():
            if key.startswith(kind + "/"):
                s = np.asarray(s)
                ax.semilogy(np.arange(len(s)) / (2 * (len(s) - 1)), s, label=key.split("/")[1])
        steps = res["boundary_long"]["steps"] if kind == "boundary_long" else 50
        ax.set_title(f"{dataset}: Boundary-{steps} minimal perturbations", fontsize=9)
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("share of power")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "spectrum.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    parser.add_argument("--stage", choices=list(STAGES), default="main",
                        help="main: train, then noise, transferred FGSM, Boundary-50 and "
                        "PGD-20; long-boundary: the Boundary attack with 5000 steps, and "
                        "autoattack: standard AutoAttack, both on the cached models")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS),
                        help="run only these data sets, keeping the others' saved results")
    parser.add_argument("--aa-models", nargs="+", default=list(AA_MODELS),
                        choices=("unregularised", "ST_h", "noise-aug", "blur"),
                        help="models the autoattack stage attacks (default: %(default)s)")
    args = parser.parse_args()
    run(args.quick, args.stage, args.datasets, tuple(args.aa_models))
