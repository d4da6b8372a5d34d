"""The postprocess settings a search varies, as one typed value (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from ocrtune.errors import InputError
from ocrtune.presets.schema import PostprocessConfig

SECTION = "models.head.postprocess"
NAMES = ("thresh", "box_thresh", "max_candidates", "use_polygon", "box_unclip_ratio", "polygon_unclip_ratio", "min_size")


def full_key(name: str) -> str:
    return f"{SECTION}.{name}"


@dataclass(frozen=True)
class PostSettings:
    """One setting of every postprocess key (``models.head.postprocess``)."""

    thresh: float
    box_thresh: float
    max_candidates: int
    use_polygon: bool
    box_unclip_ratio: float
    polygon_unclip_ratio: float
    min_size: float

    def __post_init__(self) -> None:
        # Plain Python numbers: a numpy float compares with the map in float64, a Python float
        # as the live postprocess does (DBPostProcessor stores float()).
        for name in ("thresh", "box_thresh", "box_unclip_ratio", "polygon_unclip_ratio", "min_size"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "max_candidates", int(self.max_candidates))
        object.__setattr__(self, "use_polygon", bool(self.use_polygon))

    @classmethod
    def of(cls, cfg: PostprocessConfig) -> PostSettings:
        return cls(**{n: getattr(cfg, n) for n in NAMES})

    def with_params(self, params: Mapping[str, Any]) -> PostSettings:
        """These settings with ``params`` (full keys, as a space names them) applied and validated."""
        values = asdict(self)
        for key, value in params.items():
            name = key.removeprefix(SECTION + ".")
            if name not in values:
                raise InputError("not a postprocess setting", key=key)
            values[name] = value
        try:
            PostprocessConfig(**values)
        except ValueError as e:
            raise InputError(f"invalid postprocess settings: {e}", key=SECTION) from None
        return replace(self, **values)

    @property
    def ratio(self) -> float:
        """The unclip ratio the output mode uses."""
        return self.polygon_unclip_ratio if self.use_polygon else self.box_unclip_ratio

    @property
    def effective(self) -> tuple[float, float, int, bool, float, float]:
        """What the detections depend on: two settings with the same value score the same
        (the unclip ratio of the other mode is not read)."""
        return (self.thresh, self.box_thresh, self.max_candidates, self.use_polygon, self.ratio, self.min_size)

    def values(self) -> dict[str, Any]:
        return asdict(self)

    def changed(self, other: PostSettings) -> dict[str, tuple[Any, Any]]:
        """``{name: (other's value, this value)}`` for the keys that differ and are read."""
        out = {}
        for name, value in asdict(self).items():
            before = getattr(other, name)
            if value != before and not self._unread(name):
                out[name] = (before, value)
        return out

    def _unread(self, name: str) -> bool:
        return name == ("box_unclip_ratio" if self.use_polygon else "polygon_unclip_ratio")

    def overrides(self, names: Any = NAMES) -> list[str]:
        """``--set`` items that give these settings, e.g. for ``ocrtune evaluate``."""
        return [f"{full_key(n)}={_yaml(getattr(self, n))}" for n in names]


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)
