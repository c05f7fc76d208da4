"""Menus, toolbar and shortcuts of the main window.

Shortcuts: Ctrl+O open, Ctrl+Shift+O open folder, Ctrl+S / Ctrl+Shift+S save
project (as), Ctrl+E / Ctrl+Shift+E export edited scene / selected segments,
Ctrl+Z / Ctrl+Shift+Z undo / redo, Delete delete selected segments, Ctrl+D
duplicate, C recolour, F frame selection, H hide selection, Shift+H isolate,
Alt+H show all, Esc select none, Ctrl+A select all, Ctrl+I invert selection,
1-5 view modes, L highlight selection, G fly mode, [ / ] previous / next
training camera.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence

if TYPE_CHECKING:
    from app.main_window import MainWindow

MODE_LABELS = {"rgb": "RGB", "segmentation": "Segmentation", "overlay": "RGB + segmentation",
               "depth": "Depth", "features": "Feature PCA"}


class WindowActions:
    """Builds and owns the QActions; refreshes the dynamic menus."""

    def __init__(self, win: "MainWindow") -> None:
        self.win = win
        self.camera_index = 0
        bar = win.menuBar()
        self.file_menu = bar.addMenu("&File")
        self._add(self.file_menu, "&Open…", win.open_dialog, QKeySequence.Open)
        self._add(self.file_menu, "Open &folder…", win.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = self.file_menu.addMenu("Open &recent")
        self._add(self.file_menu, "&Save project", lambda: win.projects.save(), QKeySequence.Save)
        self._add(self.file_menu, "Save project &as…", lambda: win.projects.save(ask=True), "Ctrl+Shift+S")
        self._add(self.file_menu, "&Export edited scene…", win.export_dialog, "Ctrl+E")
        self._add(self.file_menu, "Export &selected segments…", partial(win.export_dialog, True), "Ctrl+Shift+E")
        self.file_menu.addSeparator()
        self._add(self.file_menu, "&Quit", win.close, QKeySequence.Quit)

        edit = bar.addMenu("&Edit")
        self.undo = self._add(edit, "&Undo", lambda: win.doc.undo(), QKeySequence.Undo)
        self.redo = self._add(edit, "&Redo", lambda: win.doc.redo(), "Ctrl+Shift+Z")
        edit.addSeparator()
        self.delete = self._add(edit, "&Delete selected segments", win.delete_selection, QKeySequence.Delete)
        self.duplicate = self._add(edit, "D&uplicate selected segments", lambda: win.editor.duplicate(), "Ctrl+D")
        self._add(edit, "Re&colour selected segments…", lambda: win.properties_panel.pick_color(), "C")
        edit.addSeparator()
        self._add(edit, "Select &all", win.doc.select_all, QKeySequence.SelectAll)
        self._add(edit, "Select &none", win.doc.select_none, "Esc")
        self._add(edit, "&Invert selection", win.doc.invert_selection, "Ctrl+I")

        view = bar.addMenu("&View")
        self.mode_group = QActionGroup(win)
        self.mode_actions = {}
        for i, (mode, label) in enumerate(MODE_LABELS.items(), start=1):
            act = self._add(view, label, partial(win.set_mode, mode), str(i), checkable=True)
            self.mode_group.addAction(act)
            self.mode_actions[mode] = act
        self.mode_actions["rgb"].setChecked(True)
        self.highlight = self._add(view, "Highlight selection", self._toggle_highlight, "L", checkable=True)
        view.addSeparator()
        self._add(view, "&Frame selection", win.frame_selection, "F")
        self._add(view, "&Hide selection", win.hide_selection, "H")
        self._add(view, "&Isolate selection", lambda: win.editor.isolate(), "Shift+H")
        self._add(view, "Show all", win.show_all, "Alt+H")
        self._add(view, "Reset view", win.reset_view, "Home")
        self.fly = self._add(view, "Fly mode (WASD)", self._toggle_fly, "G", checkable=True)
        self.reduce = self._add(view, "Reduced resolution while moving", self._toggle_reduce, checkable=True)
        self.reduce.setChecked(True)
        self.cameras_menu = view.addMenu("Training &cameras")
        self._add(view, "Previous camera", partial(self._step_camera, -1), "[")
        self._add(view, "Next camera", partial(self._step_camera, 1), "]")

        self.jobs_menu = bar.addMenu("&Jobs")
        self._add(self.jobs_menu, "&Build Gaussians from the scene…", self._build)
        self._add(self.jobs_menu, "&Segment the run…", self._segment)

        tools = win.addToolBar("Main")
        tools.setObjectName("main_toolbar")
        for act in (self.undo, self.redo, self.delete, self.duplicate):
            tools.addAction(act)
        tools.addSeparator()
        for act in self.mode_actions.values():
            tools.addAction(act)
        tools.addAction(self.highlight)
        tools.addAction(self.fly)
        win.doc.history_changed.connect(self._refresh_undo)
        win.doc.model_changed.connect(self._refresh_undo)
        self.refresh_recent()
        self._refresh_undo()

    def _add(self, menu, text, slot, shortcut=None, checkable=False) -> QAction:
        act = QAction(text, self.win)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    # ------------------------------------------------------------ dynamic parts
    def refresh_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.win.recent_files():
            act = self.recent_menu.addAction(path)
            act.triggered.connect(partial(self.win.open_path, path))
        self.recent_menu.setEnabled(bool(self.win.recent_files()))

    def refresh_cameras(self) -> None:
        self.cameras_menu.clear()
        scene = self.win.doc.loaded.scene if self.win.doc.is_open else None
        cams = scene.cameras if scene is not None else []
        for i, cam in enumerate(cams):
            act = self.cameras_menu.addAction(f"{i}: {cam.name} ({cam.split})")
            act.triggered.connect(partial(self._snap, i))
        self.cameras_menu.setEnabled(bool(cams))

    def set_features_available(self, available: bool) -> None:
        self.mode_actions["features"].setEnabled(available)
        if not available and self.win.canvas.mode == "features":
            self.mode_actions["rgb"].trigger()

    def _refresh_undo(self) -> None:
        e = self.win.doc.edits
        self.undo.setEnabled(e is not None and e.can_undo)
        self.redo.setEnabled(e is not None and e.can_redo)

    # ------------------------------------------------------------ slots
    def _snap(self, index: int) -> None:
        self.camera_index = index
        self.win.snap_to_camera(index)

    def _step_camera(self, step: int) -> None:
        self._snap(self.camera_index + step)

    def _toggle_highlight(self) -> None:
        self.win.canvas.highlight = self.highlight.isChecked()
        self.win.canvas.update()

    def _toggle_fly(self) -> None:
        self.win.canvas.fly_mode = self.fly.isChecked()

    def _toggle_reduce(self) -> None:
        self.win.canvas.reduce_while_moving = self.reduce.isChecked()

    def _build(self) -> None:
        from app.jobs import start_build

        start_build(self.win)

    def _segment(self) -> None:
        from app.jobs import start_segment

        start_segment(self.win)


def build_menus(win: "MainWindow") -> WindowActions:
    return WindowActions(win)
