"""A torch Dataset of waveforms, and the city x device x scene subsampling of Horvath 2021."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from asclab.data.audio import audio_info, check_not_near_empty, load_audio
from asclab.data.records import Record, naming_row
from asclab.data.tables import ErrorPolicy, Skipped
from asclab.errors import DataError


class WaveformDataset(Dataset):
    """Items ``{"wave": FloatTensor (C, N), "label": int, "device": int, "index": int}``.

    ``label`` is the position in ``classes`` (-1 for unlabelled records);
    ``device`` the position in ``devices`` (default: the sorted devices of the
    records; -1 for an unknown or unlisted device). With ``on_error="skip"``
    every file's header is checked up front and unusable files are dropped
    and listed in ``skipped``; decoding errors later still raise.
    """

    def __init__(
        self,
        records: Sequence[Record],
        classes: Sequence[str],
        sample_rate: int,
        channels: str = "mono",
        duration: float | None = None,
        *,
        devices: Sequence[str] | None = None,
        on_error: str = "raise",
        resampler: str = "soxr",
        expect_rate: int | None = None,
        cache_mb: float = 0,
    ) -> None:
        policy = ErrorPolicy(on_error)
        self.classes = list(classes)
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        if devices is None:
            devices = sorted({r.device for r in records if r.device is not None})
        self.devices = list(devices)
        self.device_index = {d: i for i, d in enumerate(self.devices)}
        kept = []
        for rec in records:
            if rec.label is not None and rec.label not in self.class_index:
                policy.report(rec.extra.get("source", rec.path), rec.extra.get("row"),
                              f"label {rec.label!r} of {rec.path.name} is not one of the {len(self.classes)} classes")
                continue
            if on_error == "skip":
                try:
                    with naming_row(rec):
                        audio_info(rec.path)
                except DataError as e:
                    policy.report(rec.path, None, str(e))
                    continue
            kept.append(rec)
        self.records = kept
        self.skipped: list[Skipped] = policy.skipped
        self.sample_rate = sample_rate
        self.channels = channels
        self.duration = duration
        self.resampler = resampler  # features.resampler: soxr, or sinc_hann (the CPJKU baselines' torchaudio method)
        self.expect_rate = expect_rate  # data.expect_rate: the rate every file must have (None: any, resampled)
        # decoded, resampled waveforms kept across epochs up to cache_mb (train.waveform_cache_mb; per
        # loader process): decoding is deterministic, so a cached item equals a decoded one (issue 23)
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: dict[int, np.ndarray] = {}
        self._cached = 0

    def __len__(self) -> int:
        return len(self.records)

    def _wave(self, i: int, rec: Record) -> np.ndarray:
        wave = self._cache.get(i)
        if wave is None:
            with naming_row(rec):  # errors name the metadata file and row
                check_not_near_empty(rec.path, self.duration)  # asclab.data.audio.MIN_AUDIO_SHARE of the clip
                wave = load_audio(rec.path, self.sample_rate, self.channels, self.duration,
                                  resampler=self.resampler, expect_rate=self.expect_rate)
            if self._cached + wave.nbytes <= self.cache_bytes:
                wave.flags.writeable = False  # items share it: torch.from_numpy below must not be written to
                self._cache[i] = wave
                self._cached += wave.nbytes
        return wave

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        wave = self._wave(i, rec)
        return {
            "wave": torch.from_numpy(wave.copy() if not wave.flags.writeable else wave),
            "label": self.class_index[rec.label] if rec.label is not None else -1,
            "device": self.device_index.get(rec.device, -1) if rec.device is not None else -1,
            "index": i,
        }

    def labels(self) -> np.ndarray:
        """The integer label of every item (-1 unlabelled), without reading audio."""
        return np.array([self.class_index[r.label] if r.label is not None else -1 for r in self.records])


@dataclass
class SubsampleReport:
    per_cell: int
    cells: int
    selected: int
    short_cells: dict[tuple, int] = field(default_factory=dict)  # cell -> records available (< per_cell)


def _cells(records: Sequence[Record], keys: Sequence[str]) -> dict[tuple, list[int]]:
    cells: dict[tuple, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        cells[tuple(getattr(rec, k) for k in keys)].append(i)
    return dict(sorted(cells.items(), key=lambda kv: tuple(str(v) for v in kv[0])))


def balanced_subsample(
    records: Sequence[Record],
    per_cell: int,
    keys: Sequence[str] = ("city", "device", "label"),
    seed: int = 0,
) -> list[Record]:
    """Draw ``per_cell`` records from every combination of ``keys`` (Horvath 2021 sec. 2).

    Horvath et al. sample 7 recordings per city x device x scene of the
    TAU 2020 Mobile train split (10 x 6 x 10 cells, 4200 clips); cells with
    fewer records keep all of them (``balance_report`` lists them). The
    selection keeps the input order and depends only on ``seed``.
    """
    if per_cell < 1:
        raise ValueError("per_cell must be at least 1")
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for members in _cells(records, keys).values():
        if len(members) <= per_cell:
            chosen.extend(members)
        else:
            chosen.extend(rng.choice(members, size=per_cell, replace=False).tolist())
    chosen.sort()
    return [records[i] for i in chosen]


def balance_report(
    records: Sequence[Record], per_cell: int, keys: Sequence[str] = ("city", "device", "label"),
) -> SubsampleReport:
    """The counts behind ``balanced_subsample``: cells, records selected, cells short of ``per_cell``."""
    cells = _cells(records, keys)
    return SubsampleReport(
        per_cell=per_cell, cells=len(cells), selected=sum(min(len(m), per_cell) for m in cells.values()),
        short_cells={c: len(m) for c, m in cells.items() if len(m) < per_cell},
    )
