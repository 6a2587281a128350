"""The `jejak` command line (SPEC §2)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import orjson
import typer

from jejak.jsonout import json_bytes
from jejak.settings import Settings

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,  # never print local variables (they may hold personal data)
    no_args_is_help=True,
    help="jejak: a tamper-evident accountability ledger for social assistance (bansos).",
    context_settings={"help_option_names": ["-h", "--help"]},
)
audit_app = typer.Typer(no_args_is_help=True, help="Offline verification for inspectors (no database needed).")
app.add_typer(audit_app, name="audit")

EXIT_OK, EXIT_TAMPERED, EXIT_USAGE, EXIT_REJECTED = 0, 1, 2, 3

StoreOption = typer.Option(None, "--store", help="Store: SQLite file path or postgresql://… URL [env JEJAK_STORE]")

_global: dict[str, Any] = {"store": None}


@app.callback()
def main_callback(store: Optional[str] = StoreOption) -> None:
    _global["store"] = store


def settings_for(store: str | None) -> Settings:
    from pydantic import ValidationError

    chosen = store or _global["store"]
    try:
        return Settings(store=chosen) if chosen else Settings()
    except ValidationError as exc:
        secret = {name for name, info in Settings.model_fields.items() if not info.repr}  # never echoed
        problems = "; ".join(
            f"JEJAK_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            + ("" if error["loc"] and error["loc"][0] in secret else f" (got {error['input']!r})")
            for error in exc.errors())
        fail(f"bad configuration: {problems}", EXIT_USAGE)
        raise  # not reached: fail() exits


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"jejak: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def open_ledger(store: str | None) -> Iterator[Any]:
    from jejak.ledger import Ledger, LedgerError
    from jejak.secrets import SecretsError
    from jejak.store.datastore import StoreError
    from jejak.store.url import StoreURLError

    try:
        ledger = Ledger.open(settings_for(store))
    except (StoreError, StoreURLError, SecretsError, LedgerError) as exc:
        fail(str(exc), 1)
    try:
        yield ledger
    finally:
        ledger.close()


def write_jsonl(rows: Any) -> None:
    out = sys.stdout.buffer
    try:
        for row in rows:
            out.write(json_bytes(row))
            out.write(b"\n")
        out.flush()
    except BrokenPipeError:  # the reader (e.g. `head`) has all it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(EXIT_OK) from None


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""
    with _progress(description, total) as (progress, task):
        yield (lambda n: progress.advance(task, n)) if progress else (lambda n: None)


@contextlib.contextmanager
def settle_bar() -> Iterator[Callable[[int, int], None]]:
    """The bar of a projector settle: its total is known only once it starts."""
    with _progress("anomaly scopes", None) as (progress, task):
        def advance(n: int, total: int) -> None:
            progress.update(task, total=total)
            progress.advance(task, n)
        yield advance if progress else (lambda n, total: None)


@contextlib.contextmanager
def _progress(description: str, total: int | None) -> Iterator[tuple[Any, Any]]:
    if not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=True,
    ) as progress:
        yield progress, progress.add_task(description, total=total)


# ---------------------------------------------------------------------- ingest


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


@app.command()
def ingest(
    file: str = typer.Argument(..., help="JSONL file of SPEC facts, or - for standard input"),
    store: Optional[str] = StoreOption,
) -> None:
    """Record facts; print a JSON summary; rejections go to stderr as JSON lines."""
    from jejak.ledger import UnusableInput, bounded_lines
    from jejak.projections.runner import Projector

    if file == "-":
        source: Any = sys.stdin.buffer
        total = None
    else:
        path = Path(file)
        if not file or path.is_dir():
            fail(f"cannot read {file}: it is a directory" if file else "no file given (use - for standard input)",
                 EXIT_USAGE)
        if not path.exists():
            fail(f"cannot read {file}: no such file", EXIT_USAGE)
        try:
            source = path.open("rb")  # a regular file, or a pipe such as /dev/stdin or <(zcat f.gz)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror}", EXIT_USAGE)
        total = _count_lines(path) if sys.stderr.isatty() and path.is_file() else None

    def report(rejection: Any) -> None:
        sys.stderr.write(orjson.dumps(rejection.to_dict()).decode() + "\n")

    with open_ledger(store) as ledger:
        with progress_bar("ingest", total) as advance:
            try:
                summary = ledger.ingest_lines(bounded_lines(source, ledger.settings.max_line_bytes),
                                             on_rejection=report, on_progress=advance)
            except UnusableInput as exc:
                fail(str(exc), EXIT_USAGE)
            except _store_failures() as exc:
                fail(f"recording stopped, the store failed: {_first_line(exc)}. Every batch committed before "
                     "stays recorded and none is half-written: re-run the same command to record the rest "
                     "(facts already recorded count as duplicates)", 1)
            finally:
                if source is not sys.stdin.buffer:
                    source.close()
            projector = Projector(ledger.store)
            projector.catch_up()
        with settle_bar() as settled:
            projector.settle(settled)
    sys.stderr.flush()
    typer.echo(json.dumps(summary.to_dict()))
    raise typer.Exit(EXIT_REJECTED if summary.rejected else EXIT_OK)


def _store_failures() -> tuple[type[BaseException], ...]:
    """What a lost or failing database raises (the library's, the drivers')."""
    import sqlite3

    import psycopg
    from eventsourcing.persistence import PersistenceError

    return PersistenceError, psycopg.Error, sqlite3.Error


def _first_line(exc: BaseException) -> str:
    from jejak.domain.errors import mask_sixteen_digit_runs

    text = str(exc).strip().splitlines()
    return mask_sixteen_digit_runs(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))


# -------------------------------------------------------------------- reports


@app.command()
def balances(
    kk: Optional[str] = typer.Option(None, "--kk", help="Only this family card (16 digits)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Balances per (kk, program), JSONL (SPEC §3)."""
    from jejak.reports import Reports

    _check_digits16("--kk", kk)
    with open_ledger(store) as ledger:
        write_jsonl(Reports(ledger).balances(kk))


