"""The real-audio corpus builder: MIDI writing, cutting and naming, and a whole build from a
small package tree written in the Debian layout (rendered with the real fluidsynth, flite and
festival where installed)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from aiaudio.corpus import CorpusConfig, build_corpus
from aiaudio.corpus import sources as src
from aiaudio.corpus.build import _phrase, _segments
from aiaudio.corpus.midi import Note, midi_bytes, read_notes
from aiaudio.data import open_dataset, write_audio

SOUNDFONT = Path("/") / src.SOUNDFONT
RENDERERS = all(shutil.which(t) for t in ("fluidsynth", "flite", "text2wave")) and SOUNDFONT.is_file()


def test_midi_round_trip_and_range_checks():
    notes = [Note(60, 100, 0.0, 1.0), Note(72, 80, 2.0, 0.5), Note(48, 1, 1.0, 0.25)]
    data = midi_bytes(41, notes)
    assert data[:4] == b"MThd" and data[8:10] == b"\x00\x00"           # format 0
    program, seen = read_notes(data)
    assert program == 41
    assert seen == [(0, 60, 100), (960, 48, 1), (1920, 72, 80)]       # 960 ticks per second, sorted by time
    for bad in (Note(128, 100, 0, 1), Note(60, 0, 0, 1), Note(60, 100, -1, 1), Note(60, 100, 0, 0)):
        with pytest.raises(ValueError, match="bad note"):
            midi_bytes(0, [bad])
    with pytest.raises(ValueError, match="program 128"):
        midi_bytes(128, notes)


def test_segments_and_phrase_names():
    wave = np.arange(100, dtype=np.float32)
    assert [len(s) for s in _segments(wave, 10, 3.0, 99)] == [30, 30, 30]
    picked = _segments(wave, 10, 1.0, 3)                             # 10 pieces, 3 evenly spaced kept
    assert [float(p[0]) for p in picked] == [0.0, 40.0, 90.0]
    assert len(_segments(wave[:5], 10, 1.0, 3)[0]) == 5              # short files stay whole
    assert _phrase("Firepunch3") == "firepunch" and _phrase("Uh-oh") == "uhoh" and _phrase("Ow1") == "ow"


def test_config_keeps_evaluation_programs_out_of_the_pool():
    cfg = CorpusConfig()
    assert len(cfg.held_out_programs) == 28 and not set(cfg.pool_programs) & set(cfg.held_out_programs)
    assert len(cfg.pool_programs) + len(cfg.held_out_programs) == 128
    with pytest.raises(ValueError, match="share program"):
        CorpusConfig(held_out_programs=[2, 6], pool_programs=[1, 6])
    with pytest.raises(ValueError, match="pitch_range"):
        CorpusConfig(pitch_range=(70, 60))


def test_missing_package_is_named(tmp_path):
    with pytest.raises(src.SourceError, match="apt-get install colobot-common-sounds"):
        build_corpus(tmp_path / "out", CorpusConfig(root=str(tmp_path)), log=lambda _: None)


def tone(path: Path, hz: float, seconds: float = 0.6, rate: int = 22050) -> None:
    t = np.arange(int(seconds * rate)) / rate
    write_audio(path, 0.3 * np.sin(2 * np.pi * hz * t).astype(np.float32), rate)


@pytest.mark.skipif(not RENDERERS, reason="needs fluidsynth, flite, festival and timgm6mb-soundfont "
                                          "(apt-get install fluidsynth timgm6mb-soundfont flite festival)")
def test_build_from_a_package_tree(tmp_path):
    root = tmp_path / "root"
    for k in range(2):
        tone(root / src.COLOBOT / "sounds" / f"sound{k}.wav", 300 + 100 * k)
    tone(root / src.COLOBOT / "music" / "song.ogg", 220, seconds=9.0)      # cut into segments
    tone(root / src.BUCKLESPRING / "01-0.wav", 900, seconds=0.1)
    tone(root / src.HEDGEWARS / "Sounds" / "bee.ogg", 500)
    tone(root / src.HEDGEWARS / "Music" / "theme.ogg", 330, seconds=2.0)
    for p, pack in enumerate(("Default", "Pirate", "Robot", "Default_es")):
        for w, word in enumerate(("Hello", "Oops", "Jump1", "Jump2")):
            tone(root / src.HEDGEWARS / "Sounds" / "voices" / pack / f"{word}.ogg", 150 + 40 * p + 7 * w)
    (root / "usr/share/sounds/sf2").mkdir(parents=True)
    (root / src.SOUNDFONT).symlink_to(SOUNDFONT)
    (root / src.FESTIVAL_VOICES / "english" / "kal_diphone").mkdir(parents=True)
    (root / src.FESTIVAL_VOICES / "english" / "no_such_voice").mkdir(parents=True)
    cfg = CorpusConfig(root=str(root), held_out_programs=[2, 6, 10], pool_programs=[0, 40], pool_notes_per_program=3,
                       pool_sentences=2, flite_voices=["slt"], task_notes_per_class=2, instrument_notes_per_class=3,
                       pitch_range=(60, 63), speaker_sentences=2, word_min_packs=3, pool_max_segments=2)
    out = tmp_path / "corpus"
    lines = []
    result = build_corpus(out, cfg, log=lines.append)
    pool = open_dataset(f"files:{out / 'pool'}")
    sources = {Path(r.path).relative_to(out / "pool").parts[0] for r in pool.records}
    assert sources == {"colobot", "bucklespring", "hedgewars", "soundfont", "flite"}
    assert len([r for r in pool.records if "song" in str(r.path)]) == 2                # at most pool_max_segments
    assert result["clips"]["pool"] == len(pool) == 2 + 2 + 1 + 1 + 1 + 2 * 3 + 2
    pitch = open_dataset(f"folder:{out / 'tasks/pitch'}")
    assert pitch.class_names == ["060", "061", "062", "063"] and len(pitch) == 8
    assert {Path(r.path).name[:4] for r in pitch.records} <= {"p002", "p006", "p010"}   # held-out programs only
    instrument = open_dataset(f"folder:{out / 'tasks/instrument'}")
    assert instrument.class_names == ["002_electric_grand_piano", "006_harpsichord", "010_music_box"]
    speaker = open_dataset(f"folder:{out / 'tasks/speaker'}")
    assert speaker.class_names == ["fest_kal_diphone", "hw_default", "hw_default_es", "hw_pirate", "hw_robot"]
    word = open_dataset(f"folder:{out / 'tasks/word'}")                           # English packs only
    assert word.class_names == ["hello", "jump", "oops"] and len(word) == 3 * 4   # Jump1 and Jump2 are one phrase
    assert any("no_such_voice" in s for s in result["skipped"])
    clip = open_dataset(f"folder:{out / 'tasks/pitch'}").records[0].path
    wave, rate = __import__("soundfile").read(clip)
    assert rate == 16000 and len(wave) == int(1.5 * 16000) and 0.01 < np.abs(wave).max() <= 1.0
    saved = json.loads((out / "corpus.json").read_text())
    assert saved["classes"]["tasks/pitch"] == 4 and "hedgewars-data" in saved["packages"]
    again = []
    assert build_corpus(out, cfg, log=again.append) == saved and again == [f"corpus: reusing {out}"]
