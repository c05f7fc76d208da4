"""Start-up cost of the command line: building the parser loads no engine (torch, numba, ...).

Every `coseg` command, and every stage task of `coseg batch` (a `coseg run`
process), builds the whole parser first; its options must come from light
modules, the implementation only when the command runs. Checked in a fresh
interpreter, as `sys.modules` of the test process already holds everything.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Packages that take seconds of CPU to import (or start threads): none is needed to parse a command line.
HEAVY = ("torch", "numba", "llvmlite", "cv2", "pycolmap", "open3d", "scipy", "skimage", "ray", "PIL", "imageio")


def _loaded_after(code: str) -> set[str]:
    script = f"""
import sys
{code}
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(out.stdout.split())


def test_help_of_coseg_and_of_every_command_imports_no_heavy_package():
    loaded = _loaded_after("""
import contextlib, io
from coseg.cli import COMMANDS, main
with contextlib.redirect_stdout(io.StringIO()):
    for argv in [["--help"]] + [[name.replace("_", "-"), "--help"] for name in COMMANDS]:
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 0, (argv, e.code)
        else:
            raise AssertionError(f"{argv}: --help did not exit")
""")
    assert "coseg" in loaded and sorted(loaded & set(HEAVY)) == []


def test_import_coseg_loads_no_third_party_package():
    loaded = _loaded_after("import coseg")
    assert sorted(loaded & {*HEAVY, "numpy"}) == []
