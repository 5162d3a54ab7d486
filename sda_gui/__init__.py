"""SDA Studio: score-based data assimilation as a desktop application."""

__version__ = "0.1.0"
