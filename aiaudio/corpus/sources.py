"""Where the corpus's sound comes from: Debian packages, their files, and the three renderers.

Nothing here downloads: every source is a package installed with ``apt-get`` (listed in
:data:`PACKAGES` with its licence and what the corpus takes from it), read from ``root``
(``/`` on a real system; tests point it at a folder written in the same layout).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from aiaudio.corpus.midi import Note, write_midi

# package -> (licence, what the corpus takes from it)
PACKAGES: dict[str, tuple[str, str]] = {
    "colobot-common-sounds": ("GPL-3+", "pool: 83 game sound effects and 21 music tracks"),
    "bucklespring-data": ("GPL-2+", "pool: 171 recordings of a buckling-spring keyboard's keys"),
    "hedgewars-data": ("GPL-2, CC-BY-SA-3.0",
                       "pool: game sound effects and 26 music tracks; evaluation: 15 recorded voice packs "
                       "(speaker and word tasks)"),
    "timgm6mb-soundfont": ("GPL-2", "General MIDI soundfont, rendered note by note: pool programs and "
                                    "held-out programs (pitch and instrument tasks)"),
    "fluidsynth": ("LGPL-2.1+", "renders the soundfont"),
    "flite": ("BSD-style (CMU)", "pool: five synthetic English voices reading sentences"),
    "festival": ("BSD-style (Edinburgh)", "evaluation: speaks for the festvox voices"),
    "festvox-kallpc16k": ("free (CMU/Edinburgh)", "evaluation: one voice of the speaker task"),
    "festvox-kdlpc16k": ("free (CMU/Edinburgh)", "evaluation: one voice of the speaker task"),
    "festvox-us-slt-hts": ("EST-2003 / BSD-3-clause", "evaluation: one voice of the speaker task"),
    "festvox-ca-ona-hts": ("LGPL-2.1+", "evaluation: one voice of the speaker task"),
    "festvox-czech-dita": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-czech-krb": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-czech-machac": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-czech-ph": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-suopuhe-lj": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-suopuhe-mv": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-italp16k": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-itapc16k": ("free (see its copyright file)", "evaluation: one voice of the speaker task"),
    "festvox-ru": ("BSD-like, GPL-3", "evaluation: one voice of the speaker task"),
    "festvox-hi-nsk": ("GPL-2+", "evaluation: one voice of the speaker task"),
    "festvox-mr-nsk": ("GPL-2+", "evaluation: one voice of the speaker task"),
    "festvox-te-nsk": ("GPL-2+", "evaluation: one voice of the speaker task"),
}

SOUNDFONT = "usr/share/sounds/sf2/TimGM6mb.sf2"
COLOBOT = "usr/share/games/colobot"                 # sounds/*.wav, music/*.ogg
BUCKLESPRING = "usr/share/buckle/wav"
HEDGEWARS = "usr/share/games/hedgewars/Data"       # Sounds/*.ogg, Music/*.ogg, Sounds/voices/<pack>/*.ogg
FESTIVAL_VOICES = "usr/share/festival/voices"      # <language>/<voice>/
FLITE_VOICES = ("awb", "kal16", "rms", "slt", "kal")

# General MIDI program names (0-127), used as class names of the instrument task
GM_PROGRAMS = (
    "acoustic_grand_piano bright_acoustic_piano electric_grand_piano honky_tonk_piano electric_piano_1 "
    "electric_piano_2 harpsichord clavinet celesta glockenspiel music_box vibraphone marimba xylophone "
    "tubular_bells dulcimer drawbar_organ percussive_organ rock_organ church_organ reed_organ accordion "
    "harmonica tango_accordion nylon_guitar steel_guitar jazz_guitar clean_electric_guitar muted_guitar "
    "overdriven_guitar distortion_guitar guitar_harmonics acoustic_bass finger_bass pick_bass fretless_bass "
    "slap_bass_1 slap_bass_2 synth_bass_1 synth_bass_2 violin viola cello contrabass tremolo_strings "
    "pizzicato_strings orchestral_harp timpani string_ensemble_1 string_ensemble_2 synth_strings_1 "
    "synth_strings_2 choir_aahs voice_oohs synth_voice orchestra_hit trumpet trombone tuba muted_trumpet "
    "french_horn brass_section synth_brass_1 synth_brass_2 soprano_sax alto_sax tenor_sax baritone_sax oboe "
    "english_horn bassoon clarinet piccolo flute recorder pan_flute blown_bottle shakuhachi whistle ocarina "
    "square_lead sawtooth_lead calliope_lead chiff_lead charang_lead voice_lead fifths_lead bass_lead "
    "new_age_pad warm_pad polysynth_pad choir_pad bowed_pad metallic_pad halo_pad sweep_pad rain_fx "
    "soundtrack_fx crystal_fx atmosphere_fx brightness_fx goblins_fx echoes_fx sci_fi_fx sitar banjo "
    "shamisen koto kalimba bagpipe fiddle shanai tinkle_bell agogo steel_drums woodblock taiko_drum "
    "melodic_tom synth_drum reverse_cymbal guitar_fret_noise breath_noise seashore bird_tweet "
    "telephone_ring helicopter applause gunshot").split()
assert len(GM_PROGRAMS) == 128


class SourceError(RuntimeError):
    """A package file or a renderer is missing, or a renderer failed (names which)."""


def require(root: Path, relative: str, package: str) -> Path:
    """``root / relative``, or SourceError saying which package to install."""
    path = root / relative
    if not path.exists():
        raise SourceError(f"{path} is missing: install it with `apt-get install {package}`")
    return path


def _run(command: Sequence[str], what: str) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise SourceError(f"{command[0]} is not installed; it is needed for {what}")
    done = subprocess.run([tool, *command[1:]], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SourceError(f"{command[0]} failed for {what} (exit {done.returncode}): "
                          f"{(done.stderr or done.stdout).strip()[-300:]}")


def render_notes(soundfont: Path, program: int, notes: Sequence[Note], out_wav: Path, sample_rate: int) -> Path:
    """Render ``notes`` on General MIDI ``program`` through fluidsynth into one WAV file."""
    with tempfile.TemporaryDirectory() as tmp:
        midi = write_midi(Path(tmp) / "notes.mid", program, notes)
        _run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-F", str(out_wav),
              str(soundfont), str(midi)], f"program {program} ({GM_PROGRAMS[program]})")
    return out_wav


def festival_voices(root: Path) -> list[str]:
    """Names of the festival voices installed under ``root`` (sorted)."""
    base = root / FESTIVAL_VOICES
    if not base.is_dir():
        return []
    return sorted(v.name for lang in base.iterdir() if lang.is_dir() for v in lang.iterdir()
                  if v.is_dir() and not v.name.endswith(".common") and not v.name.startswith("."))


def speak_festival(voice: str, text: str, out_wav: Path) -> Path:
    """``text`` spoken by festival voice ``voice`` into ``out_wav``."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "text.txt"
        source.write_text(text + "\n")
        _run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(out_wav), str(source)],
             f"festival voice {voice}")
    return out_wav


def speak_flite(voice: str, text: str, out_wav: Path) -> Path:
    """``text`` spoken by flite voice ``voice`` into ``out_wav``."""
    _run(["flite", "-voice", voice, "-t", text, "-o", str(out_wav)], f"flite voice {voice}")
    return out_wav
