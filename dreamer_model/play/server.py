"""The play server: a static page and one WebSocket per player (starlette, served by uvicorn).

Per connection a ``PlaySession`` generates one frame per tick (the store's frames/s unless ``--fps``)
in a worker thread, so the event loop keeps reading the page's messages meanwhile. A tick that takes
longer than its interval delays the next one (no bursts to catch up) and every frame says whether
generation keeps up; the player's keys go through ``LatestAction``, never a queue.

Server → page messages: ``hello`` (controls, episodes, K, context, tick rate), ``frame`` (pixels as
base64 RGB, the real frame while replaying, the action, generation frames/s), ``recording`` (a
download URL), ``status`` and ``error`` (a message the page could not be served; the session lives on).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..errors import ModelError
from .latest import LatestAction
from .messages import Command, MessageError, parse
from .recording import Recorder, encode_video, save_recording
from .session import Frame, PlaySession
from .world import World

STATIC = Path(__file__).parent / "static"
KEEP_RECORDINGS = 4  # recordings kept in memory for download
MAX_STEPS_WANTED = 16  # "step" clicks not yet generated that are kept; more are dropped
FPS_SMOOTHING = 0.8  # weight of the previous estimate in the generation frames/s average


@dataclass(frozen=True)
class PlayOptions:
    episode: str
    start: int
    context: int
    steps: int | None = None
    seed: int = 0
    fps: float | None = None  # tick rate; None: the store's frames/s
    out: str | None = None  # where recordings are also saved; None: nowhere on disk


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a ``ModelError`` saying the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ModelError(f"cannot listen on {host}:{port}: {error.strerror or error} (is the port in use? "
                         f"choose another with --port)") from None
    sock.listen(16)
    return sock


def _pixels(image) -> str:
    return base64.b64encode(image.tobytes()).decode("ascii")


class Player:
    """One WebSocket's session: the tick loop and the handling of the page's commands."""

    def __init__(self, ws: WebSocket, world: World, options: PlayOptions, recordings: OrderedDict):
        self.ws, self.world, self.options, self.recordings = ws, world, options, recordings
        self.session = PlaySession(world, options.context, options.steps, options.seed)
        self.tick = 1.0 / (options.fps or world.fps)
        self.latest = LatestAction()
        self.paused, self.steps_wanted = False, 0
        self.wake = asyncio.Event()
        self.busy = asyncio.Lock()  # one session operation at a time
        self.sending = asyncio.Lock()
        self.gen_fps: float | None = None
        self.behind = False
        self.recorder: Recorder | None = None

    async def send(self, message: dict) -> None:
        async with self.sending:
            await self.ws.send_json(message)

    async def show(self, frame: Frame) -> None:
        if self.recorder is not None:
            self.recorder.add(frame.image, frame.real)
        h, w = frame.image.shape[:2]
        await self.send({
            "type": "frame", "width": w, "height": h, "image": _pixels(frame.image),
            "real": _pixels(frame.real) if frame.real is not None else None, "step": frame.step,
            "action": frame.action, "kind": frame.kind, "gen_fps": self.gen_fps, "tick_fps": 1.0 / self.tick,
            "behind": self.behind, "paused": self.paused, "replaying": self.session.replaying,
            "recording": self.recorder is not None, "episode": self.session.episode_id,
            "start": self.session.start_frame, "context": self.session.context})

    async def hello(self) -> None:
        observation = self.world.manifest.get("observation", {})
        await self.send({
            "type": "hello", "controls": self.world.controls.page(), "episodes": self.world.episodes(
                self.options.context), "heldout": self.world.heldout, "context": self.session.context,
            "K": self.session.steps, "tick_fps": 1.0 / self.tick, "world_model_step": self.world.step,
            "source": (self.world.manifest.get("source") or {}).get("kind"), "game": observation.get("game"),
            "height": observation.get("height"), "width": observation.get("width")})

    async def run(self) -> None:
        await self.ws.accept()
        async with self.busy:
            frame = await asyncio.to_thread(self.session.begin, self.options.episode, self.options.start)
        await self.hello()
        await self.show(frame)
        ticker = asyncio.create_task(self.ticks())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(parse(message.get("text", message.get("bytes")), self.world.controls))
                except (MessageError, ModelError) as error:
                    await self.send({"type": "error", "message": str(error)})
        except WebSocketDisconnect:
            pass
        finally:
            ticker.cancel()

    async def ticks(self) -> None:
        due = time.monotonic()
        while True:
            while self.paused and not self.steps_wanted:
                await self.wake.wait()
                self.wake.clear()
                due = time.monotonic()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with self.busy:  # held until the frame is sent: a reset or pause meanwhile waits for it
                if self.paused and not self.steps_wanted:  # paused while this tick waited: no frame
                    continue
                self.steps_wanted = max(0, self.steps_wanted - 1)
                if self.session.replaying and self.session.replay_left <= 0:
                    self.paused = True
                    await self.send({"type": "status", "message": "the recorded actions end here: reset or play on"})
                    self.session.replaying = False
                    continue
                began = time.monotonic()
                try:
                    frame = await asyncio.to_thread(self.session.advance, self.latest.take())
                except ModelError as error:
                    self.paused = True
                    await self.send({"type": "error", "message": str(error)})
                    continue
                took = time.monotonic() - began
                rate = 1.0 / max(took, 1e-6)
                self.gen_fps = rate if self.gen_fps is None else (FPS_SMOOTHING * self.gen_fps
                                                                  + (1 - FPS_SMOOTHING) * rate)
                self.behind = took > self.tick
                await self.show(frame)
            due = max(due + self.tick, time.monotonic())  # a late tick delays the next: no catch-up burst

    def _resume(self) -> None:
        self.wake.set()

    async def handle(self, command: Command) -> None:
        kind = command.type
        if kind == "action":
            self.latest.set(command.action)
        elif kind in ("pause", "resume"):
            self.paused = kind == "pause"
            self._resume()
            await self.send({"type": "status", "message": "paused" if self.paused else "playing"})
        elif kind == "step":
            self.paused, self.steps_wanted = True, min(self.steps_wanted + 1, MAX_STEPS_WANTED)
            self._resume()
        elif kind in ("reset", "replay", "start"):
            async with self.busy:
                if kind == "start":
                    frame = await asyncio.to_thread(self.session.begin, command.episode, command.start)
                else:
                    frame = await asyncio.to_thread(self.session.reset, kind == "replay")
                self.latest = LatestAction()
            await self.show(frame)
        elif kind == "record":
            await self.record(command)

    async def record(self, command: Command) -> None:
        if command.on:
            self.recorder = Recorder()
            await self.send({"type": "status", "message": "recording"})
            return
        recorder, self.recorder = self.recorder, None
        if recorder is None or not recorder.frames:
            raise MessageError("record: nothing recorded (start a recording first)")
        fps = 1.0 / self.tick
        data = await asyncio.to_thread(lambda: encode_video(recorder.panels(), command.format, fps))
        saved = None
        if self.options.out:
            saved = await asyncio.to_thread(save_recording, self.options.out, data, command.format)
        token = secrets.token_urlsafe(12)
        self.recordings[token] = (data, command.format)
        while len(self.recordings) > KEEP_RECORDINGS:
            self.recordings.popitem(last=False)
        await self.send({"type": "recording", "url": f"recording/{token}.{command.format}",
                         "format": command.format, "frames": len(recorder.frames), "bytes": len(data),
                         "saved": saved.name if saved else None})


def create_app(world: World, options: PlayOptions) -> Starlette:
    recordings: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
    names = itertools.count()

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def recording(request):
        token, _, fmt = request.path_params["name"].partition(".")
        if token not in recordings or recordings[token][1] != fmt:
            return Response("no such recording", status_code=404)
        data, fmt = recordings[token]
        media = "image/gif" if fmt == "gif" else "video/mp4"
        return Response(data, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="play-{next(names)}.{fmt}"'})

    async def websocket(ws: WebSocket):
        await Player(ws, world, options, recordings).run()

    async def no_icon(request):
        return Response(status_code=204)

    return Starlette(routes=[Route("/", index), Route("/favicon.ico", no_icon), Route("/recording/{name}", recording),
                             WebSocketRoute("/ws", websocket), Mount("/static", StaticFiles(directory=STATIC))])


def serve(world: World, options: PlayOptions, sock: socket.socket) -> None:
    """Serve the page on the bound socket until Ctrl-C."""
    import uvicorn

    config = uvicorn.Config(create_app(world, options), log_level="warning", ws="websockets-sansio", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
