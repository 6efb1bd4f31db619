"""Build the real-audio corpus: an unlabelled pre-training pool and four labelled tasks.

Layout written under ``out``::

    pool/<source>/<file>.wav                 unlabelled pre-training pool (read as files:out/pool)
    monitor/<note>/<file>.wav                pitch of pool programs, for the online k-NN monitor
    tasks/pitch/<note>/<file>.wav            pitch-sensitive: MIDI note of held-out instruments
    tasks/instrument/<program>/<file>.wav    timbre, pitch-invariant: held-out program at any pitch
    tasks/speaker/<voice>/<file>.wav         voice: recorded voice packs and synthetic voices
    tasks/word/<phrase>/<file>.wav           spoken phrase across recorded voices (pitch-invariant)
    corpus.json                              settings, packages, counts, skipped sources

Evaluation sources never enter the pool: the soundfont's programs are split into pool and
held-out programs (every fourth melodic program is held out), the recorded voice packs and
festival voices are evaluation-only and the pool's speech comes from flite's voices. Every
clip is 16-bit mono WAV at ``sample_rate``; all random choices come from one seeded generator.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from aiaudio.corpus import sources as src
from aiaudio.corpus.midi import Note
from aiaudio.data.audio_io import decode_audio, write_audio
from aiaudio.data.formats import EXTENSIONS
from core.fileio import atomic_write

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.", "Please call me back after lunch.",
    "It was raining when the train finally left.", "Seven green bottles stood on the wall.",
    "Can you hear the music from the garden?", "The library opens at nine tomorrow.",
    "We walked along the river until sunset.", "Turn left at the second traffic light.",
    "My brother plays the violin every evening.", "Bring a warm coat, the wind is cold.",
    "The meeting moved to Thursday afternoon.", "Fresh bread smells better than anything.",
    "A small boat drifted towards the island.", "Numbers one, two, three, four and five.",
    "She painted the kitchen door bright yellow.", "Where did you leave the car keys?",
    "The old clock in the hall stopped at noon.", "Thank you for the lovely dinner.",
    "Every morning the birds sing outside.", "Write your name at the top of the page.",
    "The museum is closed on public holidays.", "Hot tea and honey help a sore throat.",
    "The children built a castle of sand.", "Keep the receipt in case it breaks.",
)
ENGLISH_PACKS = ("British", "Classic", "Default", "HillBilly", "Mobster", "Pirate", "Robot", "Russian",
                 "Singer", "Surfer")


@dataclass
class CorpusConfig:
    """What the corpus holds. Defaults: about 3,000 pool clips and four tasks of 28-37 classes."""

    sample_rate: int = 16000
    seed: int = 0
    root: str = "/"                        # where the packages are installed
    pool_segment_seconds: float = 4.0      # long pool files are cut into segments of this length
    pool_max_segments: int = 24            # at most this many (evenly spaced) segments per file
    pool_notes_per_program: int = 16
    pool_sentences: int = 24               # per flite voice
    task_notes_per_class: int = 10         # pitch task: clips per note (each a different program)
    instrument_notes_per_class: int = 12   # instrument task: clips per program (random pitches)
    pitch_range: tuple[int, int] = (48, 84)
    speaker_sentences: int = 12            # per festival voice
    word_min_packs: int = 6                # a phrase is a class when this many packs say it
    note_seconds: float = 1.5              # length of one rendered note clip
    held_out_programs: list[int] = field(default_factory=lambda: [p for p in range(112) if p % 4 == 2])
    pool_programs: list[int] | None = None  # None: every program not held out
    flite_voices: list[str] = field(default_factory=lambda: list(src.FLITE_VOICES))

    def __post_init__(self) -> None:
        low, high = self.pitch_range
        if not 0 <= low < high <= 127:
            raise ValueError(f"pitch_range={self.pitch_range} must satisfy 0 <= low < high <= 127")
        if not self.held_out_programs or any(not 0 <= p <= 127 for p in self.held_out_programs):
            raise ValueError(f"held_out_programs={self.held_out_programs} must be programs 0..127")
        if self.pool_programs is None:
            self.pool_programs = [p for p in range(128) if p not in set(self.held_out_programs)]
        shared = sorted(set(self.pool_programs) & set(self.held_out_programs))
        if shared:
            raise ValueError(f"pool_programs and held_out_programs share program(s) {shared}: evaluation "
                             f"instruments must never be in the pre-training pool")
        for key in ("pool_segment_seconds", "note_seconds"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key}={getattr(self, key)} must be > 0")


def _phrase(stem: str) -> str:
    """``Firepunch3`` -> ``firepunch``: a phrase's class name (numbered takes share it)."""
    return re.sub(r"[^a-z]", "", re.sub(r"\d+$", "", stem).lower())


