"""Loading the Gaussians to edit and exporting the result through exporter plugins."""

from __future__ import annotations

from pathlib import Path

from coseg.errors import InputError
from coseg.gaussians import Gaussians


def resolve_gaussians_path(path: Path) -> Path:
    """A run folder's segmented.ply (else gaussians.ply), or the file itself."""
    path = Path(path)
    if path.is_dir():
        for name in ("segmented.ply", "gaussians.ply"):
            if (path / name).exists():
                return path / name
        raise InputError(f"{path}: not a run folder (no segmented.ply or gaussians.ply)")
    if not path.exists():
        raise InputError(f"{path}: no such file")
    return path


def load_gaussians(path: Path) -> Gaussians:
    """Read a run folder or a Gaussian file (3DGS or compressed .ply, .spz, .splat)."""
    from coseg.io.formats import read_gaussian_file

    return read_gaussian_file(resolve_gaussians_path(path))[0]


def exporter_for(path: Path, fmt: str | None = None):
    """The exporter plugin named `fmt`, or the one whose suffix matches `path`."""
    from coseg.plugins import registry

    reg = registry()
    if fmt:
        try:
            return reg.get("exporter", fmt)
        except KeyError as e:
            raise InputError(str(e).strip('"')) from None
    # The longest matching suffix wins (".compressed.ply" before ".ply"); among equal ones the first registered.
    name = Path(path).name.lower()
    matches = [exp for _, exp in reg.items("exporter") if name.endswith(exp.suffix)]
    if matches:
        return max(matches, key=lambda exp: len(exp.suffix))
    suffix = Path(path).suffix.lower()
    raise InputError(f"{path}: no exporter writes {suffix or 'files without a suffix'} "
                     f"(formats: {', '.join(reg.names('exporter'))})")


def export_gaussians(g: Gaussians, out: Path, fmt: str | None = None, *, inputs: tuple[Path, ...] = (),
                     force: bool = False) -> Path:
    """Write `g` to `out` with the matching exporter; never overwrites an input file."""
    out = Path(out)
    for src in inputs:
        if Path(src).exists() and out.exists() and out.resolve() == Path(src).resolve():
            raise InputError(f"{out}: refusing to overwrite the input file; choose another --out")
    if out.exists() and not force:
        raise InputError(f"{out}: already exists (use --force to overwrite)")
    exporter_for(out, fmt).export(g, out)
    return out
