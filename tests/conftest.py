"""Shared pytest fixtures.

GUI tests carry the ``gui`` marker (or use `make_main_window`); they are
skipped cleanly when PySide6/vispy are missing or there is no display (run
them under ``xvfb-run -a``).
"""

from __future__ import annotations

import importlib.util
import os

import pytest


def gui_unavailable_reason() -> str | None:
    """Why GUI tests cannot run here, or None when they can."""
    for mod in ("PySide6", "vispy"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (run under xvfb-run -a)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = gui_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "gui" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def make_main_window(qtbot, monkeypatch, tmp_path):
    """Factory of studio main windows that fails the test on leaked top-level widgets.

    Like napari's ``make_napari_viewer``: every window made is closed at
    teardown, then no visible top-level widget (dialog, window) may remain
    that did not exist before the test. QSettings and autosaves
    (``XDG_CACHE_HOME``) go to `tmp_path`.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(tmp_path / "settings"))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from app.main_window import MainWindow

    before = {id(w) for w in QApplication.topLevelWidgets()}
    windows = []

    def make(size=(320, 240), show=True):
        win = MainWindow(size=size)
        windows.append(win)
        if show:
            win.show()
            qtbot.waitExposed(win)
            win.canvas.native.resize(*size)
            QApplication.processEvents()
        return win

    yield make
    for win in windows:
        win.close()
        win.deleteLater()
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets()
              if id(w) not in before and w.isVisible()]
    assert not leaked, f"widgets left open: {leaked}"
