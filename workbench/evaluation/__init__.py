"""Evaluation: the caption metrics (pycocoevalcap, SPICE, the one CLIPScore), scoring a caption file, and the
caption-world statistics the sandbox is calibrated on."""
