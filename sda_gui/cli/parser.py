"""The argument parser of every subcommand: options, help texts and defaults, nothing else.

Imports nothing heavy (``--help`` must not load torch): the built-in systems and
methods are listed by name here, and ``validate`` checks the names given against
the live registries, which may hold more.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "SYSTEM_NAMES", "METHOD_NAMES", "BENCH_WHAT", "OneLineParser"]

SYSTEM_NAMES = ("lorenz63", "lorenz96", "kolmogorov")
METHOD_NAMES = ("sda", "enkf", "letkf", "enks", "ienks", "4dvar", "wc4dvar", "bpf", "rpf")
GUIDANCES = ("sda", "dps", "mmps")
#: the score folds (core.diffusion.local_score.FOLDS; not imported: it would import torch for --help)
FOLDS = ("centre", "mean", "interior")
BENCH_WHAT = ("assimilate", "train", "solver", "case", "gui", "threads", "classical")
PROG = "python -m sda_gui"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error: …`` line (exit 2), as every other bad input."""

    def error(self, message):
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: …)`` only where there is a default worth showing."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _common(p, device: bool = True, seed: bool = True):
    g = p.add_argument_group("run")
    if device:
        g.add_argument("--device", default="auto", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    if seed:
        g.add_argument("--seed", type=int, default=0, help="random seed (0 ≤ seed < 2^63); the same seed gives the "
                                                         "same result on the same device")
    g.add_argument("--threads", default="auto",
                   help="CPU threads for torch (a number ≥ 1, or auto: the cores left idle by other work, so a busy "
                        "machine runs with 1, never slower than one thread)")
    talk = g.add_mutually_exclusive_group()
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="more progress lines, the settings used, and a traceback for an unexpected error")
    talk.add_argument("-q", "--quiet", action="store_true",
                      help="no progress on stderr (errors and the result line on stdout still show)")