class _Writer:
    """Writes clips under ``out``, leaving out silent ones and scaling loud ones to peak 1."""

    def __init__(self, out: Path, rate: int) -> None:
        self.out, self.rate = out, rate

    def clip(self, folder: str, name: str, wave: np.ndarray) -> None:
        peak = float(np.abs(wave).max()) if wave.size else 0.0
        if peak < 1e-4:          # silence (a renderer's empty note) is not a clip
            return
        if peak > 1.0:
            wave = wave / peak
        write_audio(self.out / folder / f"{name}.wav", wave, self.rate)


def _segments(wave: np.ndarray, rate: int, seconds: float, most: int) -> list[np.ndarray]:
    """Cut ``wave`` into at most ``most`` evenly spaced pieces of ``seconds`` (the whole wave
    when shorter)."""
    length = int(round(seconds * rate))
    if wave.shape[0] <= length:
        return [wave]
    starts = np.arange(0, wave.shape[0] - length + 1, length)
    if len(starts) > most:
        starts = starts[np.linspace(0, len(starts) - 1, most).round().astype(int)]
    return [wave[s:s + length] for s in starts]


def _copy_files(w: _Writer, files: list[Path], folder: str, cfg: CorpusConfig, skipped: list[str]) -> None:
    for path in files:
        try:
            wave = decode_audio(path, cfg.sample_rate)
        except Exception as error:  # a damaged package file is reported, not fatal
            skipped.append(f"{path}: {error}")
            continue
        for k, piece in enumerate(_segments(wave, cfg.sample_rate, cfg.pool_segment_seconds, cfg.pool_max_segments)):
            w.clip(folder, f"{path.stem}_{k:02d}", piece)


