"""``faceaccord serve`` and ``faceaccord platform-key``."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer
import uvicorn
from rich.console import Console

from faceaccord.cli.galleries import opened
from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.platform.keys import Role, create_key
from faceaccord.service.app import create_app


def serve(
    host: Annotated[str | None, typer.Option(help="Default: settings (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Default: settings (8000).")] = None,
) -> None:
    """Run the HTTP service (uvicorn) on the embedded defaults; OpenAPI docs at /docs. SIGTERM
    finishes the requests in flight before stopping."""
    with errors_reported(False):
        settings = load_settings()
        # uvicorn finishes the requests in flight on SIGTERM, then re-raises the signal with the
        # handler that was in place before it started: this one makes that a clean exit (0).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            create_app(settings),
            host=host or settings.service.host,
            port=port or settings.service.port,
            timeout_graceful_shutdown=settings.service.graceful_shutdown_seconds,
            log_level="warning",
        )


def platform_key(
    name: Annotated[str, typer.Option(help="The platform reviewer who will hold the key.")],
    json_output: JsonOption = False,
) -> None:
    """Create a platform reviewer's key (approves organisations and scale); shown once."""
    with errors_reported(json_output), opened() as platform:
        key, token = create_key(
            platform,
            organisation_id=None,
            name=name,
            roles=frozenset({Role.PLATFORM_REVIEWER}),
            created_by=platform.settings.resolved_actor(),
        )
        if json_output:
            print_json({**key, "token": token})
        else:
            Console().print(f"platform reviewer key for {name} (shown once):\n{token}")
