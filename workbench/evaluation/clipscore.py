"""CLIPScore and RefCLIPScore (Hessel et al., EMNLP 2021): the one statement of their formulas.

    CLIPScore(c, v)    = W * max(cos(c, v), 0),  W = 2.5
    RefCLIPScore       = harmonic mean of CLIPScore(c, v) and W * max(max_r cos(c, r), 0)

Every CLIPScore the workbench reports goes through here: the metric tables (``metrics.clip_scores``), each
synthetic image's score in a synthesis manifest (what PCM-Net's CXE weight reads), imported synthetic sets, the
faithfulness profile and notebook 02. A cosine may be a float, a numpy array or a torch tensor (elementwise).
"""
from __future__ import annotations

W = 2.5   # Hessel et al.'s rescaling, fixed by the metric's definition


def clipscore(cos, w: float = W):
    """``w * max(cos, 0)``, elementwise."""
    if isinstance(cos, (int, float)):
        return w * max(float(cos), 0.0)
    return w * cos.clip(min=0)


def refclipscore(clip_s, ref_s):
    """Harmonic mean of a CLIPScore and a reference score (both already ``clipscore``-d), elementwise."""
    if isinstance(clip_s, (int, float)) and isinstance(ref_s, (int, float)):
        return 2 * clip_s * ref_s / max(clip_s + ref_s, 1e-8)
    return 2 * clip_s * ref_s / (clip_s + ref_s).clip(min=1e-8)
