"""Reproduce the SCA paper's APGD comparison on MNIST and Fashion-MNIST, then attack harder.

Shah & Raj, "Fixed Inter-Neuron Covariability Induces Adversarial Robustness",
arXiv 2308.03956 (2023). Claim: an SCA network gains +4 to +6 points of APGD
robust accuracy over a same-width MLP, and robustness rises for T > 8.

For each dataset the script trains, on the same stratified training subset,
a same-width MLP (``SCAClassifier(T=0)``: the same normalisation, width,
dropout and head, no inner loop) and one SCA network per T (the paper trains
and tests at the same T), then measures

1. clean accuracy on the whole test set;
2. the paper's protocol: APGD-CE, 50 steps, 1 restart, rho 0.75, l_inf, at
   each epsilon, on ``--n-attack`` test images (MLP and the largest T) and on
   ``--n-sweep`` of them for every T (the T sweep);
3. the strongest evaluation we can afford, on ``--n-strong`` of them:
   BPDA (identity through the loop) and a T_att sweep of the loop's gradient,
   transfer from the MLP and from T = 1, AutoAttack (reduced budget, below),
   and the per-example worst case over all of them and the protocol's APGD;
4. the change of the activation correlation matrix under attack,
   ||R_0 - R_eps||_F, for every model.

Radii are attacked in increasing order and an image broken at a smaller radius
counts as broken at every larger one (the perturbation lies in the larger ball
too), so only survivors are attacked again. This never overstates robustness
and saves most of the time at large radii.

Paper numbers are in their own column of the markdown; everything else is measured.

Usage::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/reproduce_sca.py \
        --data-dir ../shared/data --out benchmarks/results/sca
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
from robustlearn.attacks.apgd import apgd_attack
from robustlearn.plugins.sca import SCAClassifier, sca_macs

PAPER_CLAIM = ("+4 to +6 points absolute APGD robust accuracy over the same-width MLP "
               "(45-155 % relative); robustness rises for T > 8; clean accuracy similar")
START = time.time()


def log(message):
    print(f"[{time.time() - START:7.1f}s] {message}", flush=True)


# ------------------------------------------------------------------ models
def fit_or_load(args, dataset, T, X, y):
    name = (f"sca-{dataset}-n{len(X)}-w{args.width}-T{T}-e{args.epochs}-s{args.seed}.pkl")
    path = Path(args.models_dir) / name
    if path.exists():
        with open(path, "rb") as f:
            clf = pickle.load(f)
        log(f"loaded {name}")
        return clf, None
    clf = SCAClassifier(width=args.width, T=T, max_epochs=args.epochs, batch_size=256,
                        lr=1e-3, calibration_fraction=0.0, device="cpu",
                        random_state=args.seed)
    t = time.time()
    clf.fit(X, y)
    seconds = time.time() - t
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(clf, f)
    log(f"trained {name} in {seconds:.0f}s")
    return clf, seconds


# ----------------------------------------------------------------- attacks
def predict(clf, X):
    return clf.predict(X)


def nested_attack(clf, surface, X, y, epsilons, steps, seed, batch=250, alive=None):
    """APGD-CE at increasing radii on the images still correctly classified.

    Returns (correct, adversarial): ``correct[k, i]`` is whether the deployed model
    classifies image i correctly after the attacks at radii <= epsilons[k]; the
    adversarial images (the breaking one, else the last attempt) per radius.
    """
    correct = predict(clf, X) == y if alive is None else alive.copy()
    rows, advs = [], []
    adv = X.copy()
    for eps in epsilons:
        index = np.flatnonzero(correct)
        for start in range(0, len(index), batch):
            part = index[start:start + batch]
            torch.manual_seed(seed)
            xb = torch.from_numpy(X[part])
            yb = torch.from_numpy(y[part].astype(np.int64))
            out = apgd_attack(surface, xb, yb, epsilon=eps, norm="linf", steps=steps,
                              loss="ce", restarts=1, rho=0.75, random_start=True).numpy()
            adv[part] = out
        correct = correct & (predict(clf, adv) == y)
        rows.append(correct.copy())
        advs.append(adv.copy())
    return np.array(rows), advs


def correlation_shift(clf, X_clean, X_adv):
    """||R_0 - R_eps||_F: change of the hidden units' correlation matrix under attack."""
    def corr(A):
        with np.errstate(invalid="ignore", divide="ignore"):
            R = np.corrcoef(A.astype(np.float64), rowvar=False)
        return np.nan_to_num(R)  # dead units have no correlation: count them as 0
    return float(np.linalg.norm(corr(clf.hidden_activations(X_clean))
                                - corr(clf.hidden_activations(X_adv))))


