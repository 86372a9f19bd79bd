"""placeholder"""
from __future__ import annotations
from typing import Any
from .topology import Topology
def document(t: Topology | None = None) -> dict[str, Any]:
    return {"asyncapi": "3.0.0", "info": {"title": "omnihub", "version": "0.1.0"}}
