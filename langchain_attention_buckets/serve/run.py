"""``attention-buckets serve``: the settings from the command line, and uvicorn on one machine.

Owns ``settings_from_args`` and ``serve_main`` (the arguments: ``args``). The server binds
127.0.0.1 unless ``--host`` says otherwise; binding elsewhere without an API key is refused
unless ``--allow-no-key`` is given (an open endpoint runs anyone's prompts on your hardware).
"""

from __future__ import annotations

import argparse
import json
import sys

from .app import ServerSettings, create_app, wrap
from .args import API_KEY_ENV

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _bases(text: str | None):
    if text is None or text in ("paper", "auto"):
        return text
    parts = [t for t in text.split(",") if t.strip()]
    try:
        values = [float(t) for t in parts]
    except ValueError:
        raise SystemExit(f"--bases={text!r}: use 'paper', 'auto', a number or a comma-separated list of numbers") from None
    return values[0] if len(values) == 1 else values


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    kwargs = {"model": args.model, "bases": _bases(args.bases), "aggregation": args.aggregation,
              "device": args.device, "dtype": args.dtype, "max_tokens": args.max_tokens}
    if args.model_kwargs:
        try:
            kwargs["model_kwargs"] = json.loads(args.model_kwargs)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--model-kwargs is not JSON: {exc}") from None
    return ServerSettings(
        model_kwargs={k: v for k, v in kwargs.items() if v is not None},
        served_name=args.served_name, api_key=args.api_key, max_concurrent=args.max_concurrent,
        max_queue=args.max_queue, max_body_bytes=args.max_body_bytes,
    )


def check_exposure(host: str, settings: ServerSettings, allow_no_key: bool) -> None:
    if host not in LOOPBACK and not settings.api_key and not allow_no_key:
        raise SystemExit(
            f"--host {host} exposes the server beyond this machine without an API key; give --api-key "
            f"(or ${API_KEY_ENV}), or --allow-no-key if the network is yours"
        )


def serve_main(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    check_exposure(args.host, settings, args.allow_no_key)
    if args.ray:
        from .ray_app import ray_main

        return ray_main(args, settings)
    import uvicorn

    print(f"serving {settings.served_name or 'the model'} on http://{args.host}:{args.port}/v1", file=sys.stderr)
    uvicorn.run(wrap(create_app(settings), settings), host=args.host, port=args.port, log_level="info")
    return 0


class ServerThread:
    """A server running in a thread of this process (tests, benchmarks, notebooks).

    ``url`` is the base URL clients take (``http://127.0.0.1:PORT/v1``); ``stop()`` shuts it down.
    Use as a context manager, or call ``stop``.
    """

    def __init__(self, settings: ServerSettings, host: str = "127.0.0.1", port: int = 0, timeout: float = 600.0):
        import socket
        import threading
        import time

        import uvicorn

        check_exposure(host, settings, allow_no_key=False)
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.bind((host, port))  # port 0: the system picks a free one, which uvicorn then serves on
        self.app = create_app(settings)
        config = uvicorn.Config(wrap(self.app, settings), log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.port = sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:  # set once the app's startup (the weights' loading) is done
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start (see the log above)")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
