"""SDA Studio: score-based data assimilation as a desktop application, a command line and a script API.

``import sda_gui as sda`` loads nothing heavy; the script API (``sda_gui.api``) is imported on
first use of one of its names::

    system = sda.system("lorenz96")                 # sda.load_system_file("my_model.py") for your own
    truth = sda.simulate(system, n=1, length=33, seed=1)[0]
    obs = sda.observe(truth, every_states=4, every_variables=2, std=1.0, seed=2)
    result = sda.assimilate(system, obs, method="sda", n=16)   # .members, .mean, .spread, .to_xarray()
    sda.scores(result, truth)
"""

__version__ = "0.1.0"

_API = ("system", "load_system_file", "simulate", "observe", "observation_mask", "load_model", "assimilate",
        "scores", "Result")
__all__ = ["__version__", *_API]


def __getattr__(name):
    # PEP 562: the API (and torch with it) loads on first use, so `import sda_gui` and `--help` stay fast
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'sda_gui' has no attribute '{name}'")


def __dir__():
    return sorted(list(globals()) + list(_API))
