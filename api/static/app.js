/* Jejak public page: no libraries, no CDN. Reads /public/v1 only. */
"use strict";

const I18N = {
  id: {
    title: "Jejak — Transparansi Bantuan Sosial",
    subtitle: "Buku besar yang ditandatangani dan dapat diverifikasi siapa saja. Tanpa data pribadi.",
    totals: "Total per program", loading: "Memuat…", chartTitle: "Penyaluran per periode",
    region: "Wilayah", allRegions: "Seluruh kota", program: "Program", allPrograms: "Semua",
    ordered: "Diperintahkan", credited: "Dikreditkan", collected: "Dicairkan", returned: "Dikembalikan",
    families: "Keluarga", orders: "Perintah bayar", suppressed: "disembunyikan (< 5 keluarga)",
    suppressedNote: "Sel dengan kurang dari 5 keluarga disembunyikan untuk melindungi privasi.",
    anomalies: "Temuan (anomali) per aturan", rule: "Aturan", count: "Jumlah",
    checkpoint: "Checkpoint terbaru (bertanda tangan)", size: "Jumlah entri", root: "Akar Merkle",
    receiptTitle: "Periksa bukti pembayaran Anda",
    receiptHelp: "Masukkan nomor perintah bayar dan kode bukti dari slip pembayaran Anda. Browser Anda sendiri memeriksa bukti inklusi terhadap checkpoint.",
    orderId: "Nomor perintah bayar", code: "Kode bukti", check: "Periksa", keys: "Kunci verifikasi",
    checking: "Memeriksa…", valid: "Terverifikasi: pembayaran ini tercatat di log yang ditandatangani.",
    notFound: "Tidak ditemukan: nomor atau kode tidak cocok.", invalid: "GAGAL: bukti inklusi tidak cocok dengan checkpoint.",
    pending: "Belum tercakup checkpoint; coba lagi nanti.", status: "Status", index: "Indeks log", noData: "Belum ada data",
    st_ordered: "diperintahkan", st_failed: "gagal", st_credited: "dikreditkan", st_partly_collected: "sebagian dicairkan",
    st_collected: "dicairkan", period: "Periode", failed: "Gagal",
    r_duplicate_payout: "Pembayaran ganda", r_no_eligibility: "Tanpa penetapan KPM", r_over_entitlement: "Melebihi hak",
    r_asn_recipient: "Penerima ASN", r_deceased_recipient: "Penerima meninggal", r_invalid_nik: "NIK tidak valid",
    r_nik_in_multiple_families: "NIK di beberapa keluarga", r_ghost_settlement: "Penyelesaian tanpa perintah",
    r_settlement_mismatch: "Nominal penyelesaian berbeda", r_pickup_without_disbursement: "Pencairan tanpa penyaluran",
    r_over_withdrawal: "Penarikan berlebih", r_unassigned_companion_pickup: "Dicairkan pendamping lain",
    r_companion_concentration: "Konsentrasi pendamping", r_unclaimed_funds: "Dana mengendap",
    r_barred_recipient: "Penerima terlarang (TNI/Polri, pendamping, perangkat desa)",
    r_flagged_recipient: "Penerima tidak miskin (indikator)", r_complaint_overdue: "Pengaduan melewati batas waktu",
    r_disputed_pickup: "Pencairan disanggah", r_companion_complaints: "Pengaduan pungli terhadap pendamping",
    r_unknown_complaint: "Penyelesaian tanpa pengaduan",
  },
  en: {
    title: "Jejak — Social Assistance Transparency",
    subtitle: "A signed ledger anyone can verify. No personal data.",
    totals: "Totals per programme", loading: "Loading…", chartTitle: "Disbursement per period",
    region: "Region", allRegions: "Whole city", program: "Programme", allPrograms: "All",
    ordered: "Ordered", credited: "Credited", collected: "Collected", returned: "Returned",
    families: "Families", orders: "Payment orders", suppressed: "suppressed (< 5 families)",
    suppressedNote: "Cells with fewer than 5 families are hidden to protect privacy.",
    anomalies: "Findings (anomalies) by rule", rule: "Rule", count: "Count",
    checkpoint: "Latest signed checkpoint", size: "Entries", root: "Merkle root",
    receiptTitle: "Check your payment receipt",
    receiptHelp: "Enter the payment order number and the receipt code from your payment slip. Your own browser checks the inclusion proof against the checkpoint.",
    orderId: "Payment order number", code: "Receipt code", check: "Check", keys: "Verifier keys",
    checking: "Checking…", valid: "Verified: this payment is in the signed log.",
    notFound: "Not found: the number or code does not match.", invalid: "FAILED: the inclusion proof does not match the checkpoint.",
    pending: "Not yet covered by a checkpoint; try again later.", status: "Status", index: "Log index", noData: "No data yet",
    st_ordered: "ordered", st_failed: "failed", st_credited: "credited", st_partly_collected: "partly collected",
    st_collected: "collected", period: "Period", failed: "Failed",
    r_duplicate_payout: "Duplicate payout", r_no_eligibility: "No eligibility", r_over_entitlement: "Over entitlement",
    r_asn_recipient: "Civil-servant recipient", r_deceased_recipient: "Deceased recipient", r_invalid_nik: "Invalid NIK",
    r_nik_in_multiple_families: "NIK in several families", r_ghost_settlement: "Settlement without order",
    r_settlement_mismatch: "Settlement amount mismatch", r_pickup_without_disbursement: "Pickup without disbursement",
    r_over_withdrawal: "Over-withdrawal", r_unassigned_companion_pickup: "Pickup by unassigned companion",
    r_companion_concentration: "Companion concentration", r_unclaimed_funds: "Unclaimed funds",
    r_barred_recipient: "Barred recipient (soldier/police, programme staff, village official)",
    r_flagged_recipient: "Recipient flagged as not poor", r_complaint_overdue: "Complaint overdue",
    r_disputed_pickup: "Disputed pickup", r_companion_complaints: "Illegal-levy complaints against a companion",
    r_unknown_complaint: "Resolution of an unknown complaint",
  },
};

