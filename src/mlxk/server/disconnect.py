"""Cancel a request's handler the moment its client goes away (pure ASGI, every route).

A generation holds a batch slot until its handler lets go of it. Streaming
handlers only learn of a lost client when a write fails, and a non-streaming one
never writes before the end, so without help an abandoned request decodes to its
``max_tokens``. ``DisconnectMiddleware`` reads the request body first (bounded by
``BodyLimitMiddleware``), replays it to the app, then listens on the connection:
an ``http.disconnect`` before the response's last byte cancels the handler task.
The handler's ``finally`` blocks (``generation.Session.close``) then take the
sequence out of the batch at the scheduler's next step, well within a second.

The scope gets ``CLIENT_GONE`` set so the request metrics count it as 499 (the
status nginx uses for "client closed request") rather than as a server error.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CLIENT_GONE = "mlxk.client_gone"


class DisconnectMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: list[Message] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope[CLIENT_GONE] = True
                return
            body.append(message)
            if not message.get("more_body"):
                break
        gone = asyncio.Event()
        complete = False

        async def replay() -> Message:
            if body:
                return body.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def tracking_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, replay, tracking_send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if not complete and not handler.done():
                scope[CLIENT_GONE] = True
                handler.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if not scope.get(CLIENT_GONE) or (me is not None and me.cancelling()):
                raise
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
