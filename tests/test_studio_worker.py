"""Background jobs: GeneratorWorker signals, stop, pause, failures; the log dock."""

import logging
import threading
import time

import pytest

pytestmark = pytest.mark.gui


def _counting_job(n=1000, delay=0.002, log_to=None):
    """A cooperative generator: honours the stop event and reports it, like coseg's stages."""
    def factory(stop: threading.Event):
        for i in range(1, n + 1):
            if stop.is_set():
                yield {"event": "stopped", "iteration": i - 1, "iterations": n}
                return
            time.sleep(delay)
            if log_to is not None:
                log_to.append(i)
            yield {"event": "step", "iteration": i, "iterations": n, "loss": 1.0 / i, "eta_s": (n - i) * delay}
        yield {"event": "done", "iteration": n, "iterations": n}
    return factory


def test_progress_signals_arrive_and_finish(qtbot):
    from app.workers import GeneratorWorker

    worker = GeneratorWorker(_counting_job(n=5, delay=0.0), name="count", min_interval=0.0)
    records = []
    worker.progress.connect(records.append)
    with qtbot.waitSignal(worker.finished_with, timeout=10_000) as done:
        worker.start()
    worker.wait()
    assert [r["iteration"] for r in records] == [1, 2, 3, 4, 5, 5]
    assert done.args[0]["event"] == "done"


def test_stop_is_honoured_at_the_next_step(qtbot):
    from app.workers import GeneratorWorker

    worker = GeneratorWorker(_counting_job(n=100_000), name="long")
    with qtbot.waitSignal(worker.progress, timeout=10_000):
        worker.start()
    with qtbot.waitSignal(worker.finished_with, timeout=10_000) as done:
        worker.stop()
    worker.wait()
    assert done.args[0]["event"] == "stopped"
    assert done.args[0]["iteration"] < 100_000


def test_pause_holds_the_generator_and_non_cooperative_jobs_are_closed(qtbot):
    from app.workers import GeneratorWorker

    steps = []
    closed = threading.Event()

    def factory(_stop):
        try:
            i = 0
            while True:
                i += 1
                steps.append(i)
                time.sleep(0.001)
                yield {"iteration": i}
        finally:
            closed.set()

    worker = GeneratorWorker(factory, name="endless", cooperative=False)
    with qtbot.waitSignal(worker.progress, timeout=10_000):
        worker.start()
    worker.pause()
    time.sleep(0.05)
    frozen = len(steps)
    time.sleep(0.1)
    assert len(steps) <= frozen + 1
    with qtbot.waitSignal(worker.finished_with, timeout=10_000):
        worker.stop()
    worker.wait()
    assert closed.is_set()


def test_failure_is_one_signal_with_the_message(qtbot):
    from app.workers import GeneratorWorker

    def factory(_stop):
        yield {"iteration": 1}
        raise ValueError("scene.json: bad pose")

    worker = GeneratorWorker(factory, name="build")
    with qtbot.waitSignal(worker.failed, timeout=10_000) as failed:
        worker.start()
    worker.wait()
    assert failed.args[0] == "build failed: scene.json: bad pose"


def test_window_runs_a_job_in_the_log_dock_and_stops_it_on_close(make_main_window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.workers import GeneratorWorker

    win = make_main_window()
    logging.getLogger("coseg.test").info("hello from the engine")
    assert "hello from the engine" in win.log_dock.text.toPlainText()
    worker = GeneratorWorker(_counting_job(n=100_000), name="demo job")
    win.start_job(worker)
    qtbot.waitUntil(lambda: win.log_dock.progress.value() > 2, timeout=10_000)
    assert win.log_dock.progress.maximum() == 100_000
    assert win.log_dock.eta.text().startswith("ETA")
    assert len(win.log_dock.curve.points) > 1
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.No)
    win.close()
    assert win.isVisible() and worker.isRunning()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    win.close()
    assert not worker.isRunning()
    assert worker.last["event"] == "stopped"


def test_progress_signals_are_throttled_but_the_last_record_is_kept(qtbot):
    from app.workers import GeneratorWorker

    worker = GeneratorWorker(_counting_job(n=2000, delay=0.0), name="fast", min_interval=0.05)
    records = []
    worker.progress.connect(records.append)
    with qtbot.waitSignal(worker.finished_with, timeout=10_000) as done:
        worker.start()
    worker.wait()
    assert 1 <= len(records) < 2000
    assert done.args[0] == {"event": "done", "iteration": 2000, "iterations": 2000}