def _audio_files(folder: Path) -> list[Path]:
    """The audio files directly in ``folder`` (not in its sub-folders: hedgewars keeps its
    evaluation-only voice packs under ``Sounds/voices``), sorted."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)


def _render_program(w: _Writer, cfg: CorpusConfig, program: int, notes: list[Note], names: list[tuple[str, str]],
                    tmp: Path) -> None:
    """Render ``notes`` (one every ``note_seconds + 0.5`` s) and write clip k to ``names[k]``."""
    soundfont = src.require(Path(cfg.root), src.SOUNDFONT, "timgm6mb-soundfont")
    wav = src.render_notes(soundfont, program, notes, tmp / f"p{program}.wav", cfg.sample_rate)
    wave = decode_audio(wav, cfg.sample_rate)
    length = int(cfg.note_seconds * cfg.sample_rate)
    for note, (folder, name) in zip(notes, names):
        start = int(round(note.start * cfg.sample_rate))
        w.clip(folder, name, wave[start:start + length])


def _spaced(pitches: list[int], velocities: list[int], durations: list[float], gap: float) -> list[Note]:
    return [Note(p, v, k * gap, d) for k, (p, v, d) in enumerate(zip(pitches, velocities, durations))]


def build_corpus(out: str | Path, config: CorpusConfig | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the corpus under ``out`` (replacing an unfinished one) and return ``corpus.json``'s content.

    A finished corpus (``corpus.json`` present with the same settings) is reused as it is.

    Raises:
        SourceError: a required package file or renderer is missing (names the package).
    """
    cfg, out = config or CorpusConfig(), Path(out)
    manifest = out / "corpus.json"
    if manifest.is_file():
        done = json.loads(manifest.read_text())
        if done.get("config") == json.loads(json.dumps(asdict(cfg))):
            log(f"corpus: reusing {out}")
            return done
    start, root, rng = time.perf_counter(), Path(cfg.root), np.random.default_rng(cfg.seed)
    for part in ("pool", "monitor", "tasks"):
        shutil.rmtree(out / part, ignore_errors=True)
    w, skipped = _Writer(out, cfg.sample_rate), []
    low, high = cfg.pitch_range
    gap = cfg.note_seconds + 0.5
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        log("corpus: pool from game sound packs")
        colobot = src.require(root, src.COLOBOT, "colobot-common-sounds")
        _copy_files(w, _audio_files(colobot / "sounds") + _audio_files(colobot / "music"), "pool/colobot", cfg, skipped)
        _copy_files(w, _audio_files(src.require(root, src.BUCKLESPRING, "bucklespring-data")), "pool/bucklespring",
                    cfg, skipped)
        hedgewars = src.require(root, src.HEDGEWARS, "hedgewars-data")
        _copy_files(w, _audio_files(hedgewars / "Sounds") + _audio_files(hedgewars / "Music"), "pool/hedgewars",
                    cfg, skipped)
        log(f"corpus: rendering {len(cfg.pool_programs)} pool and {len(cfg.held_out_programs)} held-out programs")
        for program in cfg.pool_programs:
            n = cfg.pool_notes_per_program
            pitches = rng.integers(36, 97, n).tolist()
            notes = _spaced(pitches, rng.integers(60, 121, n).tolist(), rng.uniform(0.3, 1.4, n).tolist(), gap)
            names = [("pool/soundfont", f"p{program:03d}_{k:02d}") for k in range(n)]
            # the k-NN monitor's pitch labels: two extra notes per pool program in the task's range
            extra = rng.integers(low, high + 1, 2).tolist()
            notes += [Note(p, 100, (n + j) * gap, 1.0) for j, p in enumerate(extra)]
            names += [(f"monitor/{p:03d}", f"p{program:03d}_{j}") for j, p in enumerate(extra)]
            _render_program(w, cfg, program, notes, names, tmp)
        by_program: dict[int, list[tuple[int, int]]] = defaultdict(list)     # program -> (note, take)
        held = list(cfg.held_out_programs)
        for pitch in range(low, high + 1):
            chosen = rng.choice(held, size=min(cfg.task_notes_per_class, len(held)), replace=False)
            for take, program in enumerate(chosen.tolist()):
                by_program[program].append((pitch, take))
        for program in held:
            pitch_notes = by_program[program]
            n = cfg.instrument_notes_per_class
            inst_pitches = rng.integers(low - 8, high + 5, n).tolist()
            pitches = [p for p, _ in pitch_notes] + inst_pitches
            velocities = rng.integers(70, 111, len(pitches)).tolist()
            notes = _spaced(pitches, velocities, [1.0] * len(pitches), gap)
            names = [(f"tasks/pitch/{p:03d}", f"p{program:03d}_{t}") for p, t in pitch_notes]
            names += [(f"tasks/instrument/{program:03d}_{src.GM_PROGRAMS[program]}", f"n{p:03d}_{k:02d}")
                      for k, p in enumerate(inst_pitches)]
            _render_program(w, cfg, program, notes, names, tmp)
        log("corpus: pool speech (flite)")
        for voice in cfg.flite_voices:
            for k in range(cfg.pool_sentences):
                wav = tmp / "speech.wav"
                try:
                    src.speak_flite(voice, SENTENCES[k % len(SENTENCES)], wav)
                    w.clip("pool/flite", f"{voice}_{k:02d}", decode_audio(wav, cfg.sample_rate))
                except Exception as error:
                    skipped.append(f"flite {voice}: {error}")
                    break
        log("corpus: speaker and word tasks")
        voices = hedgewars / "Sounds" / "voices"
        packs = sorted(p for p in voices.iterdir() if p.is_dir()) if voices.is_dir() else []
        if not packs:
            raise src.SourceError(f"{voices}: no voice packs; install hedgewars-data")
        said: dict[str, list[tuple[str, str, np.ndarray]]] = defaultdict(list)   # phrase -> (pack, take, wave)
        for pack in packs:
            for path in _audio_files(pack):
                wave = decode_audio(path, cfg.sample_rate)
                w.clip(f"tasks/speaker/hw_{pack.name.lower()}", path.stem, wave)
                if pack.name in ENGLISH_PACKS:
                    said[_phrase(path.stem)].append((pack.name, path.stem, wave))
        for phrase, takes in sorted(said.items()):
            if phrase and len({pack for pack, _, _ in takes}) >= cfg.word_min_packs:
                for pack, take, wave in takes:
                    w.clip(f"tasks/word/{phrase}", f"{pack.lower()}_{take}", wave)
        for voice in src.festival_voices(root):
            for k in range(cfg.speaker_sentences):
                wav = tmp / "speech.wav"
                wav.unlink(missing_ok=True)
                try:
                    src.speak_festival(voice, SENTENCES[-1 - k], wav)
                    wave = decode_audio(wav, cfg.sample_rate)
                except Exception as error:   # e.g. a voice that cannot read English text writes nothing
                    skipped.append(f"festival {voice}: {str(error).splitlines()[0]}")
                    break
                w.clip(f"tasks/speaker/fest_{voice.lower()}", f"s{k:02d}", wave)
    counts = {name: sum(1 for _ in (out / name).rglob("*.wav"))
              for name in ("pool", "monitor", "tasks/pitch", "tasks/instrument", "tasks/speaker", "tasks/word")}
    classes = {name: sum(1 for d in (out / name).iterdir() if d.is_dir())
               for name in ("monitor", "tasks/pitch", "tasks/instrument", "tasks/speaker", "tasks/word")}
    result = {"config": json.loads(json.dumps(asdict(cfg))), "clips": counts, "classes": classes,
              "packages": {k: {"licence": v[0], "use": v[1]} for k, v in src.PACKAGES.items()},
              "skipped": skipped, "seconds": round(time.perf_counter() - start, 1)}
    atomic_write(manifest, lambda f: f.write((json.dumps(result, indent=2) + "\n").encode()))
    log(f"corpus: {counts} in {result['seconds']:.0f} s; {len(skipped)} source(s) skipped")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m aiaudio.corpus OUT [--root /]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m aiaudio.corpus", description=__doc__.split("\n")[0])
    p.add_argument("out", help="output folder")
    p.add_argument("--root", default="/", help="where the packages are installed (default /)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        build_corpus(args.out, CorpusConfig(root=args.root, seed=args.seed))
    except src.SourceError as error:
        print(f"corpus: {error}")
        return 2
    return 0
