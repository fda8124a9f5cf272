"""Sharing equal strings between decoded objects, for the components that keep many
objects in memory (informers, the scheduler's cache, the controller manager)."""

from __future__ import annotations

import sys
from typing import Any

_intern = sys.intern


def intern_strings(node: Any) -> Any:
    """`node` with its string values replaced by interned copies, in place. Thousands of
    pods repeat the same images, label values, condition types and timestamps; a decoder
    makes a new string for each, and sharing them is a third of a pod's memory."""
    if isinstance(node, dict):
        for k, v in node.items():
            if type(v) is str:
                node[k] = _intern(v)
            elif isinstance(v, dict | list):
                intern_strings(v)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            if type(v) is str:
                node[i] = _intern(v)
            elif isinstance(v, dict | list):
                intern_strings(v)
    return node
