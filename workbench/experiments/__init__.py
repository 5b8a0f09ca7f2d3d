"""Experiments: what a run assembles from the stages and the commands that run it (the sandbox runner and its
sweeps, the real-data pipeline and its protocols, val-selection, calibration, the notebooks' study, the main job)."""