let lang = localStorage.getItem("jejak.lang") || "id";
const t = (k) => (I18N[lang][k] ?? I18N.id[k] ?? k);
const $ = (sel) => document.querySelector(sel);
const state = { summary: null, checkpoint: null, cells: {}, lastReceipt: null };

function rupiah(n) {
  return "Rp" + new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-US").format(n);
}
function num(n) { return new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-US").format(n); }
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k);
  return e;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  if (!r.ok) { const err = new Error(path + " → " + r.status); err.status = r.status; throw err; }
  return r.json();
}

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
  $("#lang").textContent = lang === "id" ? "English" : "Bahasa Indonesia";
  renderTotals(); renderChart(); renderAnomalies();
  if (state.lastReceipt) showReceipt(...state.lastReceipt);
}

// ------------------------------------------------------------------ totals
function renderTotals() {
  const box = $("#totals");
  if (!state.summary) return;
  box.replaceChildren();
  if (!state.summary.programs.length) { box.append(el("p", { class: "muted" }, t("noData"))); return; }
  for (const p of state.summary.programs) {
    const rows = p.suppressed ? [[t("families"), t("suppressed")]] : [
      [t("families"), num(p.families)], [t("orders"), num(p.orders)],
      [t("ordered"), rupiah(p.amounts.ordered)], [t("credited"), rupiah(p.amounts.credited)],
      [t("collected"), rupiah(p.amounts.collected)], [t("returned"), rupiah(p.amounts.returned)],
    ];
    const table = el("table");
    for (const [k, v] of rows) table.append(el("tr", {}, el("td", {}, k), el("td", {}, v)));
    box.append(el("div", { class: "card", "data-program": p.program }, el("h3", {}, p.program), table));
  }
}

// ------------------------------------------------------------------- chart
async function loadCells(level, region) {
  const key = level + ":" + region;
  if (!state.cells[key]) {
    const q = new URLSearchParams({ level, limit: "1000" });
    if (region) q.set("region", region);
    state.cells[key] = (await getJSON("/public/v1/aggregates?" + q)).items;
  }
  return state.cells[key];
}

