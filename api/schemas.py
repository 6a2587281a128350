"""Response models of both APIs. They are views, never storage rows."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    where: str
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. not_found, invalid_request, unauthorized")
    message: str = Field(description="what went wrong, for people")
    problems: Optional[list[Problem]] = None


class Health(BaseModel):
    status: Literal["ok"]
    log_size: int
    checkpoint_size: Optional[int]
    read_models: Literal["ok", "unchecked", "off"] = Field(
        description="the last re-derivation of the read models from the log agreed (ok), none has finished yet "
                    "(unchecked), or checks are off (JEJAK_READ_MODEL_CHECK_INTERVAL=0)")


# ------------------------------------------------------------------ transparency


class CheckpointOut(BaseModel):
    origin: str
    size: int
    root_hex: str
    root_base64: str
    note: str = Field(description="the signed note (C2SP tlog-checkpoint), verbatim")
    key_id: str
    seq: int
    created: str


class VerifierKeys(BaseModel):
    current: Optional[str] = Field(description="verifier key of the current signing key")
    keys: list[str] = Field(description="every verifier key, oldest first (C2SP signed-note form)")


class InclusionProof(BaseModel):
    index: int
    size: int
    leaf_hash: str = Field(description="hex SHA-256(0x00 || leaf)")
    proof: list[str] = Field(description="hex node hashes, RFC 9162 order")
    root: str = Field(description="hex root of the tree of this size")


class ConsistencyProof(BaseModel):
    size1: int
    size2: int
    proof: list[str]
    root1: str
    root2: str


# -------------------------------------------------------------------- public data


class Amounts(BaseModel):
    ordered: int
    credited: int
    collected: int
    returned: int


class AggregateCell(BaseModel):
    level: Literal["kota", "kecamatan", "desa"]
    region: Optional[str] = Field(description="region code prefix (4, 6 or 10 digits); null = no eligibility decision known")
    program: str
    period: str
    suppressed: bool = Field(description="true when hidden: every count is null")
    suppressed_because: Optional[Literal["small", "protects_another"]] = Field(
        None, description="`small`: fewer than `min_families` families; `protects_another`: hidden so that a small "
                          "cell cannot be worked out by subtracting published cells from their total")
    region_name: Optional[str] = Field(None, description="kecamatan or desa (kelurahan) name of the region code")
    families: Optional[int]
    orders: Optional[int]
    amounts: Optional[Amounts]
    anomalies: Optional[dict[str, int]] = Field(description="anomaly count by rule")


class AggregatesOut(BaseModel):
    level: Literal["kota", "kecamatan", "desa"]
    min_families: int
    items: list[AggregateCell]
    next_cursor: Optional[str]


class ProgramTotals(BaseModel):
    """Sums of the program's published kota cells (hidden ones are left out)."""
    program: str
    suppressed: bool
    hidden_cells: int = Field(0, description="kota cells (periods) left out of these totals because they are hidden")
    families: Optional[int]
    orders: Optional[int]
    amounts: Optional[Amounts]


class SummaryOut(BaseModel):
    log_size: int
    checkpoint_size: Optional[int]
    min_families: int
    programs: list[ProgramTotals]
    periods: list[str]
    regions: list[str] = Field(description="kecamatan codes with at least `min_families` families")
    region_names: dict[str, str] = Field(default_factory=dict, description="names of the `regions` codes")
    anomalies: dict[str, int] = Field(description="anomaly count by rule, whole log")


Level = Literal["kota", "kecamatan", "desa"]
Suppression = Optional[Literal["small", "protects_another"]]


class ComplaintCellOut(BaseModel):
    """Complaints (SPEC v2 §6) of one region, category and month (of date(filed.at))."""
    level: Level
    region: str = Field(description="region code prefix (4, 6 or 10 digits) of the complaint's `region`")
    region_name: Optional[str] = Field(None, description="kecamatan or desa (kelurahan) name of the region code")
    category: str
    month: str = Field(description="YYYY-MM of the complaint's local date")
    suppressed: bool = Field(description="true when hidden: every count is null")
    suppressed_because: Suppression = Field(
        None, description="`small`: fewer than `min_complaints` complaints; `protects_another`: hidden so that a "
                          "small cell cannot be worked out by subtracting published cells from their total")
    filed: Optional[int]
    resolved: Optional[int] = Field(description="complaints a resolution names")
    open: Optional[int]
    overdue: Optional[int] = Field(description="open for more than `complaint_days` days at `as_of`")
    median_days_to_resolve: Optional[float] = Field(
        description="median of the days from the complaint's local date to its latest resolution's; null when none "
                    "is resolved")


class ComplaintAggregatesOut(BaseModel):
    level: Level
    min_complaints: int
    as_of: Optional[str] = Field(description="the date `overdue` is judged at: the latest fact's local date")
    complaint_days: int
    items: list[ComplaintCellOut]
    next_cursor: Optional[str]


