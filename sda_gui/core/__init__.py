"""The science of SDA Studio: systems, score models, guidance, samplers, metrics.

Pure torch/numpy. Nothing in this package may import Qt; ``tests/test_boundary.py``
enforces it, so the same code serves the desktop app, the command line and scripts.
"""
