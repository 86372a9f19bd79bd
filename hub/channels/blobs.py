"""The content-addressed blob store: attachment bytes live here, their sha256 in the interaction.

Files under `<root>/<aa>/<bb>/<sha256>`: the same bytes are stored once whoever sends them. A put is
durable before it returns (fsync of the file and its directory), because the interaction that
names the blob is committed right after and a 2xx promises both.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from pathlib import Path

REF_PREFIX = "blob:sha256:"
_DIGEST = re.compile(r"[0-9a-f]{64}")


class FileBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    async def put(self, data: bytes) -> str:
        return await asyncio.to_thread(self._put, data)

    def path_of(self, ref: str) -> Path:
        """Where the blob `ref` lives; KeyError for anything but a ref this store hands out (a
        storage_ref comes in with the interaction, so it may be any text: never a path to follow)."""
        digest = ref.removeprefix(REF_PREFIX)
        if not ref.startswith(REF_PREFIX) or not _DIGEST.fullmatch(digest):
            raise KeyError(ref)
        return self.path_for(digest)

    async def get(self, ref: str) -> bytes:
        return await asyncio.to_thread(self.path_of(ref).read_bytes)

    def _put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_for(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return REF_PREFIX + digest