class RegisterMatchRow(BaseModel):
    """Orders whose recipient was on a register (SPEC v2 §5) in one region and program, summed over the
    published aid cells (periods) of the region; hidden ones are left out."""
    level: Level
    region: Optional[str] = Field(description="region code prefix; null = no eligibility decision known")
    region_name: Optional[str] = None
    program: str
    suppressed: bool = Field(description="true when every aid cell (period) of the region and program is hidden")
    published_cells: int = Field(description="aid cells (periods) counted")
    hidden_cells: int = Field(description="aid cells (periods) left out because they are hidden")
    matches: Optional[dict[str, int]] = Field(
        description="orders that fired each rule: `asn_recipient`, `barred_recipient`, `flagged_recipient`")


class RegisterMatchesOut(BaseModel):
    level: Level
    min_families: int
    items: list[RegisterMatchRow]
    next_cursor: Optional[str]


class ReceiptAmounts(BaseModel):
    ordered: int
    credited: int
    failed: int
    collected: int
    returned: int


class ReceiptCheckpoint(BaseModel):
    size: int
    root_hex: str
    note: str


class PublicReceipt(BaseModel):
    order_id: str
    program: str
    period: str
    channel: str
    status: Literal["ordered", "failed", "credited", "partly_collected", "collected"]
    amounts: ReceiptAmounts
    index: int = Field(description="log index of the order")
    leaf: str = Field(description="base64 of the exact bytes hashed into the log")
    proof: Optional[InclusionProof] = Field(description="inclusion proof against the latest checkpoint; null until one covers it")
    checkpoint: Optional[ReceiptCheckpoint]


# ---------------------------------------------------------------------- inspector


class ReceiptIssued(BaseModel):
    order_id: str
    code: str
    check_path: str


class FactEntry(BaseModel):
    index: int = Field(description="log index")
    fact_id: str
    type: str
    at: str
    chain: str = Field(description="hex chain hash after this entry")
    fact: dict[str, Any] = Field(description="the fact as received (personal fields revealed unless erased)")
    proof: Optional[InclusionProof] = None


class ErasureOut(BaseModel):
    """A person's personal data was destroyed (crypto-shredded) by order: their facts show tokens."""

    order: Optional[str] = Field(description="reference of the erasure order")
    at: Optional[str] = Field(description="when the erasure was recorded")
    fact_id: str = Field(description="the `jejak.erasure` fact")
    index: Optional[int] = Field(description="its log index")


class TrailOut(BaseModel):
    subject: Literal["family", "person"]
    checkpoint_size: Optional[int]
    items: list[FactEntry]
    next_cursor: Optional[str]
    erased: Optional[ErasureOut] = Field(None, description="person trails: set when the person was erased")


class BalanceRow(BaseModel):
    kk: str
    program: str
    ordered: int
    credited: int
    picked_up: int
    returned: int
    outstanding: int


class BalancesOut(BaseModel):
    items: list[BalanceRow]
    next_cursor: Optional[str]


class AnomalyRow(BaseModel):
    rule: str
    primary: str
    subject: str
    facts: list[str]
    detail: str
    program: Optional[str]
    period: Optional[str]
    region: Optional[str]


class AnomaliesOut(BaseModel):
    as_of: Optional[str]
    items: list[AnomalyRow]
    next_cursor: Optional[str]


class AccessRow(BaseModel):
    seq: int
    at: str
    token_name: str
    role: str
    subject_token: Optional[str]
    reason: str
    path: str
    log_fact: Optional[str] = Field(description="id of the jejak.access fact recording this in the chained log")


class AccessLogOut(BaseModel):
    items: list[AccessRow]
    next_cursor: Optional[str]


class ComplaintRow(BaseModel):
    complaint_id: str
    at: str
    channel: str
    category: str
    region: str
    kk: Optional[str]
    nik: Optional[str]
    disbursement: Optional[str] = Field(description="the order the complaint names, if any")
    companion: Optional[str]
    text: Optional[str]
    status: Literal["open", "closed"]
    outcome: Optional[str] = Field(description="outcome of the latest resolution in ledger order")
    resolutions: list[str] = Field(description="ids of the resolutions naming it, in ledger order")
    days_open: Optional[int] = Field(description="open: days from its date to the as-of date")
    overdue: bool = Field(description="open for more than the complaint_days threshold (SPEC v2 §6)")


class ComplaintsOut(BaseModel):
    as_of: Optional[str] = Field(description="the date overdue is judged at: the latest fact's date")
    items: list[ComplaintRow]
    next_cursor: Optional[str]


class ComplaintOut(BaseModel):
    complaint: ComplaintRow
    entry: FactEntry
    resolutions: list[FactEntry]
    payment: list[FactEntry] = Field(description="the named order and every fact on it, in log order")
    family: Optional[str] = Field(description="kk of the complaint, else of the named order")
    family_trail: list[FactEntry] = Field(description="first page of the family's trail")
    family_trail_next_cursor: Optional[str] = Field(description="continue at /v1/families/{kk}/trail")


class RegisterListing(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    fact_id: str
    type: str
    register_: str = Field(alias="register")
    kind: Literal["barred", "indicator"]
    nik: str
    source: dict[str, Any]
    at: str
    from_: str = Field(alias="from")
    until: Optional[str]
    in_force_on: Optional[bool] = Field(description="listed on the as-of date (from <= date < until)")


class RegistersOut(BaseModel):
    as_of: Optional[str]
    items: list[RegisterListing]
