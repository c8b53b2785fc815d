"""The README's curl examples of `/`, `/test` and the positional `/predict`, run as written.

The commands are read from the README block marked for this test, the port is
substituted, and each runs in bash against a real gunicorn server. The keys that the
README's `# {...}` output comments show must be in the real answers.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from typing import Any

import numpy as np
import pytest

from tests.api.conftest import Server
from tests.conftest import ROOT
from tickml.api import sample
from tickml.loader import LoadedModel

MARKER = "<!-- tests/api/test_readme_examples.py runs the commands of the next block -->"
README_PORT = "localhost:5000"


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    assert MARKER in text, "the README lost the block of tested curl examples"
    block = text.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def commands_and_outputs(lines: list[str]) -> list[tuple[str, str]]:
    """(command, the comment lines after it) for each command; multi-line commands joined."""
    pairs: list[tuple[str, str]] = []
    pending: list[str] = []
    for line in lines:
        if not pending and line.startswith("#"):
            command, comment = pairs[-1]
            pairs[-1] = (command, comment + line.lstrip("# ") + "\n")
            continue
        pending.append(line)
        command = "\n".join(pending)
        if not command.endswith("\\") and complete(command):
            pairs.append((command, ""))
            pending = []
    assert not pending, f"an unfinished command in the README: {pending}"
    return pairs


def complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


COMMANDS = commands_and_outputs(readme_block())


def keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys(v) for v in value))
    return set()


def run(command: str, server: Server) -> dict[str, Any]:
    assert README_PORT in command
    port = server.url.rsplit(":", 1)[1]
    out = subprocess.run(["bash", "-c", command.replace(README_PORT, f"127.0.0.1:{port}")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_readme_shows_root_test_and_positional_predict() -> None:
    paths = [re.search(r"localhost:5000(/\S*)", command).group(1) for command, _ in COMMANDS]
    assert paths == ["/", "/test", "/predict"]
    assert '"features": [' in COMMANDS[2][0]


@pytest.mark.parametrize(("command", "shown"), COMMANDS,
                         ids=[c.split()[2] for c, _ in COMMANDS])
def test_a_readme_command_answers_as_shown(server: Server, model: LoadedModel,
                                           command: str, shown: str) -> None:
    body = run(command, server)
    assert set(re.findall(r'"(\w+)":', shown)) <= keys(body), shown
    if "features" in command.split("-d", 1)[-1] and "/predict" in command:
        sent = json.loads(shlex.split(command)[-1])["features"]
        (prediction,) = body["predictions"]
        assert prediction["probability"] == model.predict_proba(np.array([sent]))[0]
        assert sent == list(sample.FEATURES.values())  # the README shows the built-in sample
    elif command.rstrip().endswith("/test"):
        assert body["prediction"]["probability"] == model.predict_proba(sample.matrix())[0]
    else:
        assert body["model"] == model.summary()
        assert {"docs", "predict", "v2"} <= set(body["links"])
