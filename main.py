"""Launch CoSeg Studio (same as the `coseg-studio` command)."""

from app.main import main

if __name__ == "__main__":
    raise SystemExit(main())
