"""Assimilation methods behind one interface (``base.Method``), found by name in ``registry``.

SDA (``sda``) and the classical methods of the field — ensemble Kalman filters and
smoothers, LETKF, 4D-Var and particle filters — take the same problem and return
members shaped like SDA's samples. ``run_method`` is the one entry point.
"""

from .base import Cancelled, Method, MethodError, MethodResult, RunContext, settings_from
from .registry import METHODS, get_method, method_names, register_method, run_method

__all__ = ["Cancelled", "Method", "MethodError", "MethodResult", "RunContext", "settings_from",
           "METHODS", "get_method", "method_names", "register_method", "run_method"]
