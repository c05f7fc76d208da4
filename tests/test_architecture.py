"""The engine rule: `coseg/` never imports PySide6, vispy or `app`.

Checked two ways, as napari does: statically over every module's imports, and
by importing every engine module in a fresh interpreter where the GUI stack is
made unimportable.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "vispy", "app", "qtpy", "superqt")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_engine_sources_import_no_gui():
    offenders = {}
    for path in sorted((ROOT / "coseg").rglob("*.py")):
        bad = _imports(path) & set(FORBIDDEN)
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_engine_imports_with_gui_stack_blocked():
    code = f"""
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {FORBIDDEN!r}:
            raise ImportError('blocked GUI module ' + name)
sys.meta_path.insert(0, Block())
import coseg
failed = []
for m in pkgutil.walk_packages(coseg.__path__, 'coseg.'):
    if m.name.endswith('__main__'):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError as e:
        failed.append((m.name, str(e)))
assert not failed, failed
assert not any(k.split('.')[0] in {FORBIDDEN!r} for k in sys.modules)
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from coseg.io.atomic import write_bytes_atomic

    umask = os.umask(0o022)
    try:
        write_bytes_atomic(tmp_path / "f.bin", b"x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f.bin").read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
