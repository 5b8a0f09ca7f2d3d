"""Synthesis: the resumable text-to-image engine, imported synthetic sets, and the faithfulness profile of images."""
