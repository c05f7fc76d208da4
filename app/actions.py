"""Menus, toolbar and shortcuts of the main window (the full table is in docs/studio.md).

Tools (SuperSplat's keys where they do not clash): V pick, R rectangle,
L lasso, P polygon, B brush ([ / ] brush size), O volume, T move, Y rotate,
U scale. Ctrl+O open, Ctrl+Shift+O open folder, Ctrl+S / Ctrl+Shift+S save
project (as), Ctrl+E / Ctrl+Shift+E export edited scene / selection,
Ctrl+Z / Ctrl+Shift+Z undo / redo, Delete delete selection, Ctrl+D
duplicate, C recolour, Ctrl+G new segment from the selection, Ctrl+A /
Esc / Ctrl+I select all / none / invert, Ctrl+= / Ctrl+- grow / shrink,
F frame selection, H hide, Shift+H isolate, Alt+H show all, 1-5 view modes,
Ctrl+L highlight (dim the rest), G fly mode, [ / ] previous / next camera.
An action that cannot apply (nothing selected, no model, no features) is
disabled, so its shortcut does nothing.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QInputDialog

if TYPE_CHECKING:
    from app.main_window import MainWindow

MODE_LABELS = {"rgb": "RGB", "segmentation": "Segmentation", "overlay": "RGB + segmentation",
               "depth": "Depth", "features": "Feature PCA"}
TOOL_LABELS = {"pick": ("Pick", "V"), "rect": ("Rect", "R"), "lasso": ("Lasso", "L"),
               "polygon": ("Polygon", "P"), "brush": ("Brush", "B"), "volume": ("Volume", "O"),
               "move": ("Move", "T"), "rotate": ("Rotate", "Y"), "scale": ("Scale", "U")}


class WindowActions:
    """Builds and owns the QActions; refreshes the dynamic menus."""

    def __init__(self, win: "MainWindow") -> None:
        self.win = win
        self.camera_index = 0
        doc = win.doc
        bar = win.menuBar()
        self.file_menu = bar.addMenu("&File")
        self._add(self.file_menu, "&Open…", win.open_dialog, QKeySequence.Open)
        self._add(self.file_menu, "Open &folder…", win.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = self.file_menu.addMenu("Open &recent")
        self.save = self._add(self.file_menu, "&Save project", lambda: win.projects.save(), QKeySequence.Save)
        self.save_as = self._add(self.file_menu, "Save project &as…", lambda: win.projects.save(ask=True),
                                 "Ctrl+Shift+S")
        self.export = self._add(self.file_menu, "&Export edited scene…", win.export_dialog, "Ctrl+E")
        self.export_selected = self._add(self.file_menu, "Export &selection…", partial(win.export_dialog, True),
                                         "Ctrl+Shift+E")
        self.file_menu.addSeparator()
        self._add(self.file_menu, "&Quit", win.close, QKeySequence.Quit)

        edit = bar.addMenu("&Edit")
        self.undo = self._add(edit, "&Undo", lambda: doc.undo(), QKeySequence.Undo)
        self.redo = self._add(edit, "&Redo", lambda: doc.redo(), "Ctrl+Shift+Z")
        edit.addSeparator()
        self.delete = self._add(edit, "&Delete selection", win.delete_selection, QKeySequence.Delete)
        self.delete.setIconText("Delete")
        self.duplicate = self._add(edit, "D&uplicate selection", lambda: win.editor.duplicate(), "Ctrl+D")
        self.recolor = self._add(edit, "Re&colour selection…", lambda: win.properties_panel.pick_color(), "C")
        self.new_segment = self._add(edit, "&New segment from selection…", self._new_segment, "Ctrl+G")
        edit.addSeparator()
        self.select_all = self._add(edit, "Select &all", doc.select_all, QKeySequence.SelectAll)
        self.select_none = self._add(edit, "Select &none", self._escape, "Esc")
        self.invert = self._add(edit, "&Invert selection", doc.invert_selection, "Ctrl+I")
        self.grow = self._add(edit, "&Grow selection", lambda: win.selection_panel.grow(True), "Ctrl+=")
        self.shrink = self._add(edit, "S&hrink selection", lambda: win.selection_panel.grow(False), "Ctrl+-")

        tools_menu = bar.addMenu("&Tools")
        self.tool_group = QActionGroup(win)
        self.tool_actions = {}
        for tool, (label, key) in TOOL_LABELS.items():
            act = self._add(tools_menu, label, partial(win.tools.set_tool, tool), key, checkable=True)
            act.setToolTip(f"{label} ({key})")
            self.tool_group.addAction(act)
            self.tool_actions[tool] = act
        self.tool_actions["pick"].setChecked(True)
        win.tools.tool_changed.connect(lambda t: self.tool_actions[t].setChecked(True))

        view = bar.addMenu("&View")
        self.mode_group = QActionGroup(win)
        self.mode_actions = {}
        for i, (mode, label) in enumerate(MODE_LABELS.items(), start=1):
            act = self._add(view, label, partial(win.set_mode, mode), str(i), checkable=True)
            self.mode_group.addAction(act)
            self.mode_actions[mode] = act
        self.mode_actions["rgb"].setChecked(True)
        self.mode_actions["features"].setToolTip("needs per-Gaussian feature_* / feat_* properties in the model")
        self.highlight = self._add(view, "Highlight selection (dim the rest)", self._toggle_highlight, "Ctrl+L",
                                   checkable=True)
        self.highlight.setIconText("Highlight")
        view.addSeparator()
        self.frame = self._add(view, "&Frame selection", win.frame_selection, "F")
        self.hide = self._add(view, "&Hide selection", win.hide_selection, "H")
        self.isolate = self._add(view, "&Isolate selection", lambda: win.editor.isolate(), "Shift+H")
        self.show_all = self._add(view, "Show all", win.show_all, "Alt+H")
        self.reset = self._add(view, "Reset view", win.reset_view, "Home")
        self.fly = self._add(view, "Fly mode (WASD)", self._toggle_fly, "G", checkable=True)
        self.reduce = self._add(view, "Reduced resolution while moving", self._toggle_reduce, checkable=True)
        self.reduce.setChecked(True)
        self.cameras_menu = view.addMenu("Training &cameras")
        self._add(view, "Previous camera (brush: smaller)", partial(self._step_camera, -1), "[")
        self._add(view, "Next camera (brush: larger)", partial(self._step_camera, 1), "]")
        panels = view.addMenu("&Panels")
        for dock in (win.segments_panel, win.selection_panel, win.properties_panel, win.log_dock):
            panels.addAction(dock.toggleViewAction())

        self.jobs_menu = bar.addMenu("&Jobs")
        self._add(self.jobs_menu, "&Build Gaussians from the scene…", self._build)
        self._add(self.jobs_menu, "&Segment the run…", self._segment)

        tools = win.addToolBar("Main")
        tools.setObjectName("main_toolbar")
        for act in (self.undo, self.redo):
            tools.addAction(act)
        tools.addSeparator()
        for name in ("pick", "rect", "lasso", "polygon", "brush", "volume"):
            tools.addAction(self.tool_actions[name])
        tools.addSeparator()
        for name in ("move", "rotate", "scale"):
            tools.addAction(self.tool_actions[name])
        tools.addSeparator()
        tools.addAction(self.delete)
        tools.addSeparator()
        self.mode_box = QComboBox()
        self.mode_box.setToolTip("view mode (1-5)")
        for mode, label in MODE_LABELS.items():
            self.mode_box.addItem(label, mode)
        self.mode_box.activated.connect(lambda i: win.set_mode(self.mode_box.itemData(i)))
        tools.addWidget(self.mode_box)
        tools.addAction(self.highlight)
        for sig in (doc.history_changed, doc.model_changed, doc.selection_changed, doc.segments_changed):
            sig.connect(self.refresh_enabled)
        self.refresh_recent()
        self.set_features_available(False)
        self.refresh_enabled()

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
        item = self.mode_box.model().item(list(MODE_LABELS).index("features"))
        item.setEnabled(available)
        if not available and self.win.canvas.mode == "features":
            self.mode_actions["rgb"].trigger()

    def show_mode(self, mode: str) -> None:
        """Reflect a mode set from code in the menu and the toolbar's mode box."""
        act = self.mode_actions.get(mode)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        self.mode_box.setCurrentIndex(list(MODE_LABELS).index(mode))

    def refresh_enabled(self, *_args) -> None:
        """Enable exactly the actions that can apply now."""
        doc = self.win.doc
        is_open = doc.is_open
        editable = is_open and bool(len(doc.editable_rows()))
        selected = doc.has_selection
        e = doc.edits
        self.undo.setEnabled(e is not None and e.can_undo)
        self.redo.setEnabled(e is not None and e.can_redo)
        for act in (self.save, self.save_as, self.export, self.select_all, self.invert, self.frame,
                    self.show_all, self.reset, *self.tool_actions.values()):
            act.setEnabled(is_open)
        for act in (self.delete, self.duplicate, self.recolor, self.new_segment):
            act.setEnabled(editable)
        for act in (self.hide, self.isolate, self.grow, self.shrink, self.export_selected):
            act.setEnabled(selected)
        for mode, act in self.mode_actions.items():
            if mode != "features":
                act.setEnabled(is_open)

    def _escape(self) -> None:
        """Esc: drop the shape being drawn, else select none."""
        if not self.win.tools.cancel():
            self.win.doc.select_none()

    def _new_segment(self) -> None:
        name, ok = QInputDialog.getText(self.win, "New segment", "Name of the new segment")
        if ok:
            self.win.editor.assign(None, name.strip() or None)

    # ------------------------------------------------------------ slots
    def _snap(self, index: int) -> None:
        self.camera_index = index
        self.win.snap_to_camera(index)

    def _step_camera(self, step: int) -> None:
        if self.win.tools.tool == "brush":  # SuperSplat's brush-size keys
            self.win.tools.resize_brush(1.25 if step > 0 else 0.8)
            self.win.selection_panel.brush.setValue(self.win.tools.brush_radius)
            return
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