async function renderChart() {
  const chart = $("#chart");
  if (!state.summary) return;
  const region = $("#region").value, program = $("#program").value;
  let cells;
  try { cells = await loadCells(region ? "kecamatan" : "kota", region); } catch (e) { cells = []; }
  const byPeriod = new Map(state.summary.periods.map((p) => [p, { ordered: 0, credited: 0, collected: 0, returned: 0, n: 0 }]));
  for (const c of cells) {
    if (program && c.program !== program) continue;
    if (c.suppressed || !c.amounts) continue;
    const b = byPeriod.get(c.period) || { ordered: 0, credited: 0, collected: 0, returned: 0, n: 0 };
    for (const k of ["ordered", "credited", "collected", "returned"]) b[k] += c.amounts[k];
    b.n += 1; byPeriod.set(c.period, b);
  }
  const periods = [...byPeriod.entries()].filter(([, b]) => b.n > 0);
  chart.replaceChildren();
  const W = 900, H = 320, L = 70, B = 60, T = 10;
  const max = Math.max(1, ...periods.map(([, b]) => b.ordered), ...periods.map(([, b]) => b.credited));
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#999" }));
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4, y = H - B - ((H - B - T) * i) / 4;
    chart.append(svg("line", { x1: L, y1: y, x2: W - 10, y2: y, stroke: "#eee" }));
    chart.append(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, (v / 1e6).toFixed(v >= 1e7 ? 0 : 1) + " jt"));
  }
  if (!periods.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, t("noData")));
    return;
  }
  const slot = (W - 10 - L) / periods.length, kinds = ["ordered", "credited", "collected", "returned"];
  const bw = Math.max(2, (slot * 0.8) / kinds.length);
  periods.forEach(([period, b], i) => {
    const x0 = L + i * slot + slot * 0.1;
    kinds.forEach((k, j) => {
      const h = ((H - B - T) * b[k]) / max;
      const r = svg("rect", { class: "bar " + k, x: x0 + j * bw, y: H - B - h, width: bw - 1, height: Math.max(h, 0),
                               "data-period": period, "data-kind": k, "data-value": b[k] });
      r.append(svg("title", {}, `${period} · ${t(k)}: ${rupiah(b[k])}`));
      chart.append(r);
    });
    chart.append(svg("text", { x: x0 + (bw * kinds.length) / 2, y: H - B + 14, "text-anchor": "end",
                              transform: `rotate(-30 ${x0 + (bw * kinds.length) / 2} ${H - B + 14})` }, period));
  });
}

// --------------------------------------------------------------- anomalies
function renderAnomalies() {
  const body = $("#anomalies tbody");
  if (!state.summary) return;
  body.replaceChildren();
  for (const [rule, n] of Object.entries(state.summary.anomalies)) {
    body.append(el("tr", { "data-rule": rule }, el("td", { title: rule }, t("r_" + rule)), el("td", {}, num(n))));
  }
}

// -------------------------------------------------------------- checkpoint
function parseNote(note) {
  // C2SP tlog-checkpoint: origin \n size \n base64(root) \n ... \n\n signatures
  const body = note.split("\n\n")[0].split("\n");
  return { origin: body[0], size: Number(body[1]), root: b64bytes(body[2]) };
}
function renderCheckpoint() {
  const cp = state.checkpoint;
  if (!cp) return;
  $("#cp-size").textContent = num(cp.size);
  $("#cp-root").textContent = cp.root_hex;
  $("#cp-note").textContent = cp.note;
}

// ----------------------------------------------------- RFC 9162 in the browser
function b64bytes(s) { const bin = atob(s); const out = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i); return out; }
function hexbytes(h) { if (!/^([0-9a-f]{2})*$/i.test(h)) throw new Error("bad hex"); const out = new Uint8Array(h.length / 2); for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16); return out; }
function tohex(b) { return [...b].map((x) => x.toString(16).padStart(2, "0")).join(""); }
function concat(...parts) { const n = parts.reduce((a, p) => a + p.length, 0); const out = new Uint8Array(n); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; }
async function sha256(bytes) { return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)); }
const leafHash = (leaf) => sha256(concat(new Uint8Array([0]), leaf));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));
function equal(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }

