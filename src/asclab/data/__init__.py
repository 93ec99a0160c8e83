"""Data stage: readers for TAU/DCASE, DCASE 2024 splits, class folders and CSV manifests;
audio loading and streaming; a torch waveform dataset (``asclab.data.dataset``, imports torch);
and the SYNTHETIC demo set (``asclab.data.synth``)."""
from asclab.data.audio import AudioInfo, audio_info, iter_audio_blocks, load_audio
from asclab.data.classmaps import CLASS_MAPS, TASK1B_3CLASS, TAU_SCENES
from asclab.data.describe import describe
from asclab.data.index import DatasetIndex, detect_layout, open_dataset
from asclab.data.records import Record

__all__ = [
    "AudioInfo", "audio_info", "iter_audio_blocks", "load_audio",
    "CLASS_MAPS", "TASK1B_3CLASS", "TAU_SCENES",
    "describe", "DatasetIndex", "detect_layout", "open_dataset", "Record",
]
