"""Check KServe manifests against the KServe Python SDK's own models, strictly.

    python check_kserve_manifests.py FILE.yaml [FILE.yaml ...]

Runs in the KServe SDK's environment (`make kserve-sdk`: kserve 0.21.0 cannot share
tickml's, see scripts/install-kserve-sdk.sh), never in tickml's. For each file it prints
`ok FILE: ...` or `FAIL FILE: <path in the manifest>: <what is wrong>`, and exits 1 when
any file fails.

Why not `kserve.ApiClient().deserialize()`: it reads only the keys a class declares and
silently drops any other (a misspelt `storageURI` comes back as `storage_uri` None), and
it cannot build the Kubernetes 37 classes a ServingRuntime embeds. So every key is
checked here against the class's `attribute_map` (kserve's generated classes and the
Kubernetes client's alike), scalars against their declared types, and the objects are
then built: kserve's setters refuse a required field left out, Kubernetes' pydantic
models a missing or malformed one.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path
from typing import Any

import kserve
import kubernetes.client.models as kubernetes_models
import pydantic
import yaml

#: (apiVersion, kind) of the manifests this checks, and the SDK class of each.
KINDS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): kserve.V1alpha1ServingRuntime,
    ("serving.kserve.io/v1beta1", "InferenceService"): kserve.V1beta1InferenceService,
}
#: kserve's generated classes write `list[X]` and `dict(str, X)`; Kubernetes' `List[X]`
#: and `Dict[str, X]`.
LIST = re.compile(r"[Ll]ist\[(?P<item>.+)\]")
DICT = re.compile(r"dict\(str, (?P<item>.+)\)|Dict\[str, (?P<item2>.+)\]")
#: Kubernetes quantities and other strings are often written as YAML numbers.
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str, int, float), "int": (int,), "float": (int, float), "bool": (bool,),
    "datetime": (str,), "date": (str,),
}


class ManifestError(ValueError):
    """A manifest the SDK's models do not accept; the message names where."""


def sdk_class(name: str) -> type:
    """The kserve or Kubernetes model class called `name`."""
    found = getattr(kserve.models, name, None) or getattr(kubernetes_models, name, None)
    if found is None:
        raise ManifestError(f"the SDK has no class {name}")
    return found


def check(value: Any, declared: str, where: str) -> None:
    """Raise ManifestError for a key `declared`'s class lacks, or a value of the wrong type."""
    if value is None or declared == "object":
        return
    if match := LIST.fullmatch(declared):
        if not isinstance(value, list):
            raise ManifestError(f"{where}: a list is expected, not {value!r}")
        for index, item in enumerate(value):
            check(item, match["item"], f"{where}[{index}]")
        return
    if match := DICT.fullmatch(declared):
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: a mapping is expected, not {value!r}")
        for key, item in value.items():
            check(item, match["item"] or match["item2"], f"{where}.{key}")
        return
    if declared in SCALARS:
        allowed = SCALARS[declared]
        if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
            raise ManifestError(f"{where}: {value!r} is not of type {declared}")
        return
    cls = sdk_class(declared)
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: a {declared} mapping is expected, not {value!r}")
    attributes = {key: attribute for attribute, key in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in attributes:
            close = ([k for k in attributes if k.lower() == key.lower()]
                     or difflib.get_close_matches(key, attributes, n=1))
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ManifestError(f"{where}.{key}: not a field of {declared}{hint}")
        check(item, cls.openapi_types[attributes[key]], f"{where}.{key}")


def build(value: Any, declared: str, where: str) -> Any:
    """The SDK object for `value`, already checked; required fields are enforced here."""
    if value is None or declared == "object" or declared in SCALARS:
        return value
    if match := LIST.fullmatch(declared):
        return [build(item, match["item"], f"{where}[{i}]") for i, item in enumerate(value)]
    if match := DICT.fullmatch(declared):
        return {key: build(item, match["item"] or match["item2"], f"{where}.{key}")
                for key, item in value.items()}
    cls = sdk_class(declared)
    if hasattr(cls, "model_validate"):  # the Kubernetes client's models are pydantic
        try:
            return cls.model_validate(value)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                 for e in exc.errors())
            raise ManifestError(f"{problems} ({declared})") from None
    attributes = {key: attribute for attribute, key in cls.attribute_map.items()}
    fields = {attributes[key]: build(item, cls.openapi_types[attributes[key]], f"{where}.{key}")
              for key, item in value.items()}
    try:
        return cls(**fields)
    except ValueError as exc:  # kserve's setters: a required field left out
        raise ManifestError(f"{where}: {exc} ({declared})") from None


def load(path: Path) -> Any:
    """The checked SDK object of the one manifest in `path`."""
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise ManifestError(f"one manifest per file is expected, found {len(documents)}")
    manifest = documents[0]
    cls = KINDS.get((manifest.get("apiVersion"), manifest.get("kind")))
    if cls is None:
        raise ManifestError(f"{manifest.get('apiVersion')} {manifest.get('kind')} is not one "
                            f"of {sorted(f'{a} {k}' for a, k in KINDS)}")
    check(manifest, cls.__name__, manifest["kind"])
    return build(manifest, cls.__name__, manifest["kind"])


def describe(resource: Any) -> str:
    """One line on what was checked."""
    if isinstance(resource, kserve.V1beta1InferenceService):
        model = resource.spec.predictor.model
        return (f"InferenceService {resource.metadata.name}: runtime {model.runtime}, format "
                f"{model.model_format.name}, protocol {model.protocol_version}, "
                f"storageUri {model.storage_uri}")
    container = resource.spec.containers[0]
    return (f"ServingRuntime {resource.metadata.name}: formats "
            f"{[f.name for f in resource.spec.supported_model_formats]}, protocols "
            f"{resource.spec.protocol_versions}, image {container.image}")


def main(paths: list[str]) -> int:
    failed = 0
    for name in paths:
        try:
            print(f"ok {name}: {describe(load(Path(name)))}")
        except (ManifestError, OSError, yaml.YAMLError) as exc:
            print(f"FAIL {name}: {exc}")
            failed += 1
    return 1 if failed or not paths else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
