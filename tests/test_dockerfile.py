"""The image runs unprivileged, says whether it is alive, keeps attachment bytes on a volume, and is
built on a precisely pinned base; docker-compose.yml mounts that volume. Read from the files, as
CI has no Docker daemon (.ci/run validates docker-compose.yml with docker-compose where it can)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def last(name: str) -> str:
    values = [rest for word, rest in instructions() if word == name]
    assert values, f"the Dockerfile has no {name}"
    return values[-1]


def env() -> dict[str, str]:
    found = {}
    for word, rest in instructions():
        if word == "ENV":
            found.update(pair.split("=", 1) for pair in shlex.split(rest))
    return found


def test_the_hub_runs_as_an_unprivileged_user():
    user = last("USER").split(":")[0]
    assert user not in ("root", "0", "")
    words = [word for word, _ in instructions()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")  # nothing runs as root after it
    assert words[-1] == "CMD"


def test_healthcheck_asks_healthz():
    check = last("HEALTHCHECK")
    assert re.search(r"--start-period=\d+s", check) and "CMD" in check
    assert "http://127.0.0.1:8080/healthz" in check  # the port the CMD serves on
    command = json.loads(last("CMD"))
    assert command[command.index("--port") + 1] == "8080"


def test_attachment_blobs_live_on_a_volume_the_compose_file_mounts():
    blob_dir = env()["OMNIHUB_BLOB_DIR"]  # the setting hub/channels/blobs.py stores them under
    volumes = [v for word, rest in instructions() if word == "VOLUME" for v in yaml.safe_load(rest)]
    assert blob_dir in volumes
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    hub = compose["services"]["hub"]
    mounted = {entry.split(":")[1]: entry.split(":")[0] for entry in hub.get("volumes", [])}
    assert mounted.get(blob_dir) in compose["volumes"]
    assert env()["OMNIHUB_DATABASE_URL"].startswith("sqlite+aiosqlite:////var/lib/omnihub/")  # writable by the user


def test_the_base_image_is_pinned_to_a_patch_release():
    base = instructions()[0]
    assert base[0] == "FROM"
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base[1]), base[1]
