"""The concept vocabulary: frequent nouns of the training captions and their CLIP text embeddings.

Nouns are found offline with lemminflect's lexicon (it ships its data; nothing is downloaded): a word
counts as a noun occurrence when the lexicon knows it as a noun and its context does not make it something
else: never after "is"/"to"/"it"...; a word that can also be an adjective or adverb only when no noun,
adjective or "and" follows ("a red circle", "black and white" vs "a red square."); a word that can also be
a verb not before a determiner ("shows a"), and an "-ing"/"-ed" form only after a determiner. Plurals are
lemmatised ("dogs" -> "dog", "men" -> "man"); function words and generic picture words ("photo",
"front", "group") are dropped. On the 25k Karpathy MSCOCO val captions (min count 20) this finds 460-odd
nouns, close to PCM-Net's ~446-noun COCO bank.

    bank = build_concept_bank(captions, clip, Profile("sandbox").concepts)
    bank.words, bank.counts, bank.embeddings   # list[str], list[int], [C, D] L2-normalised
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..config import ConceptConfig
from ..utils.io import atomic_write, atomic_write_json, stable_hash
from ..utils.paths import cache_dir

STOPWORDS = frozenset("""
photo photograph picture image view scene illustration rendering render drawing snapshot backdrop shot frame close closeup front side top bottom middle center
centre left right background foreground group pair couple lot bunch kind type thing something someone
way piece area part number one other others each edge corner end row set variety
""".split())
FUNCTION_WORDS = frozenset("""it its itself that this these those some many much more most another any all
both either neither his her hers him their them they there here while when where what which who whom
whose how why whether we you us i me he she can though although because since until unless than then also very too not
up down out outside inside above below well off over away back near along around behind across together plus""".split())
DETERMINERS = frozenset("""a an the this that these those his her their its my our your some many several
two three four five six seven eight nine ten few of""".split())
VERB_CONTEXT = frozenset("""is are was were be been being am to it they he she who that which will can
could would may might does do did has have had not""".split())
PROMPT_ENSEMBLE = ("a photo of {}.", "a picture of {}.", "an image of {}.", "a close-up photo of {}.",
                   "a cropped photo of {}.", "a good photo of {}.", "a bright photo of {}.", "a photo of the {}.")
_WORD = re.compile(r"[a-z]+")
# lemminflect's first noun lemma that is the verb's ("leaves" -> "leave"; the noun is "leaf": MSCOCO's "a giraffe
# eating leaves", the sandbox's leaf category)
NOUN_LEMMA_FIXES = {"leaves": "leaf"}


def _noun_lemma(word: str, prev: str, nxt: str):
    """The noun lemma of ``word`` between ``prev`` and ``nxt``, or None when it is not used as a noun."""
    from lemminflect import getAllLemmas, getLemma
    lemmas = getAllLemmas(word)
    if "NOUN" not in lemmas or prev in VERB_CONTEXT:
        return None
    if "ADJ" in lemmas or "ADV" in lemmas:       # "a red circle" (modifier) vs "a red square." (noun)
        following = getAllLemmas(nxt) if nxt else {}
        participle = "VERB" in following and nxt.endswith(("ed", "ing"))   # "a red dotted cat", "a red striped bus"
        if "NOUN" in following or "ADJ" in following or participle or nxt in ("and", "or"):
            return None
    if "VERB" in lemmas:
        if nxt in DETERMINERS:                     # "shows a", "holding the": a verb before its object
            return None
        inflected = getLemma(word, upos="VERB")[0] != word      # "parked", "sitting"; not "bed", "sled", "ring"
        if inflected and word.endswith(("ing", "ed")) and prev not in DETERMINERS:
            return None
    return NOUN_LEMMA_FIXES.get(word) or getLemma(word, upos="NOUN")[0]


def caption_nouns(caption: str, extra_stopwords=()) -> list:
    """The noun lemmas of one caption in order of occurrence (repeats kept): "two dogs in a park" ->
    ["dog", "park"]."""
    stop = STOPWORDS | FUNCTION_WORDS | DETERMINERS | set(extra_stopwords)
    words = _WORD.findall(caption.lower())
    out = []
    for prev, word, nxt in zip([""] + words[:-1], words, words[1:] + [""]):
        lemma = _noun_lemma(word, prev, nxt)
        if lemma and lemma not in stop and len(lemma) > 1:
            out.append(lemma)
    return out


def count_nouns(captions, extra_stopwords=()) -> Counter:
    """Noun lemma -> number of occurrences over ``captions`` (list[str])."""
    counts: Counter = Counter()
    for caption in captions:
        counts.update(caption_nouns(caption, extra_stopwords))
    return counts


def select_vocabulary(counts: Counter, cfg: ConceptConfig) -> list:
    """The most frequent nouns with at least ``min_count`` occurrences, at most ``max_size`` of them;
    ties broken alphabetically so the list is deterministic."""
    ranked = sorted(((w, c) for w, c in counts.items() if c >= cfg.min_count), key=lambda wc: (-wc[1], wc[0]))
    return ranked[:cfg.max_size]


def with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def prompts_for(word: str, cfg: ConceptConfig) -> list:
    templates = PROMPT_ENSEMBLE if cfg.ensemble else (cfg.template,)
    return [t.format(with_article(word)) if "{}" in t else t for t in templates]


@dataclass
class ConceptBank:
    words: list                    # C nouns, most frequent first
    counts: list                   # C occurrence counts in the corpus
    embeddings: torch.Tensor       # [C, D], L2-normalised (mean over the prompt ensemble, renormalised)

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int:
        if word not in self.words:
            raise KeyError(f"word={word!r} is not in the concept bank ({len(self.words)} words, e.g. {self.words[:5]}).")
        return self.words.index(word)


def embed_concepts(words, clip, cfg: ConceptConfig) -> torch.Tensor:
    """[C, D] normalised text embeddings of the concept prompts (ensemble-averaged when configured)."""
    per_word = len(prompts_for("x", cfg))
    texts = [p for w in words for p in prompts_for(w, cfg)]
    emb = F.normalize(clip.text_features(texts).float(), dim=-1).view(len(words), per_word, -1)
    return F.normalize(emb.mean(1), dim=-1)


def build_concept_bank(captions, clip, cfg: ConceptConfig, cache: bool = True) -> ConceptBank:
    """Count nouns, pick the vocabulary, embed it; cached under runs/cache/concepts keyed by the corpus,
    the config and the CLIP's fingerprint."""
    from safetensors.torch import load_file, save_file

    from .cache import clip_fingerprint
    captions = list(captions)
    if not captions:
        raise ValueError("captions is empty; pass the training corpus (a list of caption strings).")
    key = stable_hash({"captions": stable_hash(captions), "cfg": asdict(cfg), "clip": clip_fingerprint(clip)})
    folder = cache_dir("concepts") / key
    if cache and (folder / "bank.json").exists():
        import json
        meta = json.loads((folder / "bank.json").read_text())
        return ConceptBank(meta["words"], meta["counts"], load_file(folder / "embeddings.safetensors")["embeddings"])
    ranked = select_vocabulary(count_nouns(captions, cfg.extra_stopwords), cfg)
    if not ranked:
        raise ValueError(f"no noun occurs at least min_count={cfg.min_count} times in {len(captions)} captions; "
                         "lower ConceptConfig.min_count.")
    words, counts = [w for w, _ in ranked], [c for _, c in ranked]
    bank = ConceptBank(words, counts, embed_concepts(words, clip, cfg))
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "embeddings.safetensors",
                     lambda tmp: save_file({"embeddings": bank.embeddings.contiguous()}, tmp))
        atomic_write_json(folder / "bank.json", {"words": words, "counts": counts, "config": asdict(cfg)})
    return bank

