"""The options a TICKscript can set on `@fraud()`, and their validation.

Example::

    @fraud()
        .url('http://127.0.0.1:5000')
        .batchSize(200)
        .maxWait(50ms)
        .timeout(2s)
        .retryFor(5s)
        .threshold(0.5)
        .keepFeatures(FALSE)

Each option is bounded, so whoever can connect to the agent cannot make it hold an
unbounded queue or wait without end:

- `url`: the agent's own API URL (`--api-url`, else `TICKML_API_URL`) or one listed in
  `TICKML_UDF_ALLOWED_URLS`; default the agent's own. Either tickml's API (batches go
  to its `/predict`) or an Open Inference Protocol endpoint whose path ends in
  `/v2/models/<name>/infer` (see `tickml.udf.wire`).
- `batchSize`: 1 to 10,000 points (`MAX_BATCH`); default 200.
- `maxWait`: 0 to 10 s (`MAX_WAIT_SECONDS`); default 50 ms.
- `timeout`: above 0, at most 60 s (`MAX_TIMEOUT_SECONDS`); default 2 s.
- `retryFor`: 0 to 300 s (`MAX_RETRY_SECONDS`); default 5 s.
- `threshold`: 0.0 to 1.0; default the model's own.
- `maxPending`: `batchSize` to 10,000 points (`MAX_PENDING`); default 10,000.
- `keepFeatures`: TRUE to copy the transaction's features (those that are numbers, as
  floats) into each scored point; default FALSE, lean points that carry the id, the
  label, the tags and the score fields only (`schema.scored_transaction_fields`).

A value out of range fails the task's Init with a message naming the option and its
bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from tickml.config import Settings
from tickml.udf import udf_pb2

NANOS_PER_SECOND = 1_000_000_000
MAX_BATCH = 10_000
MAX_WAIT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 60
MAX_RETRY_SECONDS = 300
#: Points one connection holds at most (a point takes about 5 kB in the agent).
MAX_PENDING = 10_000
#: Characters of a refused value repeated in an error message.
SHOWN_CHARACTERS = 80


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
    keep_features: bool = False  # scored points carry the features too
    # The agent's own, not a TICKscript option: seconds between look-ups of the URL's
    # host name, for its replicas (see tickml.udf.replicas).
    resolve_interval: float = Settings.api_resolve_interval


#: TICKscript name → (dataclass field, Kapacitor value type).
OPTION_TYPES: dict[str, tuple[str, int]] = {
    "url": ("url", udf_pb2.STRING),
    "batchSize": ("batch_size", udf_pb2.INT),
    "maxWait": ("max_wait", udf_pb2.DURATION),
    "timeout": ("timeout", udf_pb2.DURATION),
    "retryFor": ("retry_for", udf_pb2.DURATION),
    "threshold": ("threshold", udf_pb2.DOUBLE),
    "maxPending": ("max_pending", udf_pb2.INT),
    "keepFeatures": ("keep_features", udf_pb2.BOOL),
}


class OptionsError(ValueError):
    """One or more options are invalid; the message lists all of them."""


def describe_options(info: udf_pb2.InfoResponse) -> None:
    """Declare every option, with its single value type, in an InfoResponse."""
    for name, (_, value_type) in OPTION_TYPES.items():
        info.options[name].valueTypes.append(value_type)


def parse_options(
    options: list[udf_pb2.Option], defaults: ScoringOptions, allowed_urls: Iterable[str] = ()
) -> ScoringOptions:
    """Apply the Init request's options over `defaults` and validate the result.

    Args:
        options: the Init request's options.
        defaults: the agent's own options; its `url` is always allowed.
        allowed_urls: further API URLs a task's `.url()` may name.

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
    if "url" in values and not problems_with_url(parsed.url):
        problems.extend(url_not_allowed(parsed.url, [defaults.url, *allowed_urls]))
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
    problems = problems_with_url(options.url)
    if not 1 <= options.batch_size <= MAX_BATCH:
        problems.append(f"batchSize must be between 1 and {MAX_BATCH}, got {options.batch_size}")
    if not 0 <= options.max_wait <= MAX_WAIT_SECONDS:
        problems.append(f"maxWait must be between 0s and {MAX_WAIT_SECONDS}s, "
                        f"got {options.max_wait:g}s")
    if not 0 < options.timeout <= MAX_TIMEOUT_SECONDS:
        problems.append(f"timeout must be above 0s and at most {MAX_TIMEOUT_SECONDS}s, "
                        f"got {options.timeout:g}s")
    if not 0 <= options.retry_for <= MAX_RETRY_SECONDS:
        problems.append(f"retryFor must be between 0s and {MAX_RETRY_SECONDS}s, "
                        f"got {options.retry_for:g}s")
    if options.threshold is not None and not 0 <= options.threshold <= 1:
        problems.append(f"threshold must be between 0.0 and 1.0, got {options.threshold:g}")
    if options.max_pending > MAX_PENDING:
        problems.append(f"maxPending must be at most {MAX_PENDING}, got {options.max_pending}")
    elif options.max_pending < options.batch_size:
        problems.append(
            f"maxPending ({options.max_pending}) must be at least batchSize ({options.batch_size})"
        )
    return problems


def problems_with_url(url: str) -> list[str]:
    """Why `url` is not an http(s) URL, if it is not."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.netloc) and parts.port != 0
    except ValueError:  # a port that is not a number, a malformed IPv6 host
        ok = False
    if ok:
        return []
    return [f"url must be an http(s) URL like 'http://api:5000', got {_show(url)}"]


def url_not_allowed(url: str, allowed: Iterable[str]) -> list[str]:
    """A problem when `url` is none of `allowed` (compared without a trailing slash)."""
    allowed = [a for a in allowed if a]
    if normalized_url(url) in {normalized_url(a) for a in allowed}:
        return []
    return [f"url must be the agent's model API ({', '.join(allowed)}) or a URL listed in "
            f"TICKML_UDF_ALLOWED_URLS, got {_show(url)}"]


def normalized_url(url: str) -> str:
    """`url` with its scheme and host in lower case and no trailing slash."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def _show(value: str) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."


#: The options a task gets when its TICKscript sets none.
DEFAULTS = ScoringOptions()
