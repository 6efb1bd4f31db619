"""A corpus of recorded sound built from installed Debian packages, for the real-audio recipe.

``python -m aiaudio.corpus OUT`` writes an unlabelled pre-training pool and labelled
evaluation tasks (one folder per class) from game sound packs, a General MIDI soundfont
rendered note by note and speech synthesisers (:mod:`aiaudio.corpus.build`). The packages
and what each contributes are listed in :data:`aiaudio.corpus.sources.PACKAGES`.
"""
from aiaudio.corpus.build import CorpusConfig, build_corpus

__all__ = ["CorpusConfig", "build_corpus"]
