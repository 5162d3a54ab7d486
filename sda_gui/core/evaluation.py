"""The paper's Lorenz-63 accuracy protocol (Figure 3).

Trajectories of ``L = 65`` states; the x variable observed every 8 states with
σ = 0.05 in normalised units (0.4 physical) — "sparse" — or every state with
σ = 0.25 (2.0 physical) — "dense". For each case a 16384-particle BPF posterior
is the ground truth; SDA samples are scored by W1 to it (raw units, whole
trajectories), and a second BPF run with another seed gives the noise floor.
The median over cases is reported for each model (``k``) and ``C``.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .assimilation import assimilate
from .atomic import atomic_path
from .baselines import bootstrap_particle_filter
from .metrics import w1
from .observation import Observation, every_nth_state_mask, synthesize

__all__ = ["PROTOCOLS", "Case", "make_cases", "bpf_posterior", "run_evaluation", "write_report"]

# name: (observe x every n states, physical std)
PROTOCOLS = {"sparse": (8, 0.4), "dense": (1, 2.0)}


@dataclass
class Case:
    protocol: str
    index: int
    truth: np.ndarray
    observation: Observation


def make_cases(system, n_cases: int = 6, length: int = 65, seed: int = 0, protocols=("sparse", "dense")) -> list[Case]:
    truths = system.simulate(n_cases, length, seed=seed).numpy()
    cases = []
    for p in protocols:
        every, std = PROTOCOLS[p]
        mask = every_nth_state_mask(length, system.state_shape, every, [0])
        for i, truth in enumerate(truths):
            cases.append(Case(p, i, truth, synthesize(truth, mask, std, seed=1000 * seed + i)))
    return cases


def bpf_posterior(system, observation, particles=16384, samples=1024, seed=0, device="cpu"):
    return bootstrap_particle_filter(lambda n, g: system.initial_states(n, g, device),
                                     lambda x, g: system.transition(x, g), observation,
                                     particles, samples, seed=seed, device=device)


def run_evaluation(system, models: dict, corrections=(0, 1, 2), n_cases=6, samples=1024, particles=16384,
                   steps=256, tau=0.25, gamma=1e-2, guidance="sda", device="cpu", seed=0,
                   protocols=("sparse", "dense"), log: Optional[Callable[[str], None]] = None) -> list[dict]:
    """Rows ``{protocol, model, k, C, median_w1, w1s}`` plus ``model="BPF"`` floor rows."""
    log = log or (lambda s: None)
    rows = []
    for protocol in protocols:
        cases = make_cases(system, n_cases, seed=seed, protocols=(protocol,))
        refs, floors = [], []
        for case in cases:
            ref = bpf_posterior(system, case.observation, particles, samples, seed=1 + case.index, device=device)
            other = bpf_posterior(system, case.observation, particles, samples, seed=101 + case.index, device=device)
            refs.append(ref)
            floors.append(w1(ref, other))
        rows.append({"protocol": protocol, "model": "BPF vs BPF", "k": "", "C": "",
                     "median_w1": statistics.median(floors), "w1s": floors})
        log(f"{protocol}: BPF vs BPF median W1 {statistics.median(floors):.2f}")
        for name, model in models.items():
            for c in corrections:
                scores = []
                for case, ref in zip(cases, refs):
                    smp = assimilate(model, case.observation, samples, steps=steps, corrections=c, guidance=guidance,
                                     tau=tau, gamma=gamma, device=device, seed=seed + case.index)
                    scores.append(w1(smp, ref))
                med = statistics.median(scores)
                rows.append({"protocol": protocol, "model": name, "k": model.k, "C": c, "median_w1": med, "w1s": scores})
                log(f"{protocol}: {name} (k={model.k}) C={c}: median W1 {med:.2f}  cases {['%.1f' % s for s in scores]}")
    return rows


def write_report(rows: list[dict], out_dir, title: str = "Lorenz-63 accuracy (W1 to a BPF posterior)") -> dict:
    """Writes ``evaluation.md``, ``evaluation.csv`` and ``evaluation.png``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "evaluation.md", "csv": out / "evaluation.csv", "png": out / "evaluation.png"}
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["protocol", "model", "k", "C", "median_w1", "w1_per_case"])
        for r in rows:
            writer.writerow([r["protocol"], r["model"], r["k"], r["C"], f"{r['median_w1']:.3f}",
                             " ".join(f"{v:.3f}" for v in r["w1s"])])
    lines = [f"# {title}", "", "| protocol | model | k | C | median W1 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['protocol']} | {r['model']} | {r['k']} | {r['C']} | {r['median_w1']:.2f} |" for r in rows]
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocols = list(dict.fromkeys(r["protocol"] for r in rows))
    fig, axes = plt.subplots(1, len(protocols), figsize=(5 * len(protocols), 4), squeeze=False)
    for ax, p in zip(axes[0], protocols):
        prow = [r for r in rows if r["protocol"] == p]
        for name in dict.fromkeys(r["model"] for r in prow if r["model"] != "BPF vs BPF"):
            mr = [r for r in prow if r["model"] == name]
            ax.plot([r["C"] for r in mr], [r["median_w1"] for r in mr], "o-", label=f"{name} (k={mr[0]['k']})")
        floor = [r for r in prow if r["model"] == "BPF vs BPF"]
        if floor:
            ax.axhline(floor[0]["median_w1"], color="k", ls="--", label="BPF vs BPF")
        every, std = PROTOCOLS.get(p, ("?", "?"))
        ax.set_title(f"{p}: x every {every} states, σ={std}")
        ax.set_xticks(sorted({r["C"] for r in prow if r["C"] != ""}))
        ax.set_xlabel("Langevin corrections C")
        ax.set_ylabel("median W1 to BPF posterior")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_path(paths["png"]) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return paths
