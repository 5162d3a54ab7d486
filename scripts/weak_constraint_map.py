"""How much model error SDA's posterior carries: weak-constraint MAP trajectories on the benchmark rows.

A diagnostic for docs/benchmarks.md ("Lorenz-96 dense: SDA against weak-constraint smoothing"), not a
data-assimilation method of the app: it starts every minimisation at the truth, which no method may
know, so that the minimum found is the mode nearest the truth rather than a local one. On one window
of ``bench_classical``'s rows (the same truths and observations) it minimises over the whole trajectory

    J(x) = ½ Σ_i ‖(y_i − x_i) / σ‖²_observed + ½ Σ_i ‖x_{i+1} − f(x_i)‖² / q²

(weak constraint: a model error of std q per step, no background term) for each q, and, for q = 0,
the strong-constraint cost over the first state alone (x_{i+1} = f(x_i) exactly). With σ = 1 on every
entry the posterior is close to Gaussian, so the mode's error is close to the posterior mean's: the
RMSE a smoother allowing that model error would reach. Printed per window: the RMSE (DAPPER's, per
state then averaged), that of the middle states 14–16, and the mode's RMS one-step residual.

    python scripts/weak_constraint_map.py --problem l96-dense-32 --windows 4 --q 0,0.03,0.05,0.1
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from sda_gui.bench_classical import PROBLEMS, make_problem


def strong_map(system, truth, y, mask):
    x1 = torch.tensor(truth[0]).requires_grad_(True)

    def trajectory(x1):
        xs = [x1]
        for _ in range(len(truth) - 1):
            xs.append(system.transition(xs[-1][None])[0])
        return torch.stack(xs)

    opt = torch.optim.LBFGS([x1], max_iter=2000, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        cost = 0.5 * (((trajectory(x1) - y) ** 2) * mask).sum()
        cost.backward()
        return cost

    opt.step(closure)
    return trajectory(x1).detach()


def weak_map(system, truth, y, mask, q: float):
    x = torch.tensor(truth).requires_grad_(True)
    opt = torch.optim.LBFGS([x], max_iter=5000, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        residual = x[1:] - system.transition(x[:-1])
        cost = 0.5 * (((x - y) ** 2) * mask).sum() + 0.5 * (residual ** 2).sum() / q ** 2
        cost.backward()
        return cost

    opt.step(closure)
    return x.detach()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="l96-dense-32", choices=sorted(PROBLEMS))
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--q", default="0,0.03,0.05,0.1", help="comma-separated model error stds; 0: strong")
    opts = parser.parse_args(argv)
    qs = [float(v) for v in opts.q.split(",")]
    torch.set_num_threads(1)
    means = {q: [] for q in qs}
    for w in range(opts.windows):
        system, truth, obs = make_problem(PROBLEMS[opts.problem], w)
        y = torch.tensor(obs.values)
        # the observed entries weighted by 1/σ²
        mask = torch.tensor(obs.mask, dtype=torch.float64) / torch.as_tensor(obs.std, dtype=torch.float64) ** 2
        cells = []
        for q in qs:
            x = strong_map(system, truth, y, mask) if q == 0 else weak_map(system, truth, y, mask, q)
            per_state = np.sqrt(((x.numpy() - truth) ** 2).mean(-1))
            residual = float(torch.sqrt(((x[1:] - system.transition(x[:-1])) ** 2).mean()))
            means[q].append(per_state.mean())
            cells.append(f"q={q:g}: {per_state.mean():.3f} (middle {per_state[14:17].mean():.3f}, "
                         f"residual {residual:.3f})")
        print(f"window {w}: " + " | ".join(cells), flush=True)
    print("mean over windows: " + " | ".join(f"q={q:g}: {np.mean(v):.3f}" for q, v in means.items()))


if __name__ == "__main__":
    main()
