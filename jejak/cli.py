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
from jejak.witness.cli import app as witness_app  # noqa: E402 - typer only; the witness loads its code per command

app.add_typer(witness_app, name="witness")

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
def open_ledger(store: str | None, *, create: bool = False) -> Iterator[Any]:
    """The ledger of an existing store (exit 2 naming what is missing); only
    `ingest` and `init` pass `create=True`."""
    from jejak.ledger import Ledger, LedgerError
    from jejak.secrets import SecretsError
    from jejak.store.datastore import StoreError
    from jejak.store.url import StoreURLError

    try:
        ledger = Ledger.open(settings_for(store), create=create)
    except (StoreError, StoreURLError, SecretsError) as exc:
        fail(str(exc), 1 if create else EXIT_USAGE)
    except LedgerError as exc:
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

    with open_ledger(store, create=True) as ledger:
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


@app.command()
def init(store: Optional[str] = StoreOption) -> None:
    """Create an empty store and its keys (as `ingest` does); an existing one is left as it is."""
    from jejak.transparency import Transparency

    with open_ledger(store, create=True) as ledger:
        try:
            Transparency(ledger.store, ledger.settings).keyring()  # the dev profile creates the signing key
        except FileNotFoundError as exc:
            fail(str(exc), EXIT_USAGE)
        size = ledger.store.log_size()
        typer.echo(json.dumps({"store": ledger.store.url.describe(), "size": size,
                               "keys_dir": str(ledger.settings.resolved_keys_dir())}))


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
    lang: str = typer.Option("en", "--lang", help="Language of `detail`: en (SPEC's text) or id (Indonesian)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Anomalies, JSONL (SPEC §4)."""
    from jejak.anomaly_text import LANGUAGES, in_language
    from jejak.reports import Reports

    from jejak.projections.engine import RULES

    day = _parse_date(as_of)
    if rule is not None and rule not in RULES:
        fail(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
    _check_digits16("--kk", kk)
    _check_digits16("--nik", nik)
    if lang not in LANGUAGES:
        fail(f"--lang must be one of {', '.join(LANGUAGES)}, got {lang!r}")
    with open_ledger(store) as ledger:
        write_jsonl(in_language(Reports(ledger).anomalies(day, rule=rule, kk=kk, nik=nik), lang))


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
    """An existing store alone, for commands that need no personal-data secrets
    (verify, checkpoint, key); a store that is missing or cannot be opened is a
    usage error (exit 2), never "tampered"."""
    from jejak.store.datastore import Store, StoreError
    from jejak.store.url import StoreURLError

    settings = settings_for(store)
    try:
        opened = Store.open(settings.store, must_exist=True)
    except (StoreError, StoreURLError) as exc:
        fail(str(exc), EXIT_USAGE)
    try:
        yield opened, settings
    finally:
        opened.close()


def _create_when_missing(store: str | None) -> None:
    """Make an empty store and its keys (as `jejak init`) where none exists yet."""
    from jejak.store.datastore import Store, StoreError, StoreMissing
    from jejak.store.url import StoreURLError

    settings = settings_for(store)
    try:
        Store.open(settings.store, must_exist=True).close()
        return
    except StoreMissing:
        pass
    except (StoreError, StoreURLError):
        return  # open_store names the problem
    with open_ledger(store, create=True) as ledger:
        where = ledger.store.url.describe()
    typer.echo(f"jejak: no store at {where}: created an empty one with its keys (as `jejak init`)", err=True)


def _require_keys_dir(settings: Settings) -> None:
    from jejak.secrets import missing_keys_dir

    if not settings.resolved_keys_dir().is_dir():
        fail(missing_keys_dir(settings), EXIT_USAGE)


@app.command()
def verify(
    read_models: bool = typer.Option(
        False, "--read-models",
        help="Also re-derive every read model from the log and compare (exit 1 naming the first table and key that differ)"),
    store: Optional[str] = StoreOption,
) -> None:
    """Check every chain link, every Merkle node, every checkpoint and its signature (with a witness
    policy configured, their cosignatures; with --read-models, every read-model row against the log)."""
    from jejak.audit.errors import VerificationError
    from jejak.transparency import Transparency
    from jejak.witnessing import PolicyError

    with open_store(store) as (opened, settings):
        size = opened.log_size()
        try:
            with progress_bar("verify", size) as advance:
                result = Transparency(opened, settings).verify(advance)
            if read_models:
                result["read_models"] = _verify_read_models(opened)
        except VerificationError as exc:
            table = getattr(exc, "table", None)
            report: dict[str, Any] = {"intact": False, "index": exc.index, "error": str(exc)}
            if table is not None:
                report.update(read_model=table, key=list(exc.key or ()))  # type: ignore[attr-defined]
            typer.echo(json.dumps(report))
            where = f" in read model {table}" if table else "" if exc.index is None else f" at log index {exc.index}"
            typer.echo(f"jejak: TAMPERED{where}: {exc}", err=True)
            raise typer.Exit(EXIT_TAMPERED)
        except FileNotFoundError as exc:  # no verifier key for the store's checkpoints: cannot tell
            fail(str(exc), EXIT_USAGE)
        except PolicyError as exc:  # an unusable witness policy: cannot tell either
            fail(str(exc), EXIT_USAGE)
    typer.echo(json.dumps(result))


def _verify_read_models(opened: Any) -> dict[str, Any]:
    """Re-derive the read models from the (verified) log and compare them with the store's."""
    from jejak.projections.verify import ReadModelsBusy, verify_read_models
    from jejak.reports import ENGINE_VERSION

    try:
        checked = verify_read_models(opened, engine_version=ENGINE_VERSION)
    except ReadModelsBusy as exc:
        fail(str(exc), EXIT_USAGE)
    return {"intact": True, "position": checked.position, "tables": checked.tables, "rows": checked.rows}


EXIT_NO_QUORUM = 4


@app.command()
def checkpoint(
    policy: Optional[Path] = typer.Option(
        None, "--policy", help="C2SP tlog-policy file: record the checkpoint only with its witness quorum "
                               "[env JEJAK_WITNESS_POLICY]"),
    store: Optional[str] = StoreOption,
) -> None:
    """Sign, record and print the current checkpoint (C2SP tlog-checkpoint signed note).

    The log is checked first (the latest checkpoint still holds, every entry
    since is recomputed, the head extends the one the key last signed); a log
    that fails is not signed (exit 1). With a witness policy the signed note
    goes to the policy's witnesses and is recorded, with their cosignatures,
    only when the quorum is met (exit 4 otherwise, nothing recorded)."""
    from jejak.audit.errors import VerificationError
    from jejak.audit.policy import QuorumNotMet
    from jejak.transparency import Transparency

    with open_store(store) as (opened, settings):
        _require_keys_dir(settings)
        transparency = Transparency(opened, settings)
        cosigner = _policy_cosigner(transparency, policy or settings.witness_policy)
        try:
            cp = transparency.issue_checkpoint(cosigner)
        except QuorumNotMet as exc:
            for outcome in getattr(cosigner, "outcomes", []):
                state = "cosigned" if outcome.line else f"no cosignature: {outcome.reason}"
                typer.echo(f"jejak: witness {outcome.witness.name}: {state}", err=True)
            fail(f"checkpoint not recorded: {exc}", EXIT_NO_QUORUM)
        except VerificationError as exc:
            where = "" if exc.index is None else f" (first bad log index {exc.index})"
            fail(f"refusing to sign a checkpoint{where}: {exc}; run `jejak verify`", EXIT_TAMPERED)
        except OSError as exc:  # no key ring here, or the signer state cannot be written
            fail(str(exc), EXIT_USAGE)
    for outcome in getattr(cosigner, "outcomes", []):  # quorum met: say who did not cosign, and why
        if not outcome.line:
            typer.echo(f"jejak: warning: witness {outcome.witness.name}: no cosignature: {outcome.reason}", err=True)
    sys.stdout.write(cp.note)


@app.command()
def tiles(
    out_dir: Path = typer.Argument(..., help="Directory to write the C2SP tlog-tiles into"),
    store: Optional[str] = StoreOption,
) -> None:
    """Write the log up to its latest recorded checkpoint as static C2SP tlog-tiles
    (checkpoint, tile/<L>/<N>, tile/entries/<N>); re-running adds only what is new."""
    from jejak.audit.errors import VerificationError
    from jejak.tiles import TilesError, TilesWriter

    with open_store(store) as (opened, settings):
        try:
            result = TilesWriter(opened, settings, out_dir).run()
        except (TilesError, VerificationError) as exc:
            fail(str(exc), EXIT_TAMPERED)
        except OSError as exc:
            fail(f"cannot write tiles under {out_dir}: {exc}", EXIT_USAGE)
    typer.echo(json.dumps(result.as_dict()))


def _policy_cosigner(transparency: Any, path: Path | None) -> Any:
    """The witness client for a policy file (None without one); a bad policy exits 2."""
    if path is None:
        return None
    from jejak.witnessing import PolicyCosigner, PolicyError, WitnessMemory, load_policy

    settings = transparency.settings
    try:
        log_key = transparency.keyring().current_signer().verifier
        memory = WitnessMemory(settings.resolved_signer_state_dir(), settings.origin)
        return PolicyCosigner(load_policy(path, log_key), memory, settings.witness_timeout)
    except (PolicyError, FileNotFoundError) as exc:
        fail(str(exc), EXIT_USAGE)


@app.command()
def key(
    all_keys: bool = typer.Option(False, "--all", help="List every verifier key, oldest first"),
    rotate: bool = typer.Option(False, "--rotate", help="Create a new signing key; old checkpoints stay verifiable"),
    store: Optional[str] = StoreOption,
) -> None:
    """Print the checkpoint verifier key (C2SP signed-note verifier key).

    On a store that does not exist yet it first makes one, empty, as `jejak init`
    does (and says so on stderr): the log's key is what a witness is given before
    the log has any entry (SPEC §7). Keys are never created beside a store that
    exists without them."""
    from jejak.audit.keys import KeyRing
    from jejak.transparency import Transparency, keyring_path, load_keyring

    _create_when_missing(store)
    with open_store(store) as (opened, settings):
        _require_keys_dir(settings)
        if rotate:
            if keyring_path(settings).exists():
                load_keyring(settings).rotate(settings.key_name)
            else:
                KeyRing.load_or_create(keyring_path(settings), settings.key_name)
        try:
            ring = Transparency(opened, settings).keyring()
        except FileNotFoundError as exc:  # signed elsewhere, or the prod profile (which creates none)
            fail(str(exc), EXIT_USAGE)
    if all_keys:
        for text in ring.verifier_key_texts():
            typer.echo(text)
    else:
        typer.echo(ring.current_signer().verifier_key_text())


@app.command()
def prove(
    index: int = typer.Argument(..., help="0-based log index"),
    size: Optional[int] = typer.Option(
        None, "--size", help="Tree size (default: the latest checkpoint's when it covers INDEX, else the log size)"),
    proof_format: str = typer.Option("json", "--format",
                                     help="json (SPEC §2) or tlog-proof (C2SP, against the latest recorded checkpoint)"),
    store: Optional[str] = StoreOption,
) -> None:
    """RFC 9162 inclusion proof of one log entry, JSON (against the latest checkpoint
    by default); or a C2SP tlog-proof."""
    from jejak.audit.errors import VerificationError
    from jejak.transparency import NotCovered, ProofRequestError, Transparency

    if proof_format not in ("json", "tlog-proof"):
        fail(f"--format: expected json or tlog-proof, got {proof_format!r}")
    if proof_format == "tlog-proof" and size is not None:
        fail("--size does not apply to --format tlog-proof: it proves against the latest recorded checkpoint")
    with open_ledger(store) as ledger:
        transparency = Transparency(ledger.store, ledger.settings)
        try:
            if proof_format == "tlog-proof":
                sys.stdout.write(transparency.tlog_proof(index))
                return
            proof = transparency.prove(index, size if size is not None else transparency.checkpoint_size_covering(index))
        except NotCovered as exc:
            fail(str(exc), EXIT_TAMPERED)
        except ProofRequestError as exc:
            fail(str(exc))
        except VerificationError as exc:
            fail(f"{exc}; run `jejak verify`", EXIT_TAMPERED)
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
    uncovered = [0]
    try:
        with open(export_file, "rb") as lines:
            cp = verify_export(
                lines, note, keys, leaf_check=lambda leaf, entry: leaf_matches_fact(leaf, entry.get("fact")),
                on_uncovered=lambda n: uncovered.__setitem__(0, n),
            )
    except OSError as exc:
        fail(f"cannot read export {export_file}: {exc.strerror}")
    except VerificationError as exc:
        typer.echo(json.dumps({"intact": False, "index": exc.index, "error": str(exc)}))
        raise typer.Exit(EXIT_TAMPERED)
    if uncovered[0]:
        typer.echo(f"jejak: the export has {uncovered[0]} more entries (indexes {cp.size} to "
                   f"{cp.size + uncovered[0] - 1}) than the checkpoint covers: they were not checked; "
                   "verify them against a newer checkpoint", err=True)
    typer.echo(json.dumps({"intact": True, "origin": cp.origin, "size": cp.size, "root": cp.root.hex(),
                           "not_covered": uncovered[0]}))


def _log_keys(value: str) -> list[str]:
    """--log-key: the log's vkey string itself, or a file of vkey lines."""
    from jejak.audit.errors import MalformedKey
    from jejak.audit.note import Verifier

    try:
        return [Verifier.from_key_text(value).key_text()]
    except MalformedKey as exc:
        if Path(value).is_file():
            return _read_keys(value)
        fail(f"--log-key: not a verifier key ({exc}); give <name>+<hex id>+<base64 key> as `jejak key` prints it",
             EXIT_TAMPERED)
    return []


def _leaf_bytes(leaf_file: str | None) -> bytes:
    if leaf_file is not None:
        try:
            return Path(leaf_file).read_bytes()
        except OSError as exc:
            fail(f"cannot read leaf {leaf_file}: {exc.strerror}")
    if sys.stdin is None or sys.stdin.isatty():
        fail("give the leaf's raw bytes with --leaf FILE or on standard input")
    return sys.stdin.buffer.read()


@audit_app.command("verify-proof")
def audit_verify_proof(
    proof_file: str = typer.Argument(..., help="Output of `jejak prove` (JSON or --format tlog-proof); - for stdin"),
    checkpoint_file: Optional[str] = typer.Option(None, "--checkpoint", help="JSON proofs: the signed checkpoint"),
    key_file: Optional[str] = typer.Option(None, "--key", help="File with verifier key line(s)"),
    log_key: Optional[str] = typer.Option(None, "--log-key", help="The log's verifier key (vkey string)"),
    policy_file: Optional[str] = typer.Option(None, "--policy", help="C2SP tlog-policy: require its quorum of cosignatures"),
    leaf_file: Optional[str] = typer.Option(None, "--leaf", help="tlog-proof: the entry's raw leaf bytes (default: stdin)"),
) -> None:
    """Check one inclusion proof offline: a C2SP tlog-proof (checkpoint inside) or
    a JSON proof against a signed checkpoint."""
    from jejak.audit.errors import MalformedProof, VerificationError
    from jejak.audit.offline import verify_inclusion_file
    from jejak.audit.tlog_proof import is_tlog_proof, verify_tlog_proof

    if proof_file == "-" and leaf_file is None:
        fail("with the proof on standard input, give the leaf with --leaf FILE")
    raw = sys.stdin.buffer.read() if proof_file == "-" else _read_bytes(proof_file, "proof")
    if log_key is None and key_file is None:
        fail("give the log's verifier key with --log-key VKEY")
    keys = _log_keys(log_key) if log_key is not None else _read_keys(key_file)  # type: ignore[arg-type]
    quorum = _quorum_check(policy_file, keys)
    try:
        if is_tlog_proof(raw):
            parsed, cp = verify_tlog_proof(raw, _leaf_bytes(leaf_file), keys)
            if quorum is not None:
                quorum(parsed.checkpoint_note)
            result = {"valid": True, "index": parsed.index, "size": cp.size, "root": cp.root.hex()}
        else:
            try:
                proof = json.loads(raw)
            except ValueError:
                proof = None
            if not isinstance(proof, dict):
                raise MalformedProof("the proof is neither a C2SP tlog-proof (first line c2sp.org/tlog-proof@v1) "
                                     "nor a JSON object from `jejak prove`")
            if checkpoint_file is None:
                fail("a JSON proof is checked against a signed checkpoint: give --checkpoint FILE")
            leaf = None if leaf_file is None else _leaf_bytes(leaf_file)
            note = _read_text(checkpoint_file, "checkpoint")  # type: ignore[arg-type]
            cp = verify_inclusion_file(proof, note, keys, leaf=leaf)
            if quorum is not None:
                quorum(note)
            result = {"valid": True, "index": proof["index"], "size": proof["size"]}
    except VerificationError as exc:
        typer.echo(json.dumps({"valid": False, "error": str(exc)}))
        raise typer.Exit(EXIT_TAMPERED)
    typer.echo(json.dumps(result))


def _quorum_check(policy_file: str | None, log_keys: list[str]) -> Callable[[str], None] | None:
    """A check of a checkpoint note against a C2SP tlog-policy file (signature by
    the log key, the policy's quorum of cosignatures; raises QuorumNotMet); a
    policy that cannot be read or parsed exits 2."""
    if policy_file is None:
        return None
    from jejak.witnessing import PolicyError, load_policy

    try:
        policy = load_policy(Path(policy_file))
    except PolicyError as exc:
        fail(str(exc), EXIT_USAGE)
    def check(note: str) -> None:
        policy.verify_quorum(note, log_keys=log_keys)

    return check


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}")
    return b""


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


@app.command()
def monitor(
    tiles_source: str = typer.Option(..., "--tiles", help="The log's tiles: a URL prefix (http[s]://…) or a directory"),
    log_key: str = typer.Option(..., "--log-key", help="The log's verifier key (vkey string)"),
    state: Path = typer.Option(..., "--state", help="Directory keeping the last checkpoint seen"),
    policy_file: Optional[str] = typer.Option(None, "--policy", help="C2SP tlog-policy: require its quorum of cosignatures"),
    every: Optional[float] = typer.Option(None, "--every", min=0.1, help="Check again every SECONDS (until a problem)"),
) -> None:
    """Follow a log through its C2SP tlog-tiles: signature, consistency with the
    checkpoint seen last time, every new entry. Exit 0 consistent, 1 rewrite, fork
    or invalid data (both checkpoints printed), 2 could not fetch."""
    import time

    from jejak.monitor import PROBLEM, Monitor, fetcher_for

    keys = _log_keys(log_key)
    watcher = Monitor(fetcher_for(tiles_source), keys, state, _quorum_check(policy_file, keys))
    while True:
        result = watcher.check()
        typer.echo(json.dumps(result.summary(), ensure_ascii=False))
        if result.problem is not None:
            typer.echo(f"jejak: {result.problem.kind.upper()}: {result.problem}", err=True)
            for label, note in (("kept", result.kept_note), ("fetched", result.fetched_note)):
                if note is not None:
                    sys.stderr.write(f"--- {label} checkpoint ---\n{note}")
        elif result.unreachable is not None:
            typer.echo(f"jejak: could not fetch: {result.unreachable}", err=True)
        if every is None or result.exit_code == PROBLEM:
            raise typer.Exit(result.exit_code)
        sys.stdout.flush()
        time.sleep(every)


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


# -------------------------------------------------------------------- secrets

secrets_app = typer.Typer(no_args_is_help=True, help="Secrets of a deployment (master secrets, checkpoint keys).")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("init")
def secrets_init(
    directory: Path = typer.Option(..., "--dir", help="Directory to hold the secrets (e.g. ./secrets for compose)"),
) -> None:
    """Create pseudonym.key, kek.key and checkpoint-keys.json (mode 0600); existing files are kept."""
    from jejak.secrets import init_secrets_dir

    try:
        done = init_secrets_dir(directory, settings_for(None).key_name)
    except OSError as exc:
        fail(f"cannot create secrets in {directory}: {exc.strerror or exc}")
    typer.echo(json.dumps({"dir": str(directory), **done}))


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

    with open_ledger(store):  # a missing store or keys directory is told here (exit 2), not created
        pass
    settings = settings_for(store)
    from jejak.api.regions import RegionNames, RegionNamesError

    try:
        RegionNames.load(settings)
    except RegionNamesError as exc:
        fail(str(exc), EXIT_USAGE)
    # No uvicorn access log: request lines carry KK/NIK numbers in /v1 paths. Who
    # asked for whose data is recorded in the chained access log instead.
    options: dict[str, Any] = dict(host=host, port=port, log_level="info", access_log=False,
                                   http="httptools", loop="uvloop")
    import logging

    from jejak.checkpointer import CheckpointScheduler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    scheduler = CheckpointScheduler(settings).start()  # one per server, whatever the number of workers
    try:
        if workers == 1:
            uvicorn.run(create_app(settings), **options)
            return
        # Worker processes import the app themselves, so they get the store via the environment.
        os.environ["JEJAK_STORE"] = settings.store
        uvicorn.run("jejak.api.app:create_app_from_environment", factory=True, workers=workers, **options)
    finally:
        scheduler.stop()


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="inspector or reconciler"),
    name: str = typer.Option(..., "--name", help="Who holds it (unique for ever; [A-Za-z0-9._-])"),
    channel: Optional[str] = typer.Option(None, "--channel",
                                          help="Reconciler only, required: its payment channel (BRI, BNI, MANDIRI, BTN, BSI, POS)"),
    expires: Optional[str] = typer.Option(None, "--expires",
                                          help="Expiry: a duration (90d, 12h), a date (valid through it, UTC) or an ISO date-time with offset"),
    store: Optional[str] = StoreOption,
) -> None:
    """Create an API token and print it (the only time it is shown); its issue is recorded in the log."""
    from jejak.api.tokens import TokenError, create_token, parse_expiry

    with open_ledger(store) as ledger:
        try:
            until = None if expires is None else parse_expiry(expires)
            secret = create_token(ledger, name, role, channel=channel, expires=until)
        except TokenError as exc:
            fail(str(exc))
    bound = f", channel {channel}" if channel else ""
    typer.echo(f"jejak: token {name!r} ({role}{bound}) created; it is shown only once", err=True)
    typer.echo(secret)


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="Name of the token"), store: Optional[str] = StoreOption) -> None:
    """Revoke an API token by name (recorded in the log; the name is never issued again)."""
    from jejak.api.tokens import revoke_token

    with open_ledger(store) as ledger:
        if not revoke_token(ledger, name):
            fail(f"no active token named {name!r}", 1)
    typer.echo(json.dumps({"revoked": name}))


@token_app.command("list")
def token_list(store: Optional[str] = StoreOption) -> None:
    """List API tokens, JSONL: name, role, channel, created, expires, revoked (never the secrets)."""
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
