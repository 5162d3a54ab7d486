"""Package data shipped inside the wheel: the trained score models in ``models/``.

Read through ``importlib.resources`` (``sda_gui.core.diffusion.checkpoint.RESOURCES``), so an
installed, non-editable package finds them exactly as a source checkout does.
"""