def autoattack(clf, X, y, alive, eps, args):
    correct = alive.copy()
    index = np.flatnonzero(correct)
    if len(index):
        attack = robustlearn.make_attack(
            "autoattack", epsilon=eps, estimator=clf, steps=args.aa_steps,
            n_target_classes=args.aa_targets, n_queries=args.aa_queries,
            random_state=args.seed)
        adv = attack.fit(X[index]).transform(X[index], y[index])
        correct[index] = predict(clf, adv) == y[index]
    return correct


def percent(mask):
    return 100.0 * float(np.mean(mask))


# -------------------------------------------------------------- one dataset
# Results are keyed by str(T) and str(epsilon) so that they survive a JSON round trip.
def run_dataset(args, dataset, r, save):
    X, y = robustlearn.load_dataset(dataset, "train", n=args.n_train, data_dir=args.data_dir,
                                    random_state=args.seed)
    X_test, y_test = robustlearn.load_dataset(dataset, "test", n=args.n_test,
                                              data_dir=args.data_dir, random_state=args.seed)
    y = y.astype(np.int64)
    y_test = y_test.astype(np.int64)
    Xa, ya = X_test[:args.n_attack], y_test[:args.n_attack]
    Ts = sorted(args.Ts)
    T_main = max(Ts)
    eps = args.epsilons
    models, r["train_seconds"], r["clean"] = {}, {}, {}
    for T in [0] + Ts:
        models[T], seconds = fit_or_load(args, dataset, T, X, y)
        r["train_seconds"][str(T)] = seconds
        r["clean"][str(T)] = percent(predict(models[T], X_test) == y_test)
        log(f"{dataset} T={T} clean {r['clean'][str(T)]:.2f}")
        save()

    # the paper's protocol on n_attack images: MLP and the main model
    r["apgd"], r["corr_shift"] = {}, {}
    protocol = {}
    for T in (0, T_main):
        t = time.time()
        correct, advs = nested_attack(models[T], models[T].logits, Xa, ya, eps, args.steps,
                                      args.seed)
        protocol[T] = (correct, advs)
        r["apgd"][str(T)] = {str(e): percent(c) for e, c in zip(eps, correct)}
        r["corr_shift"][str(T)] = {str(e): correlation_shift(models[T], Xa, a)
                                   for e, a in zip(eps, advs)}
        log(f"{dataset} T={T} APGD-CE-{args.steps} on {len(Xa)}: {r['apgd'][str(T)]} "
            f"({time.time() - t:.0f}s)")
        save()

    # the T sweep on n_sweep of the same images (MLP and main model: their first n_sweep)
    n = args.n_sweep
    r["sweep"] = {str(T): {str(e): percent(c[:n]) for e, c in zip(eps, protocol[T][0])}
                  for T in (0, T_main)}
    for T in Ts:
        if T == T_main:
            continue
        t = time.time()
        correct, advs = nested_attack(models[T], models[T].logits, Xa[:n], ya[:n], eps,
                                      args.steps, args.seed)
        r["sweep"][str(T)] = {str(e): percent(c) for e, c in zip(eps, correct)}
        r["corr_shift"][str(T)] = {str(e): correlation_shift(models[T], Xa[:n], a)
                                   for e, a in zip(eps, advs)}
        log(f"{dataset} T={T} APGD-CE-{args.steps} on {n}: {r['sweep'][str(T)]} "
            f"({time.time() - t:.0f}s)")
        save()

    clean_at_other_T(models[T_main], X_test, y_test, r)
    save()
    return models, protocol, (Xa, ya)


def clean_at_other_T(main, X_test, y_test, r):
    """The main model run at other T after training (clean accuracy, 2000 test images)."""
    r["clean_T_predict"] = {}
    T_main = main.T
    for Tp in sorted({0, 1, 4, 8, T_main, 2 * T_main}):
        main.set_params(T_predict=Tp)
        r["clean_T_predict"][str(Tp)] = percent(predict(main, X_test[:2000]) == y_test[:2000])
    main.set_params(T_predict=None)