def _system(p, required: bool = True, what: str = "the dynamical system"):
    p.add_argument("--system", required=required, metavar="NAME",
                   help=f"{what}: one of {', '.join(SYSTEM_NAMES)}, or a system of a --system-file or of an "
                        f"installed package (entry points sda_gui.systems)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="system parameter (repeatable), e.g. forcing=8, dt=0.05, burn_in=256, resolution=128")
    p.add_argument("--system-file", action="append", metavar="PATH.py",
                   help="a Python file defining DynamicalSystem subclasses (and Operator subclasses for "
                        "plugin:NAME); its systems join the built-in ones by their name (repeatable)")


def _operator_file(p):
    p.add_argument("--operator-file", action="append", metavar="PATH.py",
                   help="a Python file defining Operator subclasses with a name, observed as plugin:NAME "
                        "(a --system-file's operators are loaded too; repeatable)")


def _sda_options(p):
    g = p.add_argument_group("sda options (when not given: sda's defaults for the system)")
    g.add_argument("--steps", type=int, help="reverse-diffusion steps (≥ 1)")
    g.add_argument("--corrections", type=int, help="Langevin corrections C per step (≥ 0)")
    g.add_argument("--final-corrections", type=int,
                   help="Langevin corrections of the steps that end below t = 0.125 (≥ 0; default: C)")
    g.add_argument("--guidance", help=f"likelihood guidance: {', '.join(GUIDANCES)}")
    g.add_argument("--tau", type=float, help="Langevin step size τ (> 0)")
    g.add_argument("--gamma", type=float, help="SDA guidance's variance inflation γ (≥ 0)")
    g.add_argument("--dynamics-std", type=float,
                   help="also guide by the system's own transition, with this model error per step "
                        "(≥ 0, 0: off; SDA guidance, a system with dynamics; default: 0.05 on lorenz96, "
                        "off elsewhere)")
    g.add_argument("--dynamics-gamma", type=float,
                   help="variance inflation G of the dynamics term at 32-64 steps (≥ 0; default 0.3); "
                        "fewer steps loosen it, more steps firm it up, to G/6 from 256 steps on")
    g.add_argument("--fold",
                   help=f"{', '.join(FOLDS)}: a state's noise estimate from the window centred on it, the mean over "
                        "every window holding it, or over those holding it away from their edges (default: centre)")
    g.add_argument("--refine-iterations", type=int,
                   help="then minimise each sample's weak-constraint 4D-Var cost from it, with perturbed "
                        "observations and model steps: this many L-BFGS iterations of 10 per stage (≥ 0; "
                        "default 0: off; a system with dynamics)")
    g.add_argument("--refine-model-error", type=float,
                   help="model error std q per step the refinement allows, on top of the system's own transition "
                        "noise (≥ 0, > 0 for a deterministic system; default 0.005 on Lorenz-96, else 0.02)")
    g.add_argument("--refine-stages", type=int,
                   help="stages of the refinement's continuation in q, each halving it down to "
                        "--refine-model-error (≥ 1; default 4 on Lorenz-96, else 1)")


def _method_options(p):
    g = p.add_argument_group("classical method options (when not given: the method's defaults for the system; "
                             "an option the method lacks is refused)")
    g.add_argument("--inflation", type=float, help="multiplicative covariance inflation (EnKF, LETKF, EnKS, iEnKS)")
    g.add_argument("--localization", type=float,
                   help="LETKF localisation radius in grid points (≤ 0: none)")
    g.add_argument("--iterations", type=int, help="iterations of iEnKS / 4D-Var / weak-constraint 4D-Var (≥ 1)")
    g.add_argument("--model-error", type=float,
                   help="weak-constraint 4D-Var's model error std q per step, on top of the system's own "
                        "transition noise (≥ 0, > 0 for a deterministic system; default 0.005 on Lorenz-96, "
                        "reached in 4 stages that halve it, else 0.02)")
    g.add_argument("--particles", type=int, help="particles of the particle filters (≥ 1)")


def _simulate(sub):
    s = sub.add_parser("simulate", help="simulate trajectories of a system into an HDF5 file",
                       description="Simulate trajectories (after the system's burn-in) into an HDF5 dataset.")
    _system(s)
    s.add_argument("--trajectories", type=int, default=16, help="number of trajectories (≥ 1)")
    s.add_argument("--length", type=int, default=1024, help="states per trajectory (≥ 1)")
    s.add_argument("--out", required=True, help="output file (.h5, .hdf5 or netCDF .nc); replaced atomically")
    _common(s)
    return s


def _observe(sub):
    o = sub.add_parser("observe", help="make an observation file from a truth file and a pattern rule",
                       description="Noisy observations y = A(x)[mask] + std·ε of one trajectory of a truth file: "
                                   "every n-th state, every m-th variable (grid point along each spatial axis of a "
                                   "field), a random density, through an operator.")
    o.add_argument("--truth", required=True, help="trajectory file (.h5/.nc/.npz/.npy) as simulate writes")
    o.add_argument("--variable", metavar="NAME", help="the array or netCDF variable of --truth, when it holds several")
    o.add_argument("--trajectory", type=int, default=0, help="which trajectory of the file (≥ 0)")
    o.add_argument("--every-states", type=int, default=1, help="observe every n-th state (≥ 1)")
    o.add_argument("--every-variables", type=int, default=1,
                   help="observe every m-th variable of a vector state, every m-th grid point of a field (≥ 1)")
    o.add_argument("--density", type=float, help="keep each selected entry with this probability (0 < d ≤ 1)")
    o.add_argument("--operator", help="observation operator: stages joined by +, among identity, coarsen:N, "
                                      "subsample:N, vorticity, saturate, plugin:NAME (e.g. vorticity+saturate)")
    o.add_argument("--std", type=float, default=0.1, help="observation noise standard deviation (> 0)")
    o.add_argument("--system-file", action="append", metavar="PATH.py",
                   help="a plugin file whose system the truth belongs to (loaded as by --system-file elsewhere)")
    _operator_file(o)
    o.add_argument("--out", required=True, help="observation file (.npz, .h5 or netCDF .nc); replaced atomically")
    _common(o)
    return o


def _train(sub):
    t = sub.add_parser("train", help="train a local score model",
                       description="Train a local score model on a trajectory file or on freshly simulated data.")
    _system(t, required=False, what="the system (or taken from --data)")
    t.add_argument("--data", help="trajectory file (.h5/.nc/.npz/.npy); simulated when absent. A file that names "
                                  "no system (and no --system) becomes a data system: its own name, variables, Δt "
                                  "and a normalisation computed from the data")
    t.add_argument("--variable", metavar="NAME",
                   help="the array or netCDF variable of --data to train on when it holds several (netCDF: several "
                        "of the same dimensions stack as channels, e.g. u,v)")
    t.add_argument("--dt", type=float, help="time between states of a data system (default: from the file's time "
                                            "coordinate, else 1)")
    t.add_argument("--trajectories", type=int, default=1024, help="simulated training trajectories (≥ 1)")
    t.add_argument("--length", type=int, default=1024, help="states per simulated trajectory (≥ 2k+1)")
    t.add_argument("--data-seed", type=int, default=0, help="seed of the simulated training data")
    n = t.add_argument_group("network (default: the architecture that suits the system)")
    n.add_argument("--k", type=int, default=2, help="window half-width: windows of 2k+1 states (≥ 1)")
    n.add_argument("--arch", choices=["resmlp", "ringconv", "unet"],
                   help="network: resmlp (any small state), ringconv (a 1-D ring), unet (2-D fields)")
    n.add_argument("--precondition", action=argparse.BooleanOptionalAction, default=None,
                   help="the network predicts the clean window (EDM scalings); default: on for the U-Net")
    n.add_argument("--width", type=int, help="hidden width (resmlp, ringconv; ≥ 1)")
    n.add_argument("--depth", type=int, help="residual blocks (resmlp, ringconv; ≥ 1)")
    n.add_argument("--kernel", type=int, help="convolution kernel (ringconv, unet; odd, ≥ 1)")
    n.add_argument("--blocks", type=int, help="residual blocks per level (unet; ≥ 1)")
    n.add_argument("--emb", type=int, help="time-embedding size (even, ≥ 2)")
    n.add_argument("--channels", help="U-Net channels per level, e.g. 64,128,256")
    o = t.add_argument_group("optimisation")
    o.add_argument("--steps", type=int, default=20000, help="training steps (≥ 1)")
    o.add_argument("--batch-size", type=int, default=256, help="windows per step (≥ 1)")
    o.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (> 0)")
    o.add_argument("--weight-decay", type=float, default=1e-3, help="AdamW weight decay (≥ 0)")
    o.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="save the exponential moving average of the weights with this decay, e.g. 0.999 "
                        "(0 ≤ DECAY < 1; 0: the last weights)")
    o.add_argument("--val-fraction", type=float, default=0.1, help="share of trajectories held out (0 < f < 1)")
    o.add_argument("--val-every", type=int, default=1000, help="validate every n steps (≥ 1)")
    o.add_argument("--amp", action="store_true", help="bf16 mixed precision (CUDA)")
    o.add_argument("--compile", action="store_true", help="torch.compile the network")
    o.add_argument("--time-limit", type=float, help="stop after this many seconds (> 0; the model so far is saved)")
    f = t.add_argument_group("files")
    f.add_argument("--save-every", type=int, default=0, help="write a resumable checkpoint every n steps (0: never)")
    f.add_argument("--resume", help="resume from a resumable checkpoint (may be --out itself)")
    f.add_argument("--init", help="start from the weights of this model (same system; its window and "
                                  "architecture are used): fine-tuning with a fresh optimiser")
    f.add_argument("--half", action="store_true",
                   help="store the final weights in float16 (a run stopped by --time-limit keeps its resumable "
                        "file at --out and writes the float16 copy to OUT-half.pt)")
    f.add_argument("--out", required=True, help="model file (.pt or .pth); replaced atomically")
    _common(t)
    return t


