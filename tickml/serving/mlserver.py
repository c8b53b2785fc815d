"""tickml's production model as an MLServer runtime, answering V2 as tickml's /v2 does.

MLServer (1.7.0) imports this module by the `implementation` of a model-settings.json
(`tickml.serving.mlserver.TickmlRuntime`, as `tickml mlserver write` writes it), makes one
`TickmlRuntime` for the model, awaits `load()` once, then `predict()` for every V2 infer
call, REST and gRPC alike. Nothing else imports this module, so tickml itself imports
without mlserver installed.

Loading. `parameters.uri` names the registry folder (`models/`). Its production model is
loaded through `tickml.loader`, as the API's workers load it: the pointer and the sidecar
checked, no symbolic link followed below the folder, the artifact's bytes read once and
checked against their sha256 before those same bytes are unpickled, the compiled scorer
used only when it is the file recorded and still scores as the pipeline does, and the
model smoke-tested (`LoadedModel.check`). A model the loader refuses, or one that is not
the model and version the model settings name, is not served: `load()` raises with the
reason, which MLServer logs; at startup `mlserver start` then stops, and a later load
through MLServer's repository API answers the reason.

Answering. The request's tensor is read by the very functions tickml's /v2 uses
(`tickml.api.v2.input_matrix` and `requested_outputs`): one input, `transactions`, FP64
or FP32 `[rows, 30]` in schema column order, flat or one list per row, finite numbers,
at most `max_instances` rows. The answer holds `probability` (FP64, `[rows]`) and `fraud`
(BOOL, `[rows]`, probability >= threshold), or the outputs asked for, in that order,
with `model_name`, `model_version` (the registry's version) and `parameters.threshold`.
A refused request is an MLServer error carrying tickml's message and status (400, or
413 for too many rows).

What MLServer's own REST layer does otherwise: it has no binary tensor extension (send
JSON: tritonclient's `binary_data=False`), puts an `id` in every answer, limits no request
body, and serves the model it loaded until it is restarted or told to load again through
its repository API (tickml's API follows the production pointer by itself).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.logging import logger as mlserver_logger
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    Parameters,
    ResponseOutput,
)
from mlserver.utils import get_model_uri

from tickml import schema
from tickml.api.errors import ApiError
from tickml.api.v2 import OUTPUTS, input_matrix, requested_outputs
from tickml.config import get_settings
from tickml.loader import LoadedModel, load_production
from tickml.registry import ModelRegistry

log = logging.getLogger(__name__)

#: Above this many rows a request is scored in a thread, so that a large batch on the
#: pipeline path does not hold MLServer's event loop (health checks, other requests).
THREAD_ROWS = 1_000


class ModelRefused(MLServerError):
    """The production model cannot be served safely; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=422)


class TickmlRuntime(MLModel):
    """MLServer's runtime for the production model of a tickml registry.

    Reads from its model settings: `name` (the registry name it must serve),
    `parameters.uri` (the registry folder), `parameters.version` (the registry version
    it must serve; any when unset) and, in `parameters.extra`, `max_instances` (rows per
    request; default `TICKML_API_MAX_INSTANCES`) and `verification_split` (the test split
    that checks a compiled scorer built at load; default the deterministic rows).
    """

    _model: LoadedModel | None = None
    _max_instances: int = 0

    async def load(self) -> bool:
        """Load the production model through `tickml.loader`, or raise ModelRefused."""
        _log_with_mlserver()
        root = Path(await get_model_uri(self.settings))
        extra = _extra(self.settings)
        self._max_instances = int(extra.get("max_instances",
                                            get_settings().api_max_instances))
        split = extra.get("verification_split")
        try:
            # Reading, hashing and unpickling (and compiling, when no scorer is stored)
            # takes seconds: off the event loop.
            model = await asyncio.to_thread(self._load_checked, root,
                                            Path(split) if split else None)
        except Exception as exc:  # any failure means this model must not serve
            reason = f"refused the production model in {root.name}/: {exc}"
            log.error("%s", reason)
            raise ModelRefused(reason) from exc
        self._model = model
        scoring = model.scoring
        log.info("serving %s (threshold %.4f, %s path: %s)", model.ref, model.threshold,
                 scoring["path"], scoring.get("reason") or scoring.get("source"))
        return True

    def _load_checked(self, root: Path, verification_split: Path | None) -> LoadedModel:
        model = load_production(ModelRegistry(root), verification_split=verification_split)
        model.check()
        if model.ref.name != self.name:
            raise ValueError(f"production is {model.ref}, but the model settings name "
                             f"{self.name!r}")
        if self.version is not None and self.version != str(model.ref.version):
            raise ValueError(f"production is {model.ref}, but the model settings name version "
                             f"{self.version}; write them again (`tickml mlserver write`)")
        return model

    async def metadata(self) -> MetadataModelResponse:
        """As tickml's `/v2/models/{name}`: the registry version, the threshold, the columns."""
        metadata = await super().metadata()
        model = self._model
        if model is not None:
            metadata.versions = [str(model.ref.version)]
            metadata.parameters = Parameters(threshold=model.threshold,
                                             columns=list(schema.FEATURES))
        return metadata

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Score the `transactions` tensor; answer `probability` and `fraud`."""
        model = self._model
        if model is None:  # MLServer routes no request to a model whose load failed
            raise MLServerError(f"{self.name} is not loaded", status_code=503)
        request = payload.model_dump()
        try:
            matrix = input_matrix(request, b"", self._max_instances)
            outputs = requested_outputs(request)
        except ApiError as exc:
            raise MLServerError(exc.message, status_code=exc.status) from None
        if len(matrix) > THREAD_ROWS:
            probabilities = await asyncio.to_thread(model.predict_proba, matrix)
        else:
            probabilities = model.predict_proba(matrix)
        values = {"probability": probabilities, "fraud": probabilities >= model.threshold}
        return InferenceResponse(
            model_name=model.ref.name, model_version=str(model.ref.version),
            parameters=Parameters(threshold=model.threshold),
            outputs=[ResponseOutput(name=name, datatype=OUTPUTS[name],
                                    shape=[len(values[name])], data=values[name].tolist())
                     for name, _binary in outputs])


def _extra(settings: Any) -> dict[str, Any]:
    parameters = settings.parameters
    return dict(parameters.extra or {}) if parameters is not None else {}


def _log_with_mlserver() -> None:
    """Send tickml's log lines (loads, refusals, the compiled path) to MLServer's log.

    MLServer configures a handler on its own logger only; without this, tickml's
    warnings would reach stderr unformatted and its information not at all.
    """
    tickml_logger = logging.getLogger("tickml")
    if tickml_logger.handlers:
        return
    for handler in mlserver_logger.handlers:
        tickml_logger.addHandler(handler)
    tickml_logger.setLevel(logging.INFO)
