"""Placing a point in the county's grids: the decision, given what the index found.

The geometry (which boundaries cover the point) is a port's (onegrid.app.ports.GridLocator,
shapely's STRtree in onegrid.adapters.geo); what to make of the answer is decided here:
  - the point is in the event's coordinates (WGS84, contracts/common.yaml `location`), turned
    into the boundaries' system first when the county drew them in GCJ-02;
  - no boundary covers it: it is outside the county (the event is quarantined, `outside_county`);
  - one covers it: that grid;
  - several (the point is on a shared edge or corner): the lowest code, so a point always
    lands in the same grid whatever order the index returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from onegrid.kernel.geography import GCJ02, WGS84

# GCJ-02's published parameters: the Krasovsky 1940 ellipsoid
_A = 6378245.0
_EE = 0.00669342162296594323

Locate = Callable[[float, float], Iterable[str]]  # (lon, lat) in the boundaries' CRS -> covering grid codes


@dataclass(frozen=True)
class Placed:
    grid: str


@dataclass(frozen=True)
class Outside:
    detail: str


def place(lat: float, lon: float, crs: str, locate: Locate, tenant_id: str) -> Placed | Outside:
    """The grid a WGS84 point falls in, or why none: `locate` answers in the boundaries' `crs`."""
    x, y = wgs84_to_gcj02(lon, lat) if crs == GCJ02 else (lon, lat)
    hits = sorted(set(locate(x, y)))
    if not hits:
        return Outside(f"location lat {lat:.6f}, lon {lon:.6f} (WGS84) is outside every grid boundary of {tenant_id}")
    return Placed(hits[0])


def in_china(lon: float, lat: float) -> bool:
    """GCJ-02 offsets only points inside China's rough bounding box; elsewhere it is WGS84."""
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """A WGS84 point in GCJ-02 (the published approximation, good to about a metre)."""
    if not in_china(lon, lat):
        return lon, lat
    dlat = _lat_offset(lon - 105.0, lat - 35.0)
    dlon = _lon_offset(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sqrt_magic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * math.cos(rad) * math.pi)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """The inverse, by fixed-point iteration (converges to well under a centimetre)."""
    x, y = lon, lat
    for _ in range(6):
        gx, gy = wgs84_to_gcj02(x, y)
        x, y = x - (gx - lon), y - (gy - lat)
    return x, y


def _lat_offset(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _lon_offset(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


__all__ = ["WGS84", "GCJ02", "Placed", "Outside", "place", "wgs84_to_gcj02", "gcj02_to_wgs84"]
