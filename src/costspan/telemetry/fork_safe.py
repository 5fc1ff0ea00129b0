"""Locks that are given back to a forked child.

A forked child has only the forking thread: a lock another thread of the parent held at fork time
would never open again, and the child would hang at its first use. Objects registered here get a
fresh `_lock` in the child (the data the lock guards is copied as it was).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_HOLDERS: weakref.WeakSet[Any] = weakref.WeakSet()


def reopen_lock_after_fork(holder: Any) -> None:
    """Register an object whose `_lock` attribute is a `threading.Lock`."""
    _HOLDERS.add(holder)


def _reopen_locks_in_child() -> None:
    for holder in list(_HOLDERS):
        holder._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reopen_locks_in_child)
