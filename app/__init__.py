"""CoSeg Studio: the PySide6 + vispy desktop editor (depends on `coseg`)."""
