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


def load_gaussians(path: Path, keep_nonfinite: bool = False) -> Gaussians:
    """Read a run folder or a Gaussian file (3DGS or compressed .ply, .spz, .splat); NaN / inf
    Gaussians are dropped with a warning unless `keep_nonfinite`.

    Raises:
        InputError: unreadable, or no Gaussian (a 0-vertex file, or none with finite values).
    """
    from coseg.io.formats import read_gaussian_file

    path = resolve_gaussians_path(path)
    g = read_gaussian_file(path, keep_nonfinite=True)[0]
    if not len(g):
        raise InputError(f"{path}: holds no Gaussians (0 vertices)")
    if not g.finite_mask().any():
        raise InputError(f"{path}: none of its {len(g)} Gaussians has finite parameters (all NaN or inf)")
    return g if keep_nonfinite else g.without_nonfinite(str(path))


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
                     force: bool = False, what: str = "--out") -> Path:
    """Write `g` to `out` with the matching exporter.

    Never writes over an input, a run's stage results or a scene's inputs
    (`coseg.io.safety.inputs_of` of `inputs`), nor into a folder in the way.

    Args:
        g: the Gaussians to write.
        out: destination file.
        fmt: exporter name (default: from the file name).
        inputs: what the Gaussians were read from (files, run or scene folders).
        force: replace an existing file that is none of those.
        what: the option or action naming `out`, for messages.

    Raises:
        CosegError: refused or failed, in one line.
    """
    from coseg.io.safety import check_output, inputs_of

    out = Path(out)
    check_output(out, inputs_of(*inputs), what, kind="file")
    exporter = exporter_for(out, fmt)
    if out.exists() and not force:
        raise InputError(f"{out}: already exists (use --force to overwrite)")
    exporter.export(g, out)
    return out