def resume_dataset(args, dataset, r, save):
    """Reload the models and the saved protocol results; re-run the protocol's APGD on the
    first ``n_strong`` images only (its per-image outcomes and the MLP's adversarial images
    feed the strong evaluation and were not saved)."""
    X, y = robustlearn.load_dataset(dataset, "train", n=args.n_train, data_dir=args.data_dir,
                                    random_state=args.seed)
    X_test, y_test = robustlearn.load_dataset(dataset, "test", n=args.n_test,
                                              data_dir=args.data_dir, random_state=args.seed)
    y, y_test = y.astype(np.int64), y_test.astype(np.int64)
    Ts = sorted(args.Ts)
    T_main = max(Ts)
    models = {T: fit_or_load(args, dataset, T, X, y)[0] for T in [0] + Ts}
    if "clean_T_predict" not in r:
        clean_at_other_T(models[T_main], X_test, y_test, r)
        save()
    Xs, ys = X_test[:args.n_strong], y_test[:args.n_strong]
    protocol = {}
    for T in (0, T_main):
        t = time.time()
        protocol[T] = nested_attack(models[T], models[T].logits, Xs, ys, args.epsilons,
                                    args.steps, args.seed)
        log(f"{dataset} T={T} APGD-CE-{args.steps} again on {len(Xs)} ({time.time() - t:.0f}s)")
    return models, protocol, (Xs, ys)


def strong_evaluation(args, dataset, r, save, models, protocol, data):
    """BPDA, the T_att sweep, transfer, AutoAttack and the per-example worst case."""
    s = r.setdefault("strong", {})
    Xa, ya = data
    n = args.n_strong
    Xs, ys = Xa[:n], ya[:n]
    eps = args.epsilons
    T_main = max(args.Ts)
    main = models[T_main]
    worst = {T: protocol[T][0][:, :n].copy() for T in (0, T_main)}
    s["n"] = int(len(Xs))
    s["protocol_apgd"] = {str(T): {str(e): percent(c) for e, c in zip(eps, worst[T])}
                          for T in worst}

    def record():
        # the per-example worst case so far, kept current so that a stopped run reports it
        s["worst_case"] = {str(T): {str(e): percent(c) for e, c in
                                    zip(eps, np.logical_and.accumulate(worst[T], axis=0))}
                           for T in worst}
        save()

    def over_budget(stage):
        if time.time() - START > args.time_budget:
            s.setdefault("skipped", []).append(stage)
            log(f"skip {dataset} {stage}: over the time budget")
            return True
        return False

    # transfer: the adversarial images made on the MLP in the protocol run
    s["transfer"] = {}
    clean_ok = predict(main, Xs) == ys
    hit = np.array([predict(main, a[:n]) == ys for a in protocol[0][1]])
    hit = np.logical_and.accumulate(hit & clean_ok, axis=0)
    s["transfer"]["from MLP"] = {str(e): percent(c) for e, c in zip(eps, hit)}
    worst[T_main] &= hit
    record()

    # BPDA: identity through the loop (T_att = 0), and the loop's gradient at T_att steps
    s["bpda_T_att"] = {}
    for T_att in args.T_att:
        if over_budget(f"bpda T_att={T_att}"):
            continue
        t = time.time()
        correct, _ = nested_attack(main, main.attack_surface_at(T_att), Xs, ys, eps,
                                   args.steps, args.seed)
        s["bpda_T_att"][str(T_att)] = {str(e): percent(c) for e, c in zip(eps, correct)}
        worst[T_main] &= correct
        log(f"{dataset} BPDA T_att={T_att}: {s['bpda_T_att'][str(T_att)]} "
            f"({time.time() - t:.0f}s)")
        record()

    # transfer from the same weights run at T = 1
    if not over_budget("transfer from T_att=1"):
        t = time.time()
        _, advs = nested_attack(main, main.attack_surface_at(1, forward="T_att"), Xs, ys, eps,
                                args.steps, args.seed)
        hit = np.array([predict(main, a) == ys for a in advs])
        hit = np.logical_and.accumulate(hit & clean_ok, axis=0)
        s["transfer"]["from the same weights at T=1"] = {
            str(e): percent(c) for e, c in zip(eps, hit)}
        worst[T_main] &= hit
        log(f"{dataset} transfer from T=1: {s['transfer']} ({time.time() - t:.0f}s)")
        record()

    # AutoAttack on the images every attack so far left standing (per-example worst case)
    s["autoattack_attacked"] = {}
    for T in (0, T_main):
        s["autoattack_attacked"][str(T)] = {}
        for k, e in enumerate(eps):
            if k:
                worst[T][k] &= worst[T][k - 1]
            if e not in args.aa_epsilons or over_budget(f"autoattack T={T} eps={e}"):
                continue
            t = time.time()
            alive = worst[T][k].copy()
            worst[T][k] = autoattack(models[T], Xs, ys, alive, e, args)
            s["autoattack_attacked"][str(T)][str(e)] = int(alive.sum())
            log(f"{dataset} T={T} AutoAttack eps={e} on {int(alive.sum())} survivors "
                f"({time.time() - t:.0f}s)")
            record()
    record()
    log(f"{dataset} worst case: {s['worst_case']}")


