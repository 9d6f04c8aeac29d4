"""Worker-process hygiene shared by every process pool of ours (ingest, collect)."""

from __future__ import annotations

import os
import signal
import threading
import time


def init_worker(parent_pid: int, ignore_interrupts: bool = True) -> None:
    """Pool initializer: leave Ctrl-C to the parent, and exit when the parent is gone.

    A pool worker whose parent was killed (SIGKILL, OOM) would otherwise wait on its task queue
    forever, because it holds that queue's write end itself.
    """
    if ignore_interrupts:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
