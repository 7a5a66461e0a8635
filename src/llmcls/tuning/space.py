"""The search space of `llmcls tune`: which config keys a trial samples, from what range, and the config of a
trial (the base config with the sampled values)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from llmcls.config import Config, validate_config
from llmcls.errors import ConfigError

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Param:
    """One searched config key.

    kind "log": a float drawn log-uniformly from [low, high]; "float": uniformly; "choice": one of `choices`.
    `when`: a boolean key of the same search; this one is sampled only in trials where that one came out true
    (elsewhere it keeps the base config's value).
    """

    key: str  # dotted, e.g. "train.lr"
    kind: Literal["log", "float", "choice"]
    _: KW_ONLY
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    when: str | None = None


# The default search, as fastText's autotune does for its own model: learning rate, regularisation, width, depth,
# pooling and batch size. `train.epochs` is not searched: the config's value is the most a trial trains, the pruner
# stops the poor trials early and each trial keeps its best epoch. Keys the config does not have are left out by
# `default_space`.
DEFAULT_SPACE: tuple[Param, ...] = (
    Param("train.lr", "log", low=3e-4, high=5e-3),
    Param("model.dropout", "float", low=0.2, high=0.6),
    Param("model.embedding_dropout", "float", low=0.2, high=0.6),
    Param("model.hidden_size", "choice", choices=(64, 128, 256)),
    Param("model.num_layers", "choice", choices=(1, 2)),
    Param("model.pooling", "choice", choices=("last", "max", "last_max")),
    Param("train.batch_size", "choice", choices=(32, 64, 128)),
    Param("model.wide", "choice", choices=(False, True)),
    Param("model.wide_buckets", "choice", choices=(1 << 16, 1 << 18, 1 << 20), when="model.wide"),
    Param("model.wide_lr_scale", "log", low=1.0, high=30.0, when="model.wide"),
)


def has_key(key: str, model: type[BaseModel] = Config) -> bool:
    """Whether the dotted `key` is a key of the config (asked of the pydantic models themselves)."""
    head, _, rest = key.partition(".")
    field = model.model_fields.get(head)
    if field is None:
        return False
    if not rest:
        return True
    inner = field.annotation
    return isinstance(inner, type) and issubclass(inner, BaseModel) and has_key(rest, inner)


def default_space(pinned: Iterable[str] = ()) -> tuple[Param, ...]:
    """DEFAULT_SPACE without the keys this version of the config lacks and without `pinned` keys (those the
    user set on the command line, which every trial then keeps)."""
    pinned = set(pinned)
    return tuple(p for p in DEFAULT_SPACE if has_key(p.key) and p.key not in pinned)


def check_space(space: Sequence[Param]) -> None:
    """Refuse a search space with a key the config lacks, a key twice, an empty range or an unknown `when`.

    Raises:
        ConfigError: naming the key.
    """
    keys = [p.key for p in space]
    for p in space:
        if not has_key(p.key):
            raise ConfigError(f"search space: {p.key}: no such config key")
        if keys.count(p.key) > 1:
            raise ConfigError(f"search space: {p.key}: searched twice")
        if p.kind == "choice" and not p.choices:
            raise ConfigError(f"search space: {p.key}: no choices")
        if p.kind != "choice" and not (p.low < p.high and (p.kind == "float" or p.low > 0)):
            raise ConfigError(f"search space: {p.key}: need 0 <= low < high (low > 0 for log), got {p.low}..{p.high}")
        if p.when is not None and p.when not in keys:
            raise ConfigError(f"search space: {p.key}: its condition {p.when} is not searched")


def sample(trial: optuna.Trial, space: Sequence[Param]) -> dict[str, Any]:
    """Draw a value for every key of `space` (a conditional key only when its condition came out true), in
    the order of `space`; returns {dotted key: value}."""
    values: dict[str, Any] = {}
    for p in space:
        if p.when is not None and not values.get(p.when):
            continue
        if p.kind == "choice":
            values[p.key] = trial.suggest_categorical(p.key, list(p.choices))
        else:
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, log=p.kind == "log")
    return values


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution `sample` draws `param` from."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if param.kind == "choice":
        return CategoricalDistribution(list(param.choices))
    return FloatDistribution(param.low, param.high, log=param.kind == "log")


def check_same_space(trials: Sequence[optuna.trial.FrozenTrial], space: Sequence[Param]) -> None:
    """Refuse to continue a study whose trials drew a key of `space` from another range or other choices (TPE
    cannot compare them); keys added to or left out of the search are fine.

    Raises:
        ConfigError: naming the key, what it was drawn from and what it would be now.
    """
    for param in space:
        new = distribution(param)
        old = next((t.distributions[param.key] for t in trials if param.key in t.distributions), new)
        if old != new:
            raise ConfigError(
                f"search space: {param.key}: the study drew it from {_shown(old)}, now it would be "
                f"{_shown(new)}; keep the search space of a study, or tune into another --out"
            )


def _shown(dist: optuna.distributions.BaseDistribution) -> str:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return "{" + ", ".join(map(str, dist.choices)) + "}"
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return f"{'log ' if dist.log else ''}{dist.low:g}..{dist.high:g}"
    return repr(dist)  # a kind this module does not draw from


def with_values(config: Config, values: dict[str, Any], source: str) -> Config:
    """A copy of `config` with the dotted keys of `values` replaced, validated again.

    Raises:
        ConfigError: a value the config refuses, named by `source` and the key.
    """
    raw = config.to_dict()
    for key, value in values.items():
        *sections, leaf = key.split(".")
        node = raw
        for section in sections:
            node = node[section]
        node[leaf] = value
    return validate_config(raw, source)
