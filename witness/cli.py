"""`jejak witness …` (also the console script `jejak-witness`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

EXIT_USAGE = 2

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="A C2SP tlog-witness: cosigns checkpoints of trusted logs that extend what it cosigned before.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

StateOption = typer.Option(..., "--state", help="The witness's state directory (its key and database)")


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"jejak witness: {message}", err=True)
    raise typer.Exit(code)


def _open(directory: Path):
    from .state import WitnessState, WitnessStateError

    try:
        return WitnessState(directory)
    except WitnessStateError as exc:
        _fail(str(exc))


@app.command()
def init(
    name: str = typer.Option(..., "--name", help="The witness's key name, e.g. witness.bpk.go.id/1"),
    state: Path = StateOption,
) -> None:
    """Create a witness (its own Ed25519 key and state); print its verifier key (type 0x04) last."""
    from .state import WitnessStateError, init_state

    try:
        signer = init_state(state, name)
    except WitnessStateError as exc:
        _fail(str(exc))
    typer.echo(f"jejak witness: created {signer.name} in {state}; give this verifier key to the logs' policies:",
               err=True)
    typer.echo(signer.verifier_key_text())


@app.command("add-log")
def add_log(
    vkey: str = typer.Argument(..., help="The log's checkpoint verifier key (`jejak key`); its name is the origin"),
    state: Path = StateOption,
) -> None:
    """Trust a log by its verifier key (type 0x01); its origin is the key's name."""
    from jejak.audit.errors import MalformedKey
    from jejak.audit.note import Verifier

    try:
        verifier = Verifier.from_key_text(vkey)
    except MalformedKey as exc:
        _fail(f"not a log verifier key: {exc}")
    opened = _open(state)
    try:
        added = opened.add_log(verifier)
    finally:
        opened.close()
    typer.echo(json.dumps({"origin": verifier.name, "added": added}))


@app.command()
def serve(
    state: Path = StateOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(7380, "--port", min=1, max=65535, help="TCP port"),
) -> None:
    """Serve C2SP tlog-witness `POST /add-checkpoint`."""
    import uvicorn

    from .app import create_app

    opened = _open(state)
    typer.echo(f"jejak witness: {opened.signer.verifier_key_text()} on http://{host}:{port}/add-checkpoint",
               err=True)
    try:
        uvicorn.run(create_app(opened), host=host, port=port, log_level="warning", access_log=False)
    finally:
        opened.close()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
