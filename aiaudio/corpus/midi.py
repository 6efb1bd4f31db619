"""A minimal Standard MIDI File writer: one track of single notes for one General MIDI program.

Only what rendering a soundfont note by note needs: format 0, one channel, program change,
note on / note off at given times.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple, Sequence

TICKS_PER_SECOND = 960          # division 480 ticks per beat at the default tempo of 120 bpm


class Note(NamedTuple):
    """One note: MIDI pitch 0-127, velocity 1-127, start and duration in seconds."""
    pitch: int
    velocity: int
    start: float
    duration: float


def _varlen(value: int) -> bytes:
    """MIDI variable-length quantity (7 bits per byte, high bit = more bytes follow)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(program: int, notes: Sequence[Note], channel: int = 0) -> bytes:
    """The bytes of a format-0 MIDI file playing ``notes`` on ``program`` (0-127).

    Raises:
        ValueError: program, channel, pitch or velocity out of range, or a negative time.
    """
    if not 0 <= program <= 127 or not 0 <= channel <= 15:
        raise ValueError(f"program {program} must lie in 0..127 and channel {channel} in 0..15")
    events: list[tuple[int, int, bytes]] = []            # (tick, order, bytes); note-offs first at a tick
    for n in notes:
        if not 0 <= n.pitch <= 127 or not 1 <= n.velocity <= 127 or n.start < 0 or n.duration <= 0:
            raise ValueError(f"bad note {n}: pitch 0..127, velocity 1..127, start >= 0, duration > 0")
        on, off = round(n.start * TICKS_PER_SECOND), round((n.start + n.duration) * TICKS_PER_SECOND)
        events.append((on, 1, bytes([0x90 | channel, n.pitch, n.velocity])))
        events.append((max(off, on + 1), 0, bytes([0x80 | channel, n.pitch, 0])))
    track = bytearray(_varlen(0) + bytes([0xC0 | channel, program]))
    now = 0
    for tick, _, data in sorted(events):
        track += _varlen(tick - now) + data
        now = tick
    track += _varlen(TICKS_PER_SECOND) + b"\xff\x2f\x00"   # one second of tail for the release
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_SECOND // 2)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def write_midi(path: str | Path, program: int, notes: Sequence[Note]) -> Path:
    """Write :func:`midi_bytes` to ``path``."""
    path = Path(path)
    path.write_bytes(midi_bytes(program, notes))
    return path


def read_notes(data: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """``(program, [(tick, pitch, velocity), ...])`` of a file written by :func:`midi_bytes`
    (note-ons only; for checking what was written)."""
    if data[:4] != b"MThd" or data[14:18] != b"MTrk":
        raise ValueError("not a single-track MIDI file")
    pos, end, tick, program, notes = 22, 22 + struct.unpack(">I", data[18:22])[0], 0, -1, []
    while pos < end:
        delta = 0
        while True:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        tick += delta
        status = data[pos]
        if status == 0xFF:
            pos += 3 + data[pos + 2]
        elif status & 0xF0 == 0xC0:
            program, pos = data[pos + 1], pos + 2
        else:
            if status & 0xF0 == 0x90:
                notes.append((tick, data[pos + 1], data[pos + 2]))
            pos += 3
    return program, notes