def _assimilate(sub):
    a = sub.add_parser("assimilate", help="posterior trajectory samples given observations",
                       description="Posterior members of a trajectory given observations, by SDA or a classical "
                                   "method; every method writes the same file: samples (N, L, *state) and settings.")
    _system(a, what="the system observed")
    a.add_argument("--observations", required=True, help="OBS.npz, .h5 or .nc (mask, values, std[, operator])")
    _operator_file(a)
    a.add_argument("--method", default="sda", help=f"assimilation method: {', '.join(METHOD_NAMES)}")
    a.add_argument("--samples", type=int, required=True,
                   help="posterior members: samples (sda), the ensemble size (Kalman methods, 4D-Var) or draws from "
                        "the particles (≥ 1)")
    a.add_argument("--model", help="score model checkpoint, sda only (default: the shipped model for the system)")
    _sda_options(a)
    _method_options(a)
    a.add_argument("--out", required=True, help="output file (.npz, .h5, .hdf5 or netCDF .nc: samples with a "
                                                "sample dimension); replaced atomically")
    _common(a)
    return a


def _compare(sub):
    c = sub.add_parser("compare", help="several methods on one problem: a table, a CSV and a figure",
                       description="Run several methods one after another on the same observations and score each "
                                   "against the truth (RMSE, spread, CRPS, coverage, rank histograms).")
    _system(c, what="the system observed")
    c.add_argument("--observations", required=True, help="OBS.npz, .h5 or .nc (mask, values, std[, operator])")
    _operator_file(c)
    c.add_argument("--truth", required=True, help="the true trajectory: a file as simulate writes ((L, *s) or "
                                                  "(1, L, *s)), or an .npz with a 'truth' array")
    c.add_argument("--methods", default="sda,letkf,ienks,4dvar,wc4dvar",
                   help=f"comma-separated methods among {', '.join(METHOD_NAMES)}")
    c.add_argument("--samples", type=int, default=32, help="members per method (≥ 1)")
    c.add_argument("--model", help="score model checkpoint for sda (default: the shipped model)")
    _sda_options(c)
    _method_options(c)
    c.add_argument("--out-dir", required=True, help="folder for compare.md, compare.csv and compare.png")
    _common(c)
    return c


