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
    hiddenSmall: "Disembunyikan karena kurang dari 5 keluarga", hiddenProtects: "Disembunyikan untuk melindungi sel kecil lain (agar tidak bisa dihitung dengan pengurangan)",
    hiddenInTotals: "Total ini tidak memuat {n} periode yang disembunyikan (kurang dari 5 keluarga).",
    cpWhatTitle: "Apa itu checkpoint, dan bagaimana memeriksanya?",
    cpWhat: "Setiap catatan bantuan (penetapan, perintah bayar, penyaluran, pencairan) ditambahkan ke sebuah buku besar yang hanya bisa ditambah, tidak bisa diubah. Checkpoint adalah ringkasan seluruh buku besar itu pada satu saat: jumlah catatan dan satu sidik jari (akar Merkle), ditandatangani oleh pengelola. Bila satu catatan lama saja diubah atau dihapus, sidik jarinya tidak akan cocok lagi.",
    cpHow: "Siapa pun dapat memeriksanya: simpan checkpoint.txt dan kunci verifikasi (tautan di bawah halaman), lalu bandingkan dengan checkpoint berikutnya; checkpoint baru harus memuat semua catatan lama tanpa perubahan. Penerima bantuan cukup memasukkan nomor perintah bayar dan kode dari slip di bawah ini: browser Anda sendiri menghitung ulang sidik jari dan mencocokkannya dengan checkpoint.",
    anomalies: "Temuan (anomali) per aturan", rule: "Aturan", count: "Jumlah",
    checkpoint: "Checkpoint terbaru (bertanda tangan)", size: "Jumlah entri", root: "Akar Merkle",
    receiptTitle: "Periksa bukti pembayaran Anda",
    receiptHelp: "Masukkan nomor perintah bayar dan kode bukti dari slip pembayaran Anda. Browser Anda sendiri memeriksa bukti inklusi terhadap checkpoint.",
    orderId: "Nomor perintah bayar", code: "Kode bukti", check: "Periksa", keys: "Kunci verifikasi",
    checking: "Memeriksa…", valid: "Terverifikasi: pembayaran ini tercatat di log yang ditandatangani.",
    notFound: "Tidak ditemukan: nomor atau kode tidak cocok.", invalid: "GAGAL: bukti inklusi tidak cocok dengan checkpoint.",
    pending: "Belum tercakup checkpoint; coba lagi nanti.", status: "Status",
    signature: "Tanda tangan", sigOk: "tanda tangan log sah (diperiksa browser Anda)", sigBad: "GAGAL: tanda tangan log tidak sah",
    cosigned: "disaksikan oleh", noWitness: "tanpa saksi", quorumOk: "kuorum saksi terpenuhi", quorumBad: "kuorum saksi TIDAK terpenuhi",
    download: "Unduh bukti (tlog-proof)", index: "Indeks log", noData: "Belum ada data",
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
    complaintsTitle: "Pengaduan per kategori dan bulan (seluruh kota)", category: "Kategori", month: "Bulan",
    filed: "Diajukan", resolved: "Diselesaikan", open: "Terbuka", overdue: "Melewati batas",
    medianDays: "Median hari penyelesaian", hiddenComplaint: "disembunyikan (< 5 pengaduan)",
    complaintsNote: "Sel dengan kurang dari 5 pengaduan disembunyikan. Terlambat: terbuka lebih dari {d} hari pada {date}.",
    registersTitle: "Penerima yang tercatat di register (seluruh kota)",
    registersNote: "Jumlah perintah bayar, bukan nama: hanya periode yang dipublikasikan di atas.",
    c_not_received: "Belum diterima", c_wrong_amount: "Nominal salah", c_pungli: "Pungutan liar",
    c_inclusion_error: "Salah sasaran (tidak layak)", c_exclusion_error: "Layak tapi tidak terdaftar", c_other: "Lainnya",
  },
  en: {
    title: "Jejak — Social Assistance Transparency",
    subtitle: "A signed ledger anyone can verify. No personal data.",
    totals: "Totals per programme", loading: "Loading…", chartTitle: "Disbursement per period",
    region: "Region", allRegions: "Whole city", program: "Programme", allPrograms: "All",
    ordered: "Ordered", credited: "Credited", collected: "Collected", returned: "Returned",
    families: "Families", orders: "Payment orders", suppressed: "suppressed (< 5 families)",
    suppressedNote: "Cells with fewer than 5 families are hidden to protect privacy.",
    hiddenSmall: "Hidden: fewer than 5 families", hiddenProtects: "Hidden to protect another, small cell (so that it cannot be worked out by subtraction)",
    hiddenInTotals: "These totals leave out {n} hidden period(s) (fewer than 5 families).",
    cpWhatTitle: "What is a checkpoint, and how can I check it?",
    cpWhat: "Every aid record (eligibility, payment order, settlement, pickup) is added to a ledger that can only grow, never change. A checkpoint sums up the whole ledger at one moment: the number of records and one fingerprint (the Merkle root), signed by the operator. If a single old record were changed or removed, the fingerprint would no longer match.",
    cpHow: "Anyone can check it: keep checkpoint.txt and the verifier keys (links at the bottom of the page) and compare with the next checkpoint; a newer checkpoint must contain every older record unchanged. A recipient only enters the payment order number and the code from the slip below: your own browser recomputes the fingerprint and matches it with the checkpoint.",
    anomalies: "Findings (anomalies) by rule", rule: "Rule", count: "Count",
    checkpoint: "Latest signed checkpoint", size: "Entries", root: "Merkle root",
    receiptTitle: "Check your payment receipt",
    receiptHelp: "Enter the payment order number and the receipt code from your payment slip. Your own browser checks the inclusion proof against the checkpoint.",
    orderId: "Payment order number", code: "Receipt code", check: "Check", keys: "Verifier keys",
    checking: "Checking…", valid: "Verified: this payment is in the signed log.",
    notFound: "Not found: the number or code does not match.", invalid: "FAILED: the inclusion proof does not match the checkpoint.",
    pending: "Not yet covered by a checkpoint; try again later.", status: "Status",
    signature: "Signature", sigOk: "log signature valid (checked by your browser)", sigBad: "FAILED: the log signature is not valid",
    cosigned: "cosigned by", noWitness: "no witness", quorumOk: "witness quorum met", quorumBad: "witness quorum NOT met",
    download: "Download the proof (tlog-proof)", index: "Log index", noData: "No data yet",
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
    complaintsTitle: "Complaints by category and month (whole city)", category: "Category", month: "Month",
    filed: "Filed", resolved: "Resolved", open: "Open", overdue: "Overdue",
    medianDays: "Median days to resolve", hiddenComplaint: "suppressed (< 5 complaints)",
    complaintsNote: "Cells with fewer than 5 complaints are hidden. Overdue: open for more than {d} days on {date}.",
    registersTitle: "Recipients found on a register (whole city)",
    registersNote: "Numbers of payment orders, never names: the published periods above only.",
    c_not_received: "Not received", c_wrong_amount: "Wrong amount", c_pungli: "Illegal levy",
    c_inclusion_error: "Inclusion error", c_exclusion_error: "Exclusion error", c_other: "Other",
  },
};

