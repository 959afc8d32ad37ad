"""What every command shares: the --json option, settings, printing, and error reporting."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from faceaccord.errors import (
    ConfigurationError,
    FaceAccordError,
    InputError,
    ModelError,
    PolicyDeniedError,
    QualityRejectedError,
)
from faceaccord.settings import Settings

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError(f"invalid FACEACCORD_ settings: {exc}") from None


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def exit_code(error: FaceAccordError) -> int:
    if isinstance(error, QualityRejectedError):
        return 4
    if isinstance(error, InputError):
        return 3
    if isinstance(error, ModelError | ConfigurationError):
        return 5
    if isinstance(error, PolicyDeniedError):
        return 6
    return 1


@contextmanager
def errors_reported(as_json: bool) -> Iterator[None]:
    """Turn errors into one line (or one JSON object) on stderr and an exit code; never a
    traceback, unless FACEACCORD_DEBUG is set."""
    try:
        yield
    except PolicyDeniedError as error:
        _report(error.code, error.message, as_json, extra={"decision": error.decision.as_dict()})
        raise typer.Exit(exit_code(error)) from None
    except QualityRejectedError as error:
        reasons = [str(reason) for reason in error.reasons]
        _report(error.code, error.message, as_json, extra={"reasons": reasons})
        raise typer.Exit(exit_code(error)) from None
    except FaceAccordError as error:
        _report(error.code, error.message, as_json)
        raise typer.Exit(exit_code(error)) from None
    except (typer.Exit, typer.Abort, typer.BadParameter, KeyboardInterrupt):
        raise
    except Exception as error:
        if os.environ.get("FACEACCORD_DEBUG"):
            raise
        _report("internal_error", f"{type(error).__name__}: {error}", as_json)
        raise typer.Exit(1) from None


def _report(code: str, message: str, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    if as_json:
        payload = {"error": {"code": code, "message": message, **(extra or {})}}
        print(json.dumps(payload), file=sys.stderr)
    else:
        Console(stderr=True).print(f"[red]error[/red] ({code}): {message}", highlight=False)
