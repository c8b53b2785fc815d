"""The options a TICKscript can set on `@fraud()`, and their validation.

Example::

    @fraud()
        .url('http://127.0.0.1:5000')
        .batchSize(200)
        .maxWait(50ms)
        .timeout(2s)
        .retryFor(5s)
        .threshold(0.5)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlparse

from tickml.config import Settings
from tickml.udf import udf_pb2

NANOS_PER_SECOND = 1_000_000_000
MAX_BATCH = 10_000


@dataclass(frozen=True)
class ScoringOptions:
    """How one task's points are batched and sent to the model API.

    The defaults are the one source for `tickml udf`'s options and the benchmark; the
    TICKscript's vars are checked against them.
    """

    url: str = Settings.api_url
    batch_size: int = 200
    max_wait: float = 0.05  # seconds to wait for a batch to fill
    timeout: float = 2.0  # seconds per HTTP request
    retry_for: float = 5.0  # seconds of retrying before points go out unscored
    threshold: float | None = None  # None: use the model's own threshold
    max_pending: int = 10_000  # points held at most; beyond that Kapacitor waits


#: TICKscript name → (dataclass field, Kapacitor value type).
OPTION_TYPES: dict[str, tuple[str, int]] = {
    "url": ("url", udf_pb2.STRING),
    "batchSize": ("batch_size", udf_pb2.INT),
    "maxWait": ("max_wait", udf_pb2.DURATION),
    "timeout": ("timeout", udf_pb2.DURATION),
    "retryFor": ("retry_for", udf_pb2.DURATION),
    "threshold": ("threshold", udf_pb2.DOUBLE),
    "maxPending": ("max_pending", udf_pb2.INT),
}


class OptionsError(ValueError):
    """One or more options are invalid; the message lists all of them."""


def describe_options(info: udf_pb2.InfoResponse) -> None:
    """Declare every option, with its single value type, in an InfoResponse."""
    for name, (_, value_type) in OPTION_TYPES.items():
        info.options[name].valueTypes.append(value_type)


def parse_options(
    options: list[udf_pb2.Option], defaults: ScoringOptions
) -> ScoringOptions:
    """Apply the Init request's options over `defaults` and validate the result.

    Raises:
        OptionsError: with every problem found, separated by "; ".
    """
    problems: list[str] = []
    values: dict[str, object] = {}
    for option in options:
        if option.name not in OPTION_TYPES:
            problems.append(f"unknown option {option.name!r}")
            continue
        field, value_type = OPTION_TYPES[option.name]
        if field in values:
            problems.append(f"{option.name} is given more than once")
            continue
        if len(option.values) != 1 or option.values[0].type != value_type:
            problems.append(f"{option.name} takes exactly one {udf_pb2.ValueType.Name(value_type)}")
            continue
        values[field] = _python_value(option.values[0])
    parsed = replace(defaults, **values)
    problems.extend(validate(parsed))
    if problems:
        raise OptionsError("invalid @fraud() options: " + "; ".join(problems))
    return parsed


def _python_value(value: udf_pb2.OptionValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "durationValue":
        return value.durationValue / NANOS_PER_SECOND
    return getattr(value, kind) if kind else None


def validate(options: ScoringOptions) -> list[str]:
    """Every problem with `options`, as short sentences naming the TICKscript option."""
    problems = []
    url = urlparse(options.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        problems.append(f"url must be an http(s) URL like 'http://api:5000', got {options.url!r}")
    if not 1 <= options.batch_size <= MAX_BATCH:
        problems.append(f"batchSize must be between 1 and {MAX_BATCH}, got {options.batch_size}")
    if not 0 <= options.max_wait <= 10:
        problems.append(f"maxWait must be between 0s and 10s, got {options.max_wait:g}s")
    if not 0 < options.timeout <= 60:
        problems.append(f"timeout must be above 0s and at most 60s, got {options.timeout:g}s")
    if not 0 <= options.retry_for <= 300:
        problems.append(f"retryFor must be between 0s and 300s, got {options.retry_for:g}s")
    if options.threshold is not None and not 0 <= options.threshold <= 1:
        problems.append(f"threshold must be between 0.0 and 1.0, got {options.threshold:g}")
    if options.max_pending < options.batch_size:
        problems.append(
            f"maxPending ({options.max_pending}) must be at least batchSize ({options.batch_size})"
        )
    return problems


#: The options a task gets when its TICKscript sets none.
DEFAULTS = ScoringOptions()
