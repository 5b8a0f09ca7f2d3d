"""The seed systems as registered methods, one module per system; the runner runs any of them by name.

    from workbench import methods
    methods.names()                 # every registered method
    m = methods.get("decap")        # a fresh Method (see base.py for the interface)

Add a method: write ``methods/<system>.py`` with a ``Method`` subclass and a ``METHODS = {name: factory}``
dict, and list the module in ``_MODULES`` below.
"""
from __future__ import annotations

from importlib import import_module

from .base import BLOCKS, Method, Reported, file_stem  # noqa: F401

_MODULES = ("pcm_net", "capdec", "decap", "unsup_clipcap", "syntic", "maccap", "cmsa", "viecap", "ifcap")
ALIASES = {"text-only": "capdec"}           # the PCM-Net ablation's name for the text-only (CapDec) row


def registry() -> dict:
    """name -> factory of every registered method, in module order."""
    out = {}
    for mod in _MODULES:
        for name, factory in import_module(f"{__name__}.{mod}").METHODS.items():
            if name in out:
                raise RuntimeError(f"method {name!r} is registered twice (in {mod}).")
            out[name] = factory
    return out


def names() -> list:
    return list(registry())


def get(name: str, profile: str | None = None, corpus: str | None = None) -> Method:
    """A fresh instance of the method registered as ``name`` (or one of its aliases), with the settings its
    paper gives for ``profile`` ("paper_b32", "paper_l14"; a module's ``PROFILES``) over the sandbox defaults,
    and on a paper profile those it gives for the training ``corpus`` (a module's ``CORPORA``, e.g. SynTIC's
    Flickr30k tau).

    ``name[field=value field=value]`` overrides fields of the method's config (a sweep point, e.g.
    ``capdec[noise_variance=0.016]`` or ``syntic+fo[fo_lr=0.001 fo_epochs=5]``); the row keeps the full name."""
    from dataclasses import fields, is_dataclass, replace
    base, overrides = parse_spec(name)
    reg = registry()
    key = ALIASES.get(base, base)
    if key not in reg:
        raise ValueError(f"method={name!r} is not registered; choose one of {sorted(reg)} (or 'all').")
    method = reg[key]()
    profile_overrides = getattr(import_module(type(method).__module__), "PROFILES", {}).get(profile or "", {})
    if profile_overrides:
        method.config = replace(method.config, **profile_overrides)
    corpus_overrides = getattr(import_module(type(method).__module__), "CORPORA", {}).get(corpus or "", {})
    if corpus_overrides and (profile or "").startswith("paper"):
        method.config = replace(method.config, **corpus_overrides)
    if overrides:
        known = {f.name for f in fields(method.config)} if is_dataclass(method.config) else set()
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"method={name!r}: {unknown} are not fields of {base!r}'s config; valid fields: "
                             f"{sorted(known) or 'none (this method has no options)'}.")
        method.config = replace(method.config, **overrides)
        method.name = name
    if is_dataclass(method.config) and "noise_variance" in {f.name for f in fields(method.config)} \
            and method.config.noise_variance is None:
        # "the captioner preset's noise", resolved now: the options (and so the row key) hold the value used
        from ..config import PRESETS, Profile
        stages = Profile(profile if profile in PRESETS else "sandbox")
        method.config = replace(method.config, noise_variance=stages.captioner.noise_variance)
    return method


def parse_spec(name: str) -> tuple:
    """``"capdec[noise_variance=0.016 renormalize=false]"`` -> ("capdec", {"noise_variance": 0.016,
    "renormalize": False}); a plain name -> (name, {}). Values are read as JSON (numbers, true / false, null),
    else kept as strings."""
    import json
    name = name.strip()
    if "[" not in name:
        return name, {}
    if not name.endswith("]"):
        raise ValueError(f"method={name!r}: an override spec ends with ']', e.g. 'capdec[noise_variance=0.016]'.")
    base, body = name[:-1].split("[", 1)
    out = {}
    for item in body.replace(",", " ").split():
        if "=" not in item:
            raise ValueError(f"method={name!r}: {item!r} is not field=value, e.g. 'capdec[noise_variance=0.016]'.")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return base.strip(), out


GROUPS = {
    "pcm-ablation": ("capdec", "base", "+mixup", "+cxe", "pcm-net", "oracle"),
    "leaderboard": ("capdec", "decap", "ucc", "ucc+mean", "ucc-self", "maccap", "syntic", "pcm-net", "base", "oracle",
                    "cmsa", "viecap", "ifcap", "syn-viecap", "pcm-viecap"),
    "entity-prompt": ("viecap", "syn-viecap", "pcm-viecap", "ifcap", "viecap[prompt=false]",
                      "ifcap[inference_entities=clip]"),
    "maccap-ablation": ("maccap", "maccap-s4", "maccap-s1", "maccap-cls", "maccap-code", "maccap-1tok-clean",
                        "maccap-1tok", "maccap-clean", "maccap-lm"),
    "cmsa-ablation": ("cmsa", "cmsa-init", "cmsa-no-clip", "cmsa-no-fluency"),
    "global-only": ("base-global", "oracle-global"),
    "syntic-table4": ("syntic-baseline", "syntic+fo", "syntic+fp", "syntic+af", "syntic+fo+af", "syntic+fp+fo",
                      "syntic+fp+af", "syntic", "syntic-loo"),
}


def expand(spec) -> tuple:
    """Method names from a spec: "all", a group name, or names (comma-separated string or a sequence)."""
    items = _split_outside_brackets(spec) if isinstance(spec, str) else list(spec)
    out = []
    for item in (i.strip() for i in items):
        group = names() if item == "all" else GROUPS.get(item, (item,))
        out.extend(n for n in group if n not in out)
    for n in out:
        get(n)                               # a clear error for an unknown name
    return tuple(out)


def _split_outside_brackets(spec: str) -> list:
    """Split on commas that are not inside ``[...]`` (an override spec may hold commas)."""
    out, depth, cur = [], 0, ""
    for ch in spec:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def table(names_=None) -> str:
    """A markdown table of the registered methods: block, family, training data, options, reported CIDEr."""
    from ..utils.tables import markdown_table
    rows = []
    for n in names_ or names():
        m = get(n)
        opts = ", ".join(f"{k}={v}" for k, v in m.options().items()) or "-"
        rows.append([m.name, m.block, m.family, m.training_data, opts, f"{m.reported.CIDEr:.1f}" if m.reported else ""])
    return markdown_table(["method", "block", "family", "trains on", "options", "paper's MSCOCO CIDEr (reported)"], rows)
