"""Label mappings between class sets.

``TASK1B_3CLASS`` is the DCASE 2020 task 1b grouping of the ten TAU scenes
into indoor / outdoor / transportation (the 3-class task of Gao & McDonnell
2020 and QTI 2020).
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

TAU_SCENES = (
    "airport", "bus", "metro", "metro_station", "park",
    "public_square", "shopping_mall", "street_pedestrian", "street_traffic", "tram",
)

TASK1B_3CLASS: Mapping[str, str] = MappingProxyType({
    "airport": "indoor", "shopping_mall": "indoor", "metro_station": "indoor",
    "park": "outdoor", "public_square": "outdoor", "street_pedestrian": "outdoor", "street_traffic": "outdoor",
    "bus": "transportation", "metro": "transportation", "tram": "transportation",
})

CLASS_MAPS: Mapping[str, Mapping[str, str]] = MappingProxyType({"task1b_3class": TASK1B_3CLASS})
