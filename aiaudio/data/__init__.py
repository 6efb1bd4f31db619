"""Audio datasets: readers for the published layouts, decoding, cache, class splits, crops."""
from aiaudio.data.audio_io import decode_audio, write_audio
from aiaudio.data.base import AudioDataset, AudioRecord, BadAudioError
from aiaudio.data.cache import AudioCache
from aiaudio.data.crops import Pieces, RandomCrops, collate_pieces, scan
from aiaudio.data.registry import READERS, open_dataset, parse_spec
from aiaudio.data.splits import load_class_split, random_class_split, split_dataset

__all__ = [
    "AudioDataset", "AudioRecord", "BadAudioError", "READERS", "open_dataset", "parse_spec",
    "RandomCrops", "Pieces", "collate_pieces", "scan", "AudioCache", "load_class_split",
    "random_class_split", "split_dataset", "decode_audio", "write_audio",
]