# ---------------------------------------------------------------- reporting
def _cells(row, eps, fmt="{:.1f}"):
    return " | ".join(fmt.format(row[str(e)]) if row and str(e) in row else "-" for e in eps)


def markdown(args, results):
    eps = args["epsilons"]
    steps = args["steps"]
    T_main = max(args["Ts"])
    lines = [f"# SCA reproduction (width {args['width']}, {args['n_train']} training images, "
             f"{args['epochs']} epochs)", "",
             f"Paper claim: {PAPER_CLAIM}.", ""]
    for dataset, r in results.items():
        if "clean" not in r:
            continue
        lines += [f"## {dataset}", "",
                  f"| model | clean ({args['n_test']}) | "
                  + " | ".join(f"APGD-CE-{steps} eps {e}" for e in eps) + " |",
                  "|---|---|" + "---|" * len(eps)]
        for T in [0] + sorted(args["Ts"]):
            if str(T) not in r["clean"]:
                continue
            main_row = str(T) in r.get("apgd", {})
            row = r["apgd"][str(T)] if main_row else r.get("sweep", {}).get(str(T))
            n = args["n_attack"] if main_row else args["n_sweep"]
            name = "MLP (T=0)" if T == 0 else f"SCA T={T}"
            lines.append(f"| {name} (n={n}) | {r['clean'][str(T)]:.2f} | {_cells(row, eps)} |")
        s = r.get("strong")
        if s and "worst_case" in s:
            lines += ["", f"Strongest evaluation on the first {s['n']} of those images "
                      "(robust accuracy, %):", "",
                      "| attack | " + " | ".join(f"eps {e}" for e in eps) + " |",
                      "|---|" + "---|" * len(eps)]
            for T, row in s["protocol_apgd"].items():
                lines.append(f"| T={T}: APGD-CE-{steps}, exact gradient (protocol) | "
                             f"{_cells(row, eps)} |")
            for T_att, row in s.get("bpda_T_att", {}).items():
                what = "identity through the loop" if T_att == "0" else f"loop at T_att={T_att}"
                lines.append(f"| T={T_main}: APGD-CE-{steps}, BPDA ({what}) | "
                             f"{_cells(row, eps)} |")
            for src, row in s.get("transfer", {}).items():
                lines.append(f"| T={T_main}: transfer {src} | {_cells(row, eps)} |")
            for T, row in s["worst_case"].items():
                attacked = s.get("autoattack_attacked", {}).get(T, {})
                lines.append(f"| **T={T}: per-example worst case, incl. AutoAttack on the "
                             f"survivors {attacked}** | {_cells(row, eps, '**{:.1f}**')} |")
            if s.get("skipped"):
                lines.append(f"\nSkipped (time budget): {', '.join(s['skipped'])}")
        if "corr_shift" in r:
            lines += ["", "||R_0 - R_eps||_F of the hidden units' correlation matrix "
                      "(clean vs APGD images):", "",
                      "| model | " + " | ".join(f"eps {e}" for e in eps) + " |",
                      "|---|" + "---|" * len(eps)]
            for T, row in sorted(r["corr_shift"].items(), key=lambda kv: int(kv[0])):
                lines.append(f"| T={T} | {_cells(row, eps)} |")
        if "clean_T_predict" in r:
            lines += ["", f"Clean accuracy (%, 2000 test images) of the T={T_main} model run "
                      "at other T after training:", "",
                      "| T_predict | " + " | ".join(r["clean_T_predict"]) + " |",
                      "|---|" + "---|" * len(r["clean_T_predict"]),
                      "| clean | " + " | ".join(f"{v:.1f}" for v in
                                                r["clean_T_predict"].values()) + " |"]
        lines.append("")
    return "\n".join(lines)


