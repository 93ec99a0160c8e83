"""What the TAU/DCASE file names say: scene, city, location, segment, device.

TAU 2019/2020 name a 10 s clip ``scene-city-location-segment-device.wav``
(``airport-lisbon-1000-40000-a.wav``); TAU 2022 Mobile (DCASE 2023/2024 task 1)
cuts it into 1 s pieces named ``scene-city-location-segment-piece-device.wav``
(``airport-lisbon-1000-40000-0-a.wav``). The identifier ``city-location``
groups the clips recorded at one place.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class TauName:
    scene: str
    city: str
    location: str
    segment: str
    piece: str | None
    device: str

    @property
    def identifier(self) -> str:
        return f"{self.city}-{self.location}"


def parse_tau_name(filename: str | PurePath) -> TauName | None:
    """Split a TAU file name into its fields; None if it does not have 5 or 6 fields."""
    base = str(filename).replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    parts = stem.split("-")
    if len(parts) == 5:
        scene, city, location, segment, device = parts
        piece = None
    elif len(parts) == 6:
        scene, city, location, segment, piece, device = parts
    else:
        return None
    if not all(parts):
        return None
    return TauName(scene, city, location, segment, piece, device)


def city_of_identifier(identifier: str) -> str:
    """``lisbon-1000`` -> ``lisbon`` (everything before the last dash)."""
    return identifier.rsplit("-", 1)[0] if "-" in identifier else identifier
