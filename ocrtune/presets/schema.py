"""Preset schema: every training setting, validated before any work starts.

Key paths mirror the competition baseline's Hydra config (``models.optimizer.lr`` ...) so its
users feel at home. Every model forbids unknown keys: a mistyped key is an error, never a
setting that silently fails to reach the model.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
PositiveInt = Annotated[int, Field(ge=1)]

# Upper bounds on counts: far above any sensible setting, so they only catch a slipped digit
# (max_epochs: 100000000) before it starts a run that never ends or cannot fit in memory.
MAX_EPOCHS = 1000
MAX_IMAGE_SIZE = 4096
MAX_CHANNELS = 2048
MAX_CANDIDATES = 10_000
MAX_BATCH_SIZE = 1024
MAX_WORKERS = 256
MAX_ACCUMULATE = 1024
MAX_NODES = 1024
MAX_SEED = 2**32 - 1  # numpy's seed range, which lightning.seed_everything enforces at train time
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
Channels = Annotated[int, Field(ge=1, le=MAX_CHANNELS)]


class FieldError(ValueError):
    """A broken rule between keys, told from each key's side (relative dotted path -> message).

    Either key can be the one to fix: the loader blames the one set last (a ``--set`` over a file,
    a child preset over its base), and the first one when nothing tells them apart.
    """

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__(next(iter(messages.values())))
        self.messages = dict(messages)

    @property
    def key(self) -> str:
        return next(iter(self.messages))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """pydantic reads ``true`` as 1 in a number field; in a preset that is always a mistake."""
        annotation = cls.model_fields[info.field_name].annotation
        if _holds_bool(v) and _mentions(annotation, (int, float)) and not _mentions(annotation, (bool,)):
            raise ValueError(f"expected a number, not true/false (got {_yaml_text(v)})")
        return v


def _holds_bool(v: Any) -> bool:
    return isinstance(v, bool) or (isinstance(v, (list, tuple)) and any(isinstance(x, bool) for x in v))


def _mentions(annotation: Any, types: tuple[type, ...]) -> bool:
    """Whether a field type is, or holds (``X | None``, ``list[X]``, ``Annotated[X, ...]``), one of ``types``."""
    if annotation in types:
        return True
    return any(_mentions(a, types) for a in get_args(annotation))


def _yaml_text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_text(x) for x in v) + "]"
    return repr(v)


class EncoderConfig(Strict):
    model_name: str = "resnet18"
    pretrained: bool = False
    pretrained_path: str | None = None
    out_indices: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [1, 2, 3, 4])

    @field_validator("out_indices")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        """timm drops repeated stages and returns maps in stage order whatever the list order, so
        anything but unique increasing indices gives the decoder other maps than it was sized for.
        The upper end depends on the model (4 stages for ConvNeXt, 5 for ResNet and EfficientNet,
        12 blocks for ViT): it is checked when the encoder is built."""
        if not v:
            raise ValueError("must list at least one encoder stage")
        repeated = sorted({i for i in v if v.count(i) > 1})
        if repeated:
            raise ValueError(f"lists stage {', '.join(map(str, repeated))} more than once (got {v})")
        if v != sorted(v):
            raise ValueError(f"must list stages in increasing order, e.g. {sorted(v)} (got {v})")
        return v


class DecoderConfig(Strict):
    name: Literal["fpn", "unet"] = "fpn"
    inner_channels: Channels = 256
    out_channels: Channels = 64
    asf: bool = False


class PostprocessConfig(Strict):
    thresh: Probability = 0.3
    box_thresh: Probability = 0.4
    max_candidates: Annotated[int, Field(ge=1, le=MAX_CANDIDATES)] = 300
    use_polygon: bool = False
    box_unclip_ratio: Annotated[float, Field(gt=0.0)] = 1.5
    polygon_unclip_ratio: Annotated[float, Field(gt=0.0)] = 2.0
    min_size: Annotated[float, Field(ge=0.0)] = 3.0


class HeadConfig(Strict):
    k: Annotated[float, Field(gt=0.0)] = 50.0
    postprocess: PostprocessConfig = Field(default_factory=PostprocessConfig)


class LossConfig(Strict):
    prob_weight: Annotated[float, Field(ge=0.0)] = 5.0
    thresh_weight: Annotated[float, Field(ge=0.0)] = 10.0
    binary_weight: Annotated[float, Field(ge=0.0)] = 1.0
    negative_ratio: Annotated[float, Field(gt=0.0)] = 3.0


class OptimizerConfig(Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0.0)] = 1e-4


Interval = Literal["epoch", "step"]  # when the lr schedule moves (``SchedulerConfig.interval``)


class SchedulerConfig(Strict):
    name: Literal["cosine", "constant"] = "cosine"
    T_max: Epochs = 22
    eta_min: Annotated[float, Field(ge=0.0)] = 0.0
    warmup_epochs: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] = 0  # before the cosine, which then runs T_max epochs
    # "epoch": the rate changes between epochs (the baseline's PyTorch scheduler; periodic past
    # T_max). "step": the same curve after every optimizer step, held at eta_min past T_max, so
    # runs of a few epochs warm up and anneal (ocrtune/train/schedule.py).
    interval: Interval = "epoch"


class ModelsConfig(Strict):
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)

    @model_validator(mode="after")
    def _eta_below_lr(self) -> ModelsConfig:
        lr, eta_min = self.optimizer.lr, self.scheduler.eta_min
        if self.scheduler.name == "cosine" and eta_min >= lr:
            raise FieldError({
                "scheduler.eta_min": f"must be below models.optimizer.lr ({lr:g}) (got {eta_min:g})",
                "optimizer.lr": f"must be above models.scheduler.eta_min ({eta_min:g}) (got {lr:g})",
            })
        return self


class AugmentConfig(Strict):
    enabled: bool = True
    hflip: Probability = 0.0
    rotate: Annotated[float, Field(ge=0.0, le=45.0)] = 5.0
    scale: tuple[float, float] = (0.8, 1.2)
    crop: Probability = 0.5
    color_jitter: Probability = 0.2

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_pair(cls, v: Any) -> Any:
        if not isinstance(v, (list, tuple)) or len(v) != 2:
            raise ValueError(f"expected two numbers [min, max] (got {_yaml_text(v)})")
        return v

    @field_validator("scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0 < lo <= hi:
            raise ValueError(f"must be [min, max] with 0 < min <= max (got [{lo:g}, {hi:g}])")
        return v


class DatasetsConfig(Strict):
    root: str | None = None  # None: the embedded synthetic receipts
    train: str = "train"
    val: str = "val"
    test: str = "test"
    image_size: Annotated[int, Field(ge=1, le=MAX_IMAGE_SIZE)] = 1024
    shrink_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.4
    thresh_min: Probability = 0.3
    thresh_max: Probability = 0.7
    min_text_size: Annotated[float, Field(ge=0.0)] = 8.0
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    # training decodes each image once per machine into $OCRTUNE_CACHE/decoded (same pixels,
    # same results; ocrtune/data/decoded_cache.py); false: decode every time, as before
    cache: bool = True

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, v: int) -> int:
        if v % 32:
            raise ValueError(f"must be a positive multiple of 32 (got {v}; try {max(32, round(v / 32) * 32)})")
        return v

    @model_validator(mode="after")
    def _thresh_order(self) -> DatasetsConfig:
        lo, hi = self.thresh_min, self.thresh_max
        if lo >= hi:
            raise FieldError({
                "thresh_min": f"must be below datasets.thresh_max ({hi:g}) (got {lo:g})",
                "thresh_max": f"must be above datasets.thresh_min ({lo:g}) (got {hi:g})",
            })
        return self


Pad = Literal["square", "batch"]  # how training batches are padded (``DataloaderConfig.pad``)


class DataloaderConfig(Strict):
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = 8
    # Loader processes; "auto": one per core of the process's share less two, 1 to 12
    # (``train/loader_workers.py``). Samples and their augmentation do not depend on it.
    num_workers: int | Literal["auto"] = 4
    # Training batches: "square" pads every image to image_size x image_size; "batch" pads only
    # as far as the batch's largest image needs (rounded up to 128 px). Receipts are tall: at
    # 1024 px about half of a square is padding, which the network computes on all the same.
    # Validation, evaluation and prediction run each image on its own extent, whatever this says
    # (``train/extents.py``: scores do not depend on how images were batched).
    pad: Pad = "square"

    @field_validator("num_workers", mode="before")
    @classmethod
    def _workers(cls, v: Any) -> int | str:
        """A whole number of loader processes, or auto (one located line either way)."""
        if v == "auto":
            return v
        if isinstance(v, float) and v.is_integer():  # 4.0, as spreadsheets and some YAML write it
            v = int(v)
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_WORKERS:
            return v
        raise ValueError(f"must be auto or a whole number from 0 to {MAX_WORKERS} (got {_yaml_text(v)})")


Precision = Literal["auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true"]


class EmaConfig(Strict):
    """An exponential moving average of the weights, kept beside them and used to validate,
    checkpoint-select, evaluate and fine-tune from (timm's ``ModelEmaV3``)."""

    enabled: bool = False
    decay: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.999
    # Warm-up: the decay at optimizer step n is min(decay, 1 - n ** -2/3) (timm: 0 at step 1), so a short run
    # averages its recent steps (0.95 at step 100, 0.99 at 1000) instead of remembering its start.
    warmup: bool = True


class TrainerConfig(Strict):
    max_epochs: Epochs = 22
    precision: Precision = "auto"  # auto: bf16-mixed on GPU, 32-true on CPU
    accumulate_grad_batches: Annotated[int, Field(ge=1, le=MAX_ACCUMULATE)] = 1
    gradient_clip_val: Annotated[float, Field(ge=0.0)] | None = 5.0
    devices: int | str | list[int] = "auto"
    strategy: str = "auto"
    num_nodes: Annotated[int, Field(ge=1, le=MAX_NODES)] = 1
    ema: EmaConfig = Field(default_factory=EmaConfig)

    @model_validator(mode="after")
    def _ema_in_full_precision(self) -> TrainerConfig:
        # bf16 keeps 8 bits of mantissa: an update of (1 - decay) = 0.1 % of a weight's change
        # rounds away, so an average stored in bf16 would hardly move from its first copy
        if self.ema.enabled and self.precision == "bf16-true":
            raise FieldError({
                "ema.enabled": "an EMA of bf16 weights loses its updates to rounding; use precision bf16-mixed "
                               "(fp32 weights, bf16 compute) with an EMA (got trainer.precision bf16-true)",
                "precision": "bf16-true stores the weights in bf16, where an EMA's small updates round away; "
                             "use bf16-mixed with trainer.ema.enabled",
            })
        return self

    @field_validator("devices")
    @classmethod
    def _lightning_devices(cls, v: int | str | list[int]) -> int | str | list[int]:
        """What ``lightning.Trainer(devices=...)`` takes: auto, a count >= 1, -1 (every GPU), or
        distinct device indices (a list, or a string such as "0,1")."""
        if v == "auto":
            return v
        parsed: Any = v
        if isinstance(v, str):
            try:
                parsed = [int(x) for x in v.split(",") if x.strip()] if "," in v else int(v)
            except ValueError:
                raise ValueError(f"must be auto, a device count, -1 (every GPU) or device indices (got {v!r})") from None
        if isinstance(parsed, int) and not (parsed >= 1 or parsed == -1):
            raise ValueError(f"must be a device count >= 1, -1 (every GPU) or auto (got {v!r})")
        if isinstance(parsed, list):
            if not parsed:
                raise ValueError("must list at least one device index")
            if any(i < 0 for i in parsed) or len(set(parsed)) != len(parsed):
                raise ValueError(f"must list distinct device indices >= 0 (got {v!r})")
        return v


class ReportedConfig(Strict):
    """Scores a preset is known to reach (percent). Never feeds training."""

    hmean: Percent | None = None
    precision: Percent | None = None
    recall: Percent | None = None
    epoch: Annotated[int, Field(ge=0, le=MAX_EPOCHS)] | None = None
    note: str | None = None


class Preset(Strict):
    description: str | None = None
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    datasets: DatasetsConfig = Field(default_factory=DatasetsConfig)
    dataloader: DataloaderConfig = Field(default_factory=DataloaderConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 42
    reported: ReportedConfig | None = None


def current_dump(data: dict[str, Any]) -> dict[str, Any]:
    """A stored preset dump as this version writes it: keys added since (``trainer.ema``) take
    their defaults, so a sweep or k-fold stored before them resumes as unchanged. A dump this
    schema rejects is returned as it is (the comparison then shows what differs)."""
    try:
        return Preset.model_validate(data).model_dump(mode="json")
    except ValueError:
        return data


def field_names(path: tuple[str | int, ...]) -> list[str] | None:
    """Allowed keys of the model reached by ``path`` from ``Preset`` (None if not a model)."""
    model: Any = Preset
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model = model_type(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return None


def model_type(annotation: Any) -> Any:
    """Unwrap ``X | None`` to ``X`` so nested lookups see the model class."""
    args = getattr(annotation, "__args__", None)
    if args:
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
    return annotation