def plot(args, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d, r in results.items() if "sweep" in r]
    if not datasets:
        return
    eps = args["epsilons"]
    T_main = str(max(args["Ts"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        r = results[dataset]
        Ts = sorted(int(t) for t in r["sweep"] if t != "0")
        worst = r.get("strong", {}).get("worst_case", {}).get(T_main)
        for e in eps:
            line = ax.plot(Ts, [r["sweep"][str(t)][str(e)] for t in Ts], "o-",
                           label=f"SCA, eps {e}")
            ax.axhline(r["sweep"]["0"][str(e)], ls="--", color=line[0].get_color(), lw=1,
                       label=f"MLP, eps {e}")
            if worst:
                ax.plot([int(T_main)], [worst[str(e)]], "x", ms=9, color=line[0].get_color())
        ax.set_xscale("log", base=2)
        ax.set_xticks(Ts, [str(t) for t in Ts])
        ax.set_xlabel("inner steps T (train = test)")
        ax.set_ylabel(f"APGD-CE-{args['steps']} robust accuracy (%)")
        ax.set_title(f"{dataset}: n={args['n_sweep']}; x = worst case "
                     f"(n={args['n_strong']})", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(out):
    """Combine every ``<out>/<dataset>.results.json`` into ``results.md`` and ``t_sweep.png``."""
    out = Path(out)
    runs = {p.name.split(".")[0]: json.loads(p.read_text())
            for p in sorted(out.glob("*.results.json"))}
    if not runs:
        return
    args = next(iter(runs.values()))["args"]
    results = {name: run["result"] for name, run in runs.items()}
    (out / "results.md").write_text(markdown(args, results))
    plot(args, results, out / "t_sweep.png")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    p.add_argument("--n-train", type=int, default=50000)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--Ts", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--epsilons", type=float, nargs="+", default=[0.025, 0.05, 0.1])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--n-attack", type=int, default=1000)
    p.add_argument("--n-sweep", type=int, default=1000)
    p.add_argument("--n-strong", type=int, default=1000)
    p.add_argument("--T-att", type=int, nargs="+", default=[0, 1, 4, 8])
    p.add_argument("--aa-epsilons", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--aa-steps", type=int, default=50)
    p.add_argument("--aa-targets", type=int, default=3)
    p.add_argument("--aa-queries", type=int, default=500)
    p.add_argument("--time-budget", type=float, default=7200,
                   help="seconds after which the remaining strong-evaluation stages are skipped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models-dir", default="benchmarks/results/models")
    p.add_argument("--out", default="benchmarks/results/sca")
    p.add_argument("--resume", action="store_true",
                   help="keep the saved clean, protocol and sweep results; redo the strong "
                   "evaluation (after an interrupted run)")
    p.add_argument("--report-only", action="store_true",
                   help="only rebuild results.md and t_sweep.png from the JSON files in --out")
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        write_report(out)
        return
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    macs = {str(T): sca_macs(784, args.width, T, "auto", batch=256) for T in [0] + args.Ts}
    for dataset in args.datasets:
        r = {}

        def save(dataset=dataset, r=r):
            run = {"args": vars(args), "paper_claim": PAPER_CLAIM, "macs_per_sample": macs,
                   "elapsed_seconds": time.time() - START, "result": r}
            (out / f"{dataset}.results.json").write_text(json.dumps(run, indent=1))
            write_report(out)

        saved = out / f"{dataset}.results.json"
        if args.resume and saved.exists():
            r.update(json.loads(saved.read_text())["result"])
            r.pop("strong", None)
            state = resume_dataset(args, dataset, r, save)
        else:
            state = run_dataset(args, dataset, r, save)
        strong_evaluation(args, dataset, r, save, *state)
    log("done")


if __name__ == "__main__":
    main()
