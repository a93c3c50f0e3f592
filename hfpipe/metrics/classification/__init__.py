"""The classification metric's `evaluate` module (a package only so that it ships with hfpipe)."""