let lang = localStorage.getItem("jejak.lang") || "id";
const t = (k) => (I18N[lang][k] ?? I18N.id[k] ?? k);
const $ = (sel) => document.querySelector(sel);
const state = { summary: null, checkpoint: null, cells: {}, lastReceipt: null, noteCheck: null, complaints: null, registerMatches: null };

function rupiah(n) {
  return "Rp" + new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-US").format(n);
}
function num(n) { return new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-US").format(n); }
// Axis amounts in the page's language: "1,5 jt" / "2 M" (juta, miliar) in Indonesian, "1.5M" / "2B" in English.
function compactRupiah(n) {
  return new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-US", { notation: "compact", maximumFractionDigits: 1 }).format(n);
}
function regionLabel(code) {
  const name = state.summary && state.summary.region_names && state.summary.region_names[code];
  return name ? `${name} (${code})` : code;
}
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
  renderTotals(); renderChart(); renderAnomalies(); renderComplaints(); renderRegisterMatches(); renderCheckpoint();
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
    const card = el("div", { class: "card", "data-program": p.program }, el("h3", {}, p.program), table);
    if (p.hidden_cells) card.append(el("p", { class: "muted hidden-note" }, t("hiddenInTotals").replace("{n}", num(p.hidden_cells))));
    box.append(card);
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
  const hidden = { small: [], protects_another: [] };
  for (const c of cells) {
    if (program && c.program !== program) continue;
    if (c.suppressed || !c.amounts) {
      const why = c.suppressed_because === "protects_another" ? "protects_another" : "small";
      hidden[why].push(`${c.program} ${c.period}` + (c.region_name && region ? ` (${c.region_name})` : ""));
      continue;
    }
    const b = byPeriod.get(c.period) || { ordered: 0, credited: 0, collected: 0, returned: 0, n: 0 };
    for (const k of ["ordered", "credited", "collected", "returned"]) b[k] += c.amounts[k];
    b.n += 1; byPeriod.set(c.period, b);
  }
  renderHiddenNote(hidden);
  const periods = [...byPeriod.entries()].filter(([, b]) => b.n > 0);
  chart.replaceChildren();
  // Drawn at the size it is shown (one SVG unit = one CSS pixel), so text stays readable on a phone.
  const W = Math.max(280, Math.round($("#chart-wrap").getBoundingClientRect().width)), T = 16, R = 10;
  const max = Math.max(1, ...periods.map(([, b]) => b.ordered), ...periods.map(([, b]) => b.credited));
  const ticks = [0, 1, 2, 3, 4].map((i) => (max * i) / 4);
  const tickText = ticks.map((v) => compactRupiah(v));
  const L = 12 + Math.max(...tickText.map((s) => measure(chart, s)));
  const slot = (W - R - L) / Math.max(1, periods.length);
  const labelW = Math.max(0, ...periods.map(([p]) => measure(chart, p)));
  const vertical = labelW > slot - 6;  // horizontal labels would touch: stand them up
  const B = (vertical ? labelW : 12) + 14, H = (W < 600 ? 240 : 300) + B;
  chart.setAttribute("viewBox", `0 0 ${W} ${H}`);
  chart.setAttribute("width", W); chart.setAttribute("height", H);
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  ticks.forEach((v, i) => {
    const y = H - B - ((H - B - T) * i) / 4;
    chart.append(svg("line", { x1: L, y1: y, x2: W - R, y2: y, stroke: "#eee" }));
    chart.append(svg("text", { class: "tick", x: L - 6, y: y + 4, "text-anchor": "end" }, tickText[i]));
  });
  if (!periods.length) {
    chart.append(svg("text", { x: W / 2, y: (H - B) / 2, "text-anchor": "middle" }, t("noData")));
    return;
  }
  const kinds = ["ordered", "credited", "collected", "returned"];
  const bw = Math.max(1, (slot * 0.8) / kinds.length);
  periods.forEach(([period, b], i) => {
    const x0 = L + i * slot + slot * 0.1, mid = x0 + (bw * kinds.length) / 2;
    kinds.forEach((k, j) => {
      const h = ((H - B - T) * b[k]) / max;
      const r = svg("rect", { class: "bar " + k, x: x0 + j * bw, y: H - B - h, width: Math.max(bw - 1, 0.5), height: Math.max(h, 0),
                               "data-period": period, "data-kind": k, "data-value": b[k] });
      r.append(svg("title", {}, `${period} · ${t(k)}: ${rupiah(b[k])}`));
      chart.append(r);
    });
    const label = vertical
      ? svg("text", { class: "period", x: mid + 4, y: H - B + 8, "text-anchor": "end", transform: `rotate(-90 ${mid + 4} ${H - B + 8})` }, period)
      : svg("text", { class: "period", x: mid, y: H - B + 16, "text-anchor": "middle" }, period);
    chart.append(label);
  });
}

