"""`coseg-studio [PATH] [--screenshot OUT.png | --benchmark]`: launch the studio.

PATH is a .ply/.splat, a run folder or a scene folder; ``random:N`` opens a
seeded random model of N Gaussians (for benchmarks). With ``--screenshot``
the studio renders one frame of PATH and exits; with ``--benchmark`` it prints
viewport FPS, pick latency and startup time (see `app.benchmark`) and exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

_START = time.perf_counter()
log = logging.getLogger("app")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="coseg-studio", description="CoSeg Studio: view, segment and edit 3DGS scenes")
    p.add_argument("path", nargs="?", help=".ply/.splat, run folder, scene folder, or random:N")
    p.add_argument("--screenshot", metavar="OUT.png", help="render one frame to OUT.png and exit")
    p.add_argument("--mode", default="rgb", choices=["rgb", "segmentation", "overlay", "depth", "features"])
    p.add_argument("--camera", type=int, default=None, help="view from training camera N (scene or run)")
    p.add_argument("--size", default=None, help="WxH of the screenshot / benchmark viewport (default 1280x720, "
                                                "or the camera's size with --camera)")
    p.add_argument("--benchmark", action="store_true", help="print viewport FPS and pick latency, then exit")
    p.add_argument("--frames", type=int, default=100, help="frames per benchmark row (default 100)")
    p.add_argument("--upsample", type=int, default=None, metavar="N",
                   help="with --benchmark: replace the opened model by N jittered copies of its Gaussians "
                        "(a trained scene's size distribution at N Gaussians, see app.benchmark)")
    args = p.parse_args(argv)
    for name, value in (("--frames", args.frames), ("--upsample", args.upsample), ("--camera", args.camera)):
        if value is not None and value < (0 if name == "--camera" else 1):
            raise SystemExit(f"coseg-studio: {name} {value}: must be >= {0 if name == '--camera' else 1}")
    if args.path and args.path.startswith("random:"):
        _random_count(args.path)
    return args


def _size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"coseg-studio: --size must look like 1280x720, got {text!r}") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise SystemExit(f"coseg-studio: --size {text}: width and height must be 16..16384 pixels")
    return w, h


def _random_count(path: str) -> int:
    try:
        n = int(path.split(":", 1)[1])
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit(f"coseg-studio: {path}: expected random:N with N >= 1 Gaussians")
    return n


def _open(win, path: str) -> bool:
    if path.startswith("random:"):
        from app.loading import random_model

        win.set_loaded(random_model(_random_count(path)))
        return True
    return win.open_path(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from PySide6.QtWidgets import QApplication, QToolBar

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("CoSeg Studio")
    from app.main_window import MainWindow

    headless = bool(args.screenshot or args.benchmark)
    size = _size(args.size) or (1280, 720)
    win = MainWindow(size=size)
    win.headless = headless
    if headless:
        # The viewport alone, at exactly the requested size.
        for dock in (win.segments_panel, win.selection_panel, win.properties_panel, win.log_dock):
            dock.hide()
        win.menuBar().hide()
        win.statusBar().hide()
        for bar in win.findChildren(QToolBar):
            bar.hide()
        win.canvas.native.setFixedSize(*size)
    elif args.size is None:
        win.fill_screen()
    win.show()
    app.processEvents()
    if args.path and not _open(win, args.path):
        if headless:
            win.close()
            return 1
    if args.upsample and win.doc.is_open:
        from app.benchmark import upsampled

        win.set_loaded(upsampled(win.doc.loaded, args.upsample))
    if args.camera is not None:
        win.snap_to_camera(args.camera)
    win.set_mode(args.mode)
    if args.screenshot:
        return _screenshot(win, app, args, size)
    if args.benchmark:
        from app.benchmark import run_benchmark

        app.processEvents()
        win.canvas.render_image(size)
        print(run_benchmark(win, app, args.frames, time.perf_counter() - _START))
        win.close()
        return 0
    return app.exec()


def _screenshot(win, app, args, size) -> int:
    from coseg.errors import CosegError
    from coseg.io.images import write_png
    from coseg.io.safety import check_output, inputs_of, scene_inputs

    loaded = win.doc.loaded
    protected = inputs_of(None if args.path is None or args.path.startswith("random:") else args.path)
    if loaded is not None and loaded.scene is not None:
        protected = protected | scene_inputs(loaded.scene)
    if args.camera is not None and loaded and loaded.scene and not args.size:
        cam = loaded.scene.cameras[args.camera % len(loaded.scene.cameras)]
        size = (cam.width, cam.height)
    # One synchronous exact sort for this view before the frame is drawn.
    from coseg.sort import depth_order

    try:
        check_output(args.screenshot, protected, "--screenshot", kind="file")  # never over an input
        win.canvas.set_current()
        win.canvas.renderer.set_order(depth_order(win.doc.gaussians.means, win.canvas.camera.viewmat()))
        write_png(Path(args.screenshot), win.canvas.render_image(size))
    except CosegError as e:  # refused, read-only, no space, a folder in the way: one line
        win.show_error("Cannot write the screenshot", str(e))
        win.close()
        return 1
    log.info("wrote %s (%dx%d, %s) %.2f s after start", args.screenshot, size[0], size[1], args.mode,
             time.perf_counter() - _START)
    win.close()
    return 0