def _evaluate(sub):
    e = sub.add_parser("evaluate", help="the paper's Lorenz-63 accuracy protocol (Figure 3)",
                       description="W1 of SDA posteriors to a particle-filter posterior, on the paper's Lorenz-63 "
                                   "cases.")
    e.add_argument("--system", default="lorenz63", help="lorenz63 (the protocol is defined for it only)")
    e.add_argument("--system-file", action="append", metavar="PATH.py",
                   help="a Python file defining DynamicalSystem subclasses, loaded first as elsewhere "
                        "(the protocol still runs on lorenz63 only; repeatable)")
    e.add_argument("--models", nargs="*", help="checkpoints to compare (default: the shipped model)")
    e.add_argument("--corrections", default="0,1,2", help="comma-separated Langevin corrections C (each ≥ 0)")
    e.add_argument("--cases", type=int, default=6, help="observed trajectories per protocol (≥ 1)")
    e.add_argument("--samples", type=int, default=1024, help="posterior samples per case (≥ 1)")
    e.add_argument("--particles", type=int, default=16384, help="particles of the reference filter (≥ 1)")
    e.add_argument("--steps", type=int, default=256, help="reverse-diffusion steps (≥ 1)")
    e.add_argument("--tau", type=float, default=0.25, help="Langevin step size τ (> 0)")
    e.add_argument("--gamma", type=float, default=1e-2, help="SDA guidance's variance inflation γ (≥ 0)")
    e.add_argument("--guidance", default="sda", help=f"likelihood guidance: {', '.join(GUIDANCES)}")
    e.add_argument("--protocols", default="sparse,dense", help="comma-separated protocols among sparse, dense")
    e.add_argument("--out-dir", default="out/evaluation", help="folder for evaluation.md, .csv and .png")
    _common(e)
    return e