function measure(chart, text) {
  const probe = svg("text", { class: "tick", x: 0, y: -100 }, text);
  chart.append(probe);
  const w = probe.getComputedTextLength();
  probe.remove();
  return w;
}

function renderHiddenNote(hidden) {
  const box = $("#hidden-cells");
  box.replaceChildren();
  for (const [why, key] of [["small", "hiddenSmall"], ["protects_another", "hiddenProtects"]]) {
    if (hidden[why].length) box.append(el("p", { class: "muted", "data-why": why }, `${t(key)}: ${hidden[why].join(", ")}.`));
  }
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

// --------------------------------------------- complaints, register matches
function renderComplaints() {
  const data = state.complaints;
  if (!data) return;
  const body = $("#complaints tbody");
  body.replaceChildren();
  for (const c of data.items) {
    const label = el("td", { title: c.category }, t("c_" + c.category));
    const figures = c.suppressed ? [el("td", { colspan: "5", class: "muted" }, t("hiddenComplaint"))]
      : [c.filed, c.resolved, c.open, c.overdue].map((n) => el("td", {}, num(n)))
        .concat([el("td", {}, c.median_days_to_resolve === null ? "—" : num(c.median_days_to_resolve))]);
    body.append(el("tr", { "data-category": c.category, "data-month": c.month, "data-suppressed": String(c.suppressed) },
      label, el("td", {}, c.month), ...figures));
  }
  $("#complaints-note").textContent = t("complaintsNote").replace("{d}", num(data.complaint_days)).replace("{date}", data.as_of || "—");
}

function renderRegisterMatches() {
  const data = state.registerMatches;
  if (!data) return;
  const body = $("#register-matches tbody");
  body.replaceChildren();
  for (const r of data.items) {
    const figures = r.suppressed ? [el("td", { colspan: "3", class: "muted" }, t("suppressed"))]
      : ["asn_recipient", "barred_recipient", "flagged_recipient"].map((rule) => el("td", { "data-rule": rule }, num(r.matches[rule])));
    body.append(el("tr", { "data-program": r.program, "data-region": r.region || "" },
      el("td", {}, r.region ? regionLabel(r.region) : "—"), el("td", {}, r.program), ...figures));
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
  const c = state.noteCheck, box = $("#cp-verify");
  if (!c) return;
  box.dataset.status = c.logOk && c.quorumOk ? "valid" : "invalid";
  box.className = c.logOk && c.quorumOk ? "ok" : "bad";
  box.textContent = [c.logOk ? t("sigOk") : t("sigBad"),
    c.cosigned.length ? `${t("cosigned")} ${c.cosigned.join(", ")}` : t("noWitness"),
    c.quorumOk ? t("quorumOk") : t("quorumBad")].join(" · ");
}

// ------------------------------- C2SP signed note and cosignatures, in the browser
const utf8 = (s) => new TextEncoder().encode(s);
function splitNote(note) {
  const i = note.lastIndexOf("\n\n");
  const sigs = note.slice(i + 2).split("\n").filter(Boolean).map((line) => {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) throw new Error("bad signature line");
    const raw = b64bytes(m[2]);
    return { name: m[1], keyId: tohex(raw.slice(0, 4)), raw: raw.slice(4) };
  });
  return { text: note.slice(0, i + 1), sigs };
}
function parseVkey(vkey) {  // <name>+<hex key id>+<base64(type ‖ key)>
  const a = vkey.indexOf("+"), b = vkey.indexOf("+", a + 1), key = b64bytes(vkey.slice(b + 1));
  return { name: vkey.slice(0, a), id: vkey.slice(a + 1, b), type: key[0], pub: key.slice(1) };
}
async function keyIdOk(k) {  // SHA-256(name ‖ "\n" ‖ type ‖ key)[:4]
  return tohex((await sha256(concat(utf8(k.name + "\n"), new Uint8Array([k.type]), k.pub))).slice(0, 4)) === k.id;
}
async function ed25519(pub, sig, msg) {
  const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
}
async function signedBy(vk, type, sigs, sigLen, message) {
  if (vk.type !== type || vk.pub.length !== 32 || !(await keyIdOk(vk))) return false;
  for (const s of sigs) {
    if (s.name !== vk.name || s.keyId !== vk.id || s.raw.length !== sigLen) continue;
    if (await ed25519(vk.pub, s.raw.slice(sigLen - 64), message(s.raw))) return true;
  }
  return false;
}
async function checkNote(note, logKeys, policy) {
  const { text, sigs } = splitNote(note);
  let logOk = false;
  for (const k of logKeys) logOk = logOk || await signedBy(parseVkey(k), 1, sigs, 64, () => utf8(text));
  const cosigned = [];
  for (const w of policy.witnesses) {  // c2sp.org/tlog-cosignature: timestamp (8 bytes) ‖ signature
    const stamped = (raw) => utf8(`cosignature/v1\ntime ${raw.slice(0, 8).reduce((t, x) => t * 256n + BigInt(x), 0n)}\n${text}`);
    if (await signedBy(parseVkey(w.vkey), 4, sigs, 72, stamped)) cosigned.push(w.name);
  }
  const groups = Object.fromEntries(policy.groups.map((g) => [g.name, g]));
  const met = (name) => name === "none" || (groups[name] ? groups[name].members.filter(met).length >= groups[name].threshold
                                                          : cosigned.includes(name));
  return { logOk, cosigned, quorumOk: met(policy.quorum) };
}
async function loadCheckpoint() {
  state.checkpoint = await getJSON("/public/v1/checkpoint");
  try {
    const [keys, policy] = await Promise.all([getJSON("/public/v1/keys"), getJSON("/public/v1/witnesses")]);
    state.noteCheck = await checkNote(state.checkpoint.note, keys.keys, policy);
  } catch (e) { state.noteCheck = { logOk: false, cosigned: [], quorumOk: false }; }
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
  if (!state.noteCheck || !state.noteCheck.logOk || !state.noteCheck.quorumOk) return { ok: false };
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
    if (rec.proof && kind === "valid") box.append(el("a", { id: "receipt-download", href: `/public/v1/receipts/${encodeURIComponent(rec.order_id)}?code=${encodeURIComponent($("#code").value.trim())}&format=tlog-proof` }, t("download")));
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
  try { await loadCheckpoint(); renderCheckpoint(); } catch (e) { /* keep the old one */ }
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
  try { await loadCheckpoint(); } catch (e) { state.checkpoint = null; }
  state.summary = await getJSON("/public/v1/summary");
  [state.complaints, state.registerMatches] = await Promise.all([
    getJSON("/public/v1/complaints/aggregates?level=kota&limit=1000"),
    getJSON("/public/v1/register-matches?level=kota&limit=1000"),
  ]);
  for (const r of state.summary.regions) $("#region").append(el("option", { value: r }, regionLabel(r)));
  let resized;
  window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(renderChart, 150); });
  renderCheckpoint();
  applyLang();
  await renderChart();
  document.body.dataset.ready = "1";
}
boot().catch((e) => { document.body.dataset.ready = "error"; console.error(e); });