def _check_digits16(option: str, value: str | None) -> None:
    if value is not None and not re.fullmatch(r"[0-9]{16}", value):
        fail(f"{option} must be exactly 16 digits")


def _parse_date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of must be a date YYYY-MM-DD, got {value!r}")
    return None


@app.command()
def anomalies(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Evaluate the log as of this date (YYYY-MM-DD)"),
    rule: Optional[str] = typer.Option(None, "--rule", help="Only this rule"),
    kk: Optional[str] = typer.Option(None, "--kk", help="Only anomalies touching this family card"),
    nik: Optional[str] = typer.Option(None, "--nik", help="Only anomalies touching this person"),
    store: Optional[str] = StoreOption,
) -> None:
    """Anomalies, JSONL (SPEC §4)."""
    from jejak.reports import Reports

    from jejak.projections.engine import RULES

    day = _parse_date(as_of)
    if rule is not None and rule not in RULES:
        fail(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    _check_digits16("--kk", kk)
    _check_digits16("--nik", nik)
    with open_ledger(store) as ledger:
        write_jsonl(Reports(ledger).anomalies(day, rule=rule, kk=kk, nik=nik))


@app.command()
def rebuild(store: Optional[str] = StoreOption) -> None:
    """Drop the read models and replay the whole log into them."""
    from jejak.projections.runner import Projector

    with open_ledger(store) as ledger:
        size = ledger.store.log_size()
        projector = Projector(ledger.store)
        with progress_bar("rebuild", size) as advance:
            replayed = projector.replay(advance)
        with settle_bar() as settled:
            projector.settle(settled)
    typer.echo(json.dumps({"replayed": replayed}))


# --------------------------------------------------------------- transparency


@contextlib.contextmanager
def open_store(store: str | None) -> Iterator[tuple[Any, Settings]]:
    """The store alone, for commands that need no secrets (verify, checkpoint);
    a store that cannot be opened is a usage error (exit 2), never "tampered"."""
    from jejak.store.datastore import Store, StoreError
    from jejak.store.url import StoreURLError

    settings = settings_for(store)
    try:
        opened = Store.open(settings.store)
    except (StoreError, StoreURLError) as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        yield opened, settings
    finally:
        opened.close()


@app.command()
def verify(store: Optional[str] = StoreOption) -> None:
    """Check every chain link, every Merkle node, every checkpoint and its signature."""
    from jejak.audit.errors import VerificationError
    from jejak.transparency import Transparency

    with open_store(store) as (opened, settings):
        size = opened.log_size()
        try:
            with progress_bar("verify", size) as advance:
                result = Transparency(opened, settings).verify(advance)
        except VerificationError as exc:
            typer.echo(json.dumps({"intact": False, "index": exc.index, "error": str(exc)}))
            where = "" if exc.index is None else f" at log index {exc.index}"
            typer.echo(f"jejak: TAMPERED{where}: {exc}", err=True)
            raise typer.Exit(EXIT_TAMPERED)
        except FileNotFoundError as exc:  # no verifier key for the store's checkpoints: cannot tell
            fail(str(exc), EXIT_USAGE)
    typer.echo(json.dumps(result))


@app.command()
def checkpoint(store: Optional[str] = StoreOption) -> None:
    """Sign, record and print the current checkpoint (C2SP tlog-checkpoint signed note).

    The log is checked first (the latest checkpoint still holds, every entry
    since is recomputed); a log that fails is not signed (exit 1)."""
    from jejak.audit.errors import VerificationError
    from jejak.transparency import Transparency

    with open_store(store) as (opened, settings):
        try:
            cp = Transparency(opened, settings).issue_checkpoint()
        except VerificationError as exc:
            where = "" if exc.index is None else f" (first bad log index {exc.index})"
            fail(f"refusing to sign a checkpoint{where}: {exc}; run `jejak verify`", EXIT_TAMPERED)
        except FileNotFoundError as exc:
            fail(str(exc), EXIT_USAGE)
    sys.stdout.write(cp.note)


def _latest_checkpoint_key(settings: Settings) -> str | None:
    """The key id of the store's latest checkpoint, if the store exists and has one
    (looked at without creating anything)."""
    from jejak.store.datastore import Store
    from jejak.store.url import parse_store_url
    from jejak.transparency import Transparency

    try:
        url = parse_store_url(settings.store)
        if url.kind == "sqlite" and (url.path == ":memory:" or not Path(url.path).is_file()):
            return None
        opened = Store.open(settings.store, create=False)
    except Exception:  # no such store: nothing was signed
        return None
    try:
        last = Transparency(opened, settings).latest_checkpoint()
    except Exception:  # a store without the table has no checkpoint
        return None
    finally:
        opened.close()
    return None if last is None else last.key_id


@app.command()
def key(
    all_keys: bool = typer.Option(False, "--all", help="List every verifier key, oldest first"),
    rotate: bool = typer.Option(False, "--rotate", help="Create a new signing key; old checkpoints stay verifiable"),
    store: Optional[str] = StoreOption,
) -> None:
    """Print the checkpoint verifier key (C2SP signed-note verifier key)."""
    from jejak.transparency import KeyRingElsewhere, keyring_path, load_keyring, load_store_keyring

    settings = settings_for(store)
    if rotate:
        path = keyring_path(settings)
        if path.exists():
            ring = load_keyring(settings)
            ring.rotate(settings.key_name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            from jejak.audit.keys import KeyRing

            KeyRing.load_or_create(path, settings.key_name)
    try:
        ring = load_store_keyring(settings, lambda: _latest_checkpoint_key(settings))
    except KeyRingElsewhere as exc:
        fail(str(exc), EXIT_USAGE)
    except FileNotFoundError as exc:  # the prod profile creates none
        fail(str(exc), 1)
    if all_keys:
        for text in ring.verifier_key_texts():
            typer.echo(text)
    else:
        typer.echo(ring.current_signer().verifier_key_text())


@app.command()
def prove(
    index: int = typer.Argument(..., help="0-based log index"),
    size: Optional[int] = typer.Option(None, "--size", help="Tree size (default: the current log size)"),
    store: Optional[str] = StoreOption,
) -> None:
    """RFC 9162 inclusion proof of one log entry, JSON."""
    from jejak.transparency import ProofRequestError, Transparency

    with open_ledger(store) as ledger:
        try:
            proof = Transparency(ledger.store, ledger.settings).prove(index, size)
        except ProofRequestError as exc:
            fail(str(exc))
    typer.echo(json.dumps(proof))


@app.command()
def consistency(
    old_size: int = typer.Argument(..., help="Size of the older tree"),
    new_size: Optional[int] = typer.Argument(None, help="Size of the newer tree (default: current)"),
    store: Optional[str] = StoreOption,
) -> None:
    """RFC 9162 consistency proof between two tree sizes, JSON."""
    from jejak.transparency import ProofRequestError, Transparency

    with open_ledger(store) as ledger:
        try:
            proof = Transparency(ledger.store, ledger.settings).consistency(old_size, new_size)
        except ProofRequestError as exc:
            fail(str(exc))
    typer.echo(json.dumps(proof))


@app.command()
def export(
    public: bool = typer.Option(False, "--public", help="Tokens instead of personal data (for publication)"),
    with_chain: bool = typer.Option(False, "--with-chain", help="Add each entry's chain hash (lets offline checks name the first bad line)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Every log entry in order: {index, leaf (base64 of the hashed bytes), fact}."""
    from jejak.ledger import LedgerError

    with open_ledger(store) as ledger:
        try:
            write_jsonl(ledger.export(public=public, with_chain=with_chain))
        except LedgerError as exc:
            fail(str(exc), 1)


@app.command()
def erase(
    nik: str = typer.Argument(..., help="The person's NIK (16 digits)"),
    order: str = typer.Option(..., "--order", help="Reference of the erasure order (e.g. court or agency letter)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Destroy one person's personal data (crypto-shredding); the log stays verifiable."""
    from jejak.ledger import LedgerError
    from jejak.projections.runner import Projector

    with open_ledger(store) as ledger:
        try:
            result = ledger.erase(nik, order)
        except LedgerError as exc:
            fail(str(exc), 1)
        Projector(ledger.store).catch_up()
    typer.echo(json.dumps(result))


# ---------------------------------------------------------------------- feeds

feed_app = typer.Typer(no_args_is_help=True, help="Kafka feeds with banks and PT Pos (CloudEvents 1.0, JSON).")
app.add_typer(feed_app, name="feed")

BootstrapOption = typer.Option("127.0.0.1:9092", "--bootstrap", help="Kafka bootstrap HOST:PORT")


def _run_feed(kind: str, store: str | None, bootstrap: str, once: bool) -> None:
    import logging
    import threading

    from jejak.feeds.consumer import consume_inbound, stop_on_signals
    from jejak.feeds.publisher import Publisher
    from jejak.projections.runner import Projector

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    stop = threading.Event()
    stop_on_signals(stop)
    if kind == "consume":
        result = consume_inbound(lambda: open_ledger(store), bootstrap, once=once, stop_event=stop)
        with open_ledger(store) as ledger:
            Projector(ledger.store).catch_up()
    else:
        with open_ledger(store) as ledger:
            result = Publisher(ledger, bootstrap).run(once=once, stop_event=stop)
    typer.echo(json.dumps(result))


@feed_app.command("publish")
def feed_publish(
    bootstrap: str = BootstrapOption,
    once: bool = typer.Option(False, "--once", help="Publish what is in the log, then exit"),
    store: Optional[str] = StoreOption,
) -> None:
    """Publish every disbursement order to jejak.disbursements.<channel> (outbox, resumes after a crash)."""
    _run_feed("publish", store, bootstrap, once)


@feed_app.command("consume")
def feed_consume(
    bootstrap: str = BootstrapOption,
    once: bool = typer.Option(False, "--once", help="Drain the topic, then exit"),
    store: Optional[str] = StoreOption,
) -> None:
    """Record settlements, pickups and returns from jejak.settlements, complaints and resolutions from
    jejak.complaints (CloudEvents, type = fact type); rejects go to jejak.rejects."""
    _run_feed("consume", store, bootstrap, once)


@app.command()
def reconcile(
    channel: str = typer.Option(..., "--channel", help="BRI, BNI, MANDIRI, BTN, BSI or POS"),
    period: Optional[str] = typer.Option(None, "--period", help="Only this period string"),
    fmt: str = typer.Option("json", "--format", help="json or csv"),
    bootstrap: Optional[str] = typer.Option(None, "--bootstrap", help="Also publish to jejak.reconciliation"),
    store: Optional[str] = StoreOption,
) -> None:
    """Reconcile one channel's orders with its settlements, pickups and returns."""
    from jejak.domain.facts import CHANNELS
    from jejak.feeds.reconcile import reconcile as run_reconcile
    from jejak.feeds.reconcile import to_csv
    from jejak.projections.readmodels import load_fact_rows
    from jejak.projections.runner import Projector

    if channel not in CHANNELS:
        fail(f"--channel must be one of {', '.join(sorted(CHANNELS))}, got {channel!r}")
    if fmt not in ("json", "csv"):
        fail(f"--format must be json or csv, got {fmt!r}")
    with open_ledger(store) as ledger:
        Projector(ledger.store).catch_up()
        reports = run_reconcile(load_fact_rows(ledger.store), channel, period)
    if bootstrap:
        from jejak.feeds.publisher import default_producer_factory

        producer = default_producer_factory(bootstrap)
        for r in reports:
            producer.send("jejak.reconciliation", key=f"{r['channel']}:{r['period']}".encode(), value=json_bytes(r))
        producer.flush()
        producer.close()
    if fmt == "csv":
        sys.stdout.write(to_csv(reports))
    else:
        write_jsonl(reports)


# -------------------------------------------------------------------- offline


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}")
    return ""


def _read_keys(path: str) -> list[str]:
    return [line.strip() for line in _read_text(path, "key file").splitlines() if line.strip()]


@audit_app.command("verify-export")
def audit_verify_export(
    export_file: str = typer.Argument(..., help="Output of `jejak export`"),
    checkpoint_file: str = typer.Option(..., "--checkpoint", help="Signed checkpoint note"),
    key_file: str = typer.Option(..., "--key", help="File with verifier key line(s)"),
) -> None:
    """Recompute chain and Merkle root from an export and check the signed checkpoint."""
    from jejak.audit.errors import VerificationError
    from jejak.audit.offline import verify_export
    from jejak.store.leaf import leaf_matches_fact

    note = _read_text(checkpoint_file, "checkpoint")
    keys = _read_keys(key_file)
    try:
        with open(export_file, "rb") as lines:
            cp = verify_export(
                lines, note, keys, leaf_check=lambda leaf, entry: leaf_matches_fact(leaf, entry.get("fact"))
            )
    except OSError as exc:
        fail(f"cannot read export {export_file}: {exc.strerror}")
    except VerificationError as exc:
        typer.echo(json.dumps({"intact": False, "index": exc.index, "error": str(exc)}))
        raise typer.Exit(EXIT_TAMPERED)
    typer.echo(json.dumps({"intact": True, "origin": cp.origin, "size": cp.size, "root": cp.root.hex()}))


@audit_app.command("verify-proof")
def audit_verify_proof(
    proof_file: str = typer.Argument(..., help="Output of `jejak prove`"),
    checkpoint_file: str = typer.Option(..., "--checkpoint"),
    key_file: str = typer.Option(..., "--key"),
) -> None:
    """Check one inclusion proof against a signed checkpoint."""
    from jejak.audit.errors import VerificationError
    from jejak.audit.offline import verify_inclusion_file

    proof = json.loads(_read_text(proof_file, "proof"))
    try:
        verify_inclusion_file(proof, _read_text(checkpoint_file, "checkpoint"), _read_keys(key_file))
    except VerificationError as exc:
        typer.echo(json.dumps({"valid": False, "error": str(exc)}))
        raise typer.Exit(EXIT_TAMPERED)
    typer.echo(json.dumps({"valid": True, "index": proof["index"], "size": proof["size"]}))


@audit_app.command("verify-consistency")
def audit_verify_consistency(
    proof_file: str = typer.Argument(..., help="Output of `jejak consistency`"),
    old_checkpoint: str = typer.Option(..., "--old"),
    new_checkpoint: str = typer.Option(..., "--new"),
    key_file: str = typer.Option(..., "--key"),
) -> None:
    """Prove that the newer checkpoint's log extends the older one's without rewriting it."""
    from jejak.audit.errors import VerificationError
    from jejak.audit.offline import verify_consistency_file

    proof = json.loads(_read_text(proof_file, "proof"))
    try:
        verify_consistency_file(
            proof, _read_text(old_checkpoint, "checkpoint"), _read_text(new_checkpoint, "checkpoint"), _read_keys(key_file)
        )
    except VerificationError as exc:
        typer.echo(json.dumps({"consistent": False, "error": str(exc)}))
        raise typer.Exit(EXIT_TAMPERED)
    typer.echo(json.dumps({"consistent": True, "size1": proof["size1"], "size2": proof["size2"]}))


# ------------------------------------------------------------------- generate


@app.command()
def generate(
    families: int = typer.Option(1000, "--families", min=1, help="Number of families (KPM)"),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same bytes)"),
    plant: bool = typer.Option(False, "--plant", help="Plant irregularities of every anomaly rule"),
    out: str = typer.Option("-", "--out", "-o", help="Output JSONL file (default: standard output)"),
    expected: Optional[str] = typer.Option(None, "--expected", help="With --plant: write the expected anomalies here"),
) -> None:
    """Write realistic SPEC facts for one kota (for the demo and benchmarks)."""
    from jejak.generate import write_files

    write_files(families=families, seed=seed, out_path=out, plant=plant, expected_path=expected)


# ----------------------------------------------------------------- http api

token_app = typer.Typer(no_args_is_help=True, help="API bearer tokens (only their SHA-256 is stored).")
app.add_typer(token_app, name="token")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Worker processes (e.g. one per core); each opens its own connections"),
    store: Optional[str] = StoreOption,
) -> None:
    """Serve the inspector API (/v1), the public API (/public/v1) and the public page (/)."""
    import uvicorn

    from jejak.api.app import create_app

    settings = settings_for(store)
    # No uvicorn access log: request lines carry KK/NIK numbers in /v1 paths. Who
    # asked for whose data is recorded in the chained access log instead.
    options: dict[str, Any] = dict(host=host, port=port, log_level="info", access_log=False,
                                   http="httptools", loop="uvloop")
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    # Worker processes import the app themselves, so they get the store via the environment.
    os.environ["JEJAK_STORE"] = settings.store
    uvicorn.run("jejak.api.app:create_app_from_environment", factory=True, workers=workers, **options)


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="inspector or reconciler"),
    name: str = typer.Option(..., "--name", help="Who holds it (unique; [A-Za-z0-9._-])"),
    store: Optional[str] = StoreOption,
) -> None:
    """Create an API token and print it (the only time it is shown)."""
    from jejak.api.tokens import TokenError, create_token

    with open_ledger(store) as ledger:
        try:
            secret = create_token(ledger.store, name, role)
        except TokenError as exc:
            fail(str(exc))
    typer.echo(f"jejak: token {name!r} ({role}) created; it is shown only once", err=True)
    typer.echo(secret)


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="Name of the token"), store: Optional[str] = StoreOption) -> None:
    """Revoke an API token by name."""
    from jejak.api.tokens import revoke_token

    with open_ledger(store) as ledger:
        if not revoke_token(ledger.store, name):
            fail(f"no active token named {name!r}", 1)
    typer.echo(json.dumps({"revoked": name}))


@token_app.command("list")
def token_list(store: Optional[str] = StoreOption) -> None:
    """List API tokens (names, roles, dates; never the secrets)."""
    from jejak.api.tokens import list_tokens

    with open_ledger(store) as ledger:
        write_jsonl(list_tokens(ledger.store))


def main() -> None:
    import os

    try:
        app()
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one clear line, no locals
        if os.environ.get("JEJAK_DEBUG") == "1":
            raise
        sys.stderr.write(f"jejak: internal error: {type(exc).__name__}: {exc} (set JEJAK_DEBUG=1 for a traceback)\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
