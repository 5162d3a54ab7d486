"""SDA Studio: ``python main.py`` opens the desktop app; ``--screenshot FILE.png`` renders it."""

import sys

from sda_gui.app.main_window import run

if __name__ == "__main__":
    sys.exit(run())