async function rootFromInclusion(index, size, leafH, proof) {
  // RFC 9162 §2.1.3.2
  if (index >= size || index < 0) throw new Error("index out of range");
  let fn = index, sn = size - 1, r = leafH;
  for (const p of proof) {
    if (sn === 0) throw new Error("proof too long");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("proof too short");
  return r;
}

async function verifyReceipt(rec, checkpoint) {
  if (!rec.proof || !checkpoint) return { ok: false, pending: true };
  const cp = parseNote(checkpoint.note);
  if (rec.proof.size !== cp.size) return { ok: false };
  const lh = await leafHash(b64bytes(rec.leaf));
  if (tohex(lh) !== rec.proof.leaf_hash) return { ok: false };
  try {
    const root = await rootFromInclusion(rec.index, rec.proof.size, lh, rec.proof.proof.map(hexbytes));
    return { ok: equal(root, cp.root) };
  } catch (e) { return { ok: false }; }
}

function showReceipt(kind, rec) {
  const box = $("#receipt-result");
  box.className = "result " + (kind === "valid" ? "ok" : kind === "busy" ? "busy" : "bad");
  box.dataset.status = kind;
  const msg = { valid: t("valid"), invalid: t("invalid"), notfound: t("notFound"), pending: t("pending"), busy: t("checking") }[kind];
  box.replaceChildren(el("strong", {}, msg));
  if (rec && (kind === "valid" || kind === "invalid" || kind === "pending")) {
    const a = rec.amounts, table = el("table");
    for (const [k, v] of [[t("status"), t("st_" + rec.status)], [t("program"), rec.program], [t("period"), rec.period],
                          [t("ordered"), rupiah(a.ordered)], [t("credited"), rupiah(a.credited)], [t("failed"), rupiah(a.failed)],
                          [t("collected"), rupiah(a.collected)], [t("returned"), rupiah(a.returned)], [t("index"), num(rec.index)]]) {
      table.append(el("tr", {}, el("td", {}, k), el("td", {}, v)));
    }
    box.append(table);
  }
}

async function checkReceipt(ev) {
  ev.preventDefault();
  const id = $("#order-id").value.trim(), code = $("#code").value.trim();
  showReceipt("busy");
  let rec;
  try {
    rec = await getJSON(`/public/v1/receipts/${encodeURIComponent(id)}?code=${encodeURIComponent(code)}`);
  } catch (e) {
    state.lastReceipt = ["notfound", null]; showReceipt("notfound"); return;
  }
  // Check against the checkpoint the page itself fetched (not the one in the answer).
  try { state.checkpoint = await getJSON("/public/v1/checkpoint"); renderCheckpoint(); } catch (e) { /* keep the old one */ }
  const res = await verifyReceipt(rec, state.checkpoint);
  const kind = res.ok ? "valid" : res.pending ? "pending" : "invalid";
  state.lastReceipt = [kind, rec];
  showReceipt(kind, rec);
}

// -------------------------------------------------------------------- boot
async function boot() {
  $("#lang").addEventListener("click", () => { lang = lang === "id" ? "en" : "id"; localStorage.setItem("jejak.lang", lang); applyLang(); });
  $("#receipt-form").addEventListener("submit", checkReceipt);
  $("#region").addEventListener("change", renderChart);
  $("#program").addEventListener("change", renderChart);
  try { state.checkpoint = await getJSON("/public/v1/checkpoint"); } catch (e) { state.checkpoint = null; }
  state.summary = await getJSON("/public/v1/summary");
  for (const r of state.summary.regions) $("#region").append(el("option", { value: r }, r));
  renderCheckpoint();
  applyLang();
  await renderChart();
  document.body.dataset.ready = "1";
}
boot().catch((e) => { document.body.dataset.ready = "error"; console.error(e); });