def _bench(sub):
    b = sub.add_parser("bench", help="speed benchmarks (print numbers)",
                       description="Benchmarks: they print numbers and assert nothing.")
    b.add_argument("what", choices=BENCH_WHAT,
                   help="assimilate: sampling time per C; train: steps/s; solver: Kolmogorov solver speed; case: the "
                        "paper's Kolmogorov case; gui: animation and stalls; threads: seconds per step for 1..cores "
                        "threads; classical: our EnKF/LETKF against DAPPER")
    b.add_argument("--system", default="lorenz63", help=f"system: one of {', '.join(SYSTEM_NAMES)}, or a "
                                                         f"system of a --system-file")
    b.add_argument("--system-file", action="append", metavar="PATH.py",
                   help="a Python file defining DynamicalSystem subclasses; its systems join the built-in "
                        "ones by their name (repeatable)")
    b.add_argument("--model", help="score model checkpoint (default: the shipped model)")
    b.add_argument("--samples", type=int, help="samples (≥ 1; default 1024, case 1, threads 64)")
    b.add_argument("--members", type=int, default=40, help="ensemble members (classical; ≥ 1)")
    b.add_argument("--length", type=int, help="states per trajectory (≥ 1; default 65, classical 128)")
    b.add_argument("--steps", type=int, help="sampler or training steps (≥ 1; default 256, threads 8)")
    b.add_argument("--corrections", help="comma-separated Langevin corrections (default 0,1,2); case and "
                                         "threads take one (default 1)")
    b.add_argument("--guidance", default="sda", help=f"likelihood guidance: {', '.join(GUIDANCES)}")
    b.add_argument("--repeats", type=int, help="repeats, the best is reported (≥ 1; default 1, classical 3)")
    b.add_argument("--resolution", type=int, default=256, help="Kolmogorov simulation grid (solver, case; ≥ 1)")
    b.add_argument("--batch", type=int, default=1, help="trajectories of the solver benchmark (≥ 1)")
    b.add_argument("--frames", type=int, default=600, help="animation frames of the gui benchmark (≥ 1)")
    b.add_argument("--max-threads", type=int, help="threads: the largest count tried (default: the CPU's cores)")
    b.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=True,
                   help="replay each network call as a CUDA graph on CUDA")
    b.add_argument("--amp", action="store_true", help="bf16 autocast of the network on CUDA (case)")
    b.add_argument("--window-split", action=argparse.BooleanOptionalAction, default=True,
                   help="differentiate only the windows of observed states")
    b.add_argument("--fast-paths", action=argparse.BooleanOptionalAction, default=True,
                   help="assimilate: fused network and cache-sized window chunks (off: the plain path, one batch)")
    b.add_argument("--memory-budget", type=float, metavar="MIB",
                   help="assimilate: activation memory of a network call, in MiB (default 2048 on the CPU, half "
                        "the GPU's memory)")
    b.add_argument("--profile", action="store_true", help="assimilate: where one run's CPU time goes, by operator")
    _common(b, seed=False)
    return b


def _lessons(sub):
    l = sub.add_parser("lessons", help="list the built-in lessons (id, title, one line)",
                       description="The classroom lessons shipped with SDA Studio: open one in the app with "
                                   "'python main.py --lesson ID'. --check FILE.toml checks a lesson file of your "
                                   "own and names the line of any problem.")
    l.add_argument("--check", metavar="FILE.toml", help="check this lesson file instead of listing")
    _common(l, device=False, seed=False)
    return l


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="SDA Studio command line. Bad input exits with status 2 and one "
                                             "'error: …' line; progress goes to stderr, the result line to stdout.",
                      formatter_class=_Formatter)
    from sda_gui import __version__   # a plain string in the package's __init__: loads nothing

    p.add_argument("--version", action="version", version=f"sda-gui {__version__}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           parser_class=OneLineParser)
    for make in (_simulate, _observe, _train, _assimilate, _compare, _evaluate, _bench, _lessons):
        make(sub).formatter_class = _Formatter
    return p
