"""The play page in a real browser, for the play tests: ``dreamer-train play`` run as a user runs it (a
subprocess; its URL read from the line it prints), headless Chromium (Debian's, driven by playwright), and what
the page's canvas shows read back cell by cell."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from playwright.sync_api import Page, sync_playwright

from conftest import cli_command

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


class Server:
    """``dreamer-train play ARGS…`` in a fresh process; ``stop`` sends the Ctrl-C a user would."""

    def __init__(self, *args: str, cwd: Path):
        env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
        self.process = subprocess.Popen([*cli_command("dreamer-train"), "play", *args], cwd=cwd, env=env,
                                        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stderr], daemon=True).start()
        self.url = None
        while self.url is None:
            line = self.lines.get(timeout=120)
            if "http://" in line:
                self.url = line[line.index("http://"):].split()[0]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)


@contextmanager
def browser_page(url: str) -> Iterator[Page]:
    """A fresh headless Chromium page on ``url``; a JavaScript error on the page fails the block when it ends."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        yield page
        assert not errors, errors
        browser.close()


def read_canvas(page, canvas: str) -> np.ndarray:
    """The frame a canvas shows, one pixel from the middle of each upscaled cell: (H, W, 3) uint8."""
    height, width, values = page.evaluate("""(id) => {
        const c = document.getElementById(id), s = Number(c.dataset.scale);
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, out = [];
        for (let y = 0; y < c.height / s; y++) for (let x = 0; x < c.width / s; x++) {
            const i = ((y * s + (s >> 1)) * c.width + x * s + (s >> 1)) * 4;
            out.push(data[i], data[i + 1], data[i + 2]);
        }
        return [c.height / s, c.width / s, out];
    }""", canvas)
    return np.array(values, dtype=np.uint8).reshape(height, width, 3)


def wait_step(page, step: int, kind: str = "imagined") -> None:
    """Until the page shows frame ``step`` of ``kind`` ("context", "imagined" or "replay")."""
    page.wait_for_function("([n, kind]) => { const c = document.getElementById('imagined'); "
                           "return Number(c.dataset.step) === n && c.dataset.kind === kind; }", arg=[step, kind])
