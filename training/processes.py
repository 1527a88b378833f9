"""Worker processes that die with the process that started them.

A pool's workers outlive a parent killed with `kill -9`: measured here, two zoo workers went on
building for over an hour after their parent was gone, and could have published organisms nobody
asked for any more. On Linux a worker asks the kernel to kill it when its parent dies
(PR_SET_PDEATHSIG); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request: go now
        os.kill(os.getpid(), signal.SIGKILL)


def single_threaded_worker() -> None:
    """Initializer for pool workers: one torch thread, and gone when the parent is."""
    import torch

    die_with_parent()
    torch.set_num_threads(1)
