"""Where the app remembers the last folder and settings.

``SDA_STUDIO_SETTINGS=/path/file.ini`` (or the ``path`` argument) selects an explicit
INI file, which is how tests keep away from the user's own settings.
"""

from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import QSettings

__all__ = ["make_settings", "ENV_VAR"]

ENV_VAR = "SDA_STUDIO_SETTINGS"


def make_settings(path: Optional[str] = None) -> QSettings:
    path = path or os.environ.get(ENV_VAR)
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "SDA Studio", "sda-studio")


def read_value(settings: QSettings, key: str, default, kind=None):
    """``settings.value`` with a type (INI files give strings back) and a fallback on garbage."""
    value = settings.value(key, default)
    kind = kind or type(default)
    try:
        if kind is bool:
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        return kind(value)
    except (TypeError, ValueError):
        return default
