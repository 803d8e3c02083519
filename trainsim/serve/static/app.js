// The trainsim explorer page: inputs -> JSON requests to the local server (trainsim.api) -> numbers and charts.
// The page's whole state lives in its URL (query string), so a link reproduces the view.
"use strict";
const $ = id => document.getElementById(id);
let CAT = null;
const S = {view: "plan", model: "", cfg: "", system: "", chips: 0, tokens: "", seq: 4096, batch: 0, prec: "bf16",
           fw: "", fix: "", edits: {}, size_days: 60, size_unit: "system", size_fail: true, cap_units: 65,
           cap_days: 90, cap_family: "deepseek-v3", cap_prec: "bf16", w: {}};
const WHATIF = [  // slider key -> edited fields, label
  {k: "hbm_bw", fields: ["hbm_bw"], label: "HBM bandwidth"},
  {k: "scale_up_bw", fields: ["scale_up_bw"], label: "scale-up bandwidth"},
  {k: "scale_out_bw", fields: ["scale_out_bw"], label: "scale-out bandwidth"},
  {k: "peak", fields: ["bf16_flops", "fp8_flops"], label: "peak FLOP/s"},
  {k: "price", fields: ["price_per_chip_usd"], label: "price per chip"},
  {k: "fail", fields: [], label: "failure rate"},
];
let trail = [];

// ------------------------------------------------------------------ formatting (as trainsim.report.fmt)
const fmt = {
  num: (x, d = 1) => x == null || !isFinite(x) ? "n/a" : x.toLocaleString("en-US", {maximumFractionDigits: d, minimumFractionDigits: d}),
  days: d => d == null || !isFinite(d) ? "n/a" : d.toFixed(1) + " days",
  pct: x => x == null ? "n/a" : (100 * x).toFixed(1) + "%",
  gib: b => (b / CAT.units.gib_bytes).toFixed(1) + " GiB",   // bytes per GiB as the server sends it (trainsim.units.GIB)
  s: x => x.toFixed(3) + " s",
  usd: x => x == null || !isFinite(x) ? "n/a" : Math.abs(x) >= 1e6 ? "$" + (x / 1e6).toLocaleString("en-US", {maximumFractionDigits: 1, minimumFractionDigits: 1}) + "M" : "$" + Math.round(x).toLocaleString("en-US"),
  count: n => { if (n == null) return "n/a"; for (const [d, s] of [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(n) >= d && Math.abs(n) < d * 1e3) return +(n / d).toPrecision(3) + s; return (+n.toPrecision(3)).toString(); },
};
const esc = t => String(t).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));

// ------------------------------------------------------------------ URL state
function toURL() {
  const q = new URLSearchParams();
  for (const k of ["view", "model", "system", "chips", "tokens", "seq", "batch", "prec", "fw", "fix", "size_days",
                   "size_unit", "cap_units", "cap_days", "cap_family", "cap_prec"]) if (S[k] !== "" && S[k] != null) q.set(k, S[k]);
  q.set("size_fail", S.size_fail ? "1" : "0");
  if (S.cfg) q.set("cfg", btoa(unescape(encodeURIComponent(S.cfg))));
  for (const [k, v] of Object.entries(S.edits)) q.set("e." + k, v);
  for (const [k, v] of Object.entries(S.w)) if (v !== 1 && v != null) q.set("w." + k, v);
  history.replaceState(null, "", "?" + q.toString());
}
function fromURL() {
  const q = new URLSearchParams(location.search), d = CAT.default;
  Object.assign(S, {model: d.model, system: d.system, chips: d.chips, tokens: String(d.tokens), seq: d.seq_len,
                    batch: d.global_batch_seqs, prec: d.precision});
  const num = ["chips", "seq", "batch", "size_days", "cap_units", "cap_days"];
  for (const [k, v] of q) {
    if (k.startsWith("e.")) S.edits[k.slice(2)] = +v;
    else if (k.startsWith("w.")) S.w[k.slice(2)] = +v;
    else if (k === "cfg") { try { S.cfg = decodeURIComponent(escape(atob(v))); } catch (e) { S.cfg = ""; } }
    else if (k === "size_fail") S.size_fail = v !== "0";
    else if (k in S) S[k] = num.includes(k) ? +v : v;
  }
}

// ------------------------------------------------------------------ catalog and inputs
const sysOf = id => CAT.systems.find(s => s.id === id);
const modelOf = id => CAT.models.find(m => m.id === id);
function baseValue(k) { const s = sysOf(S.system); return s ? s.values[k] : null; }
function runValue(k) { return k in S.edits ? S.edits[k] : baseValue(k); }

function renderEdits() {
  const s = sysOf(S.system), box = $("edits");
  box.innerHTML = "";
  if (!s) return;
  for (const [k, f] of Object.entries(CAT.fields)) {
    const base = s.values[k];
    if (base == null && !(k in S.edits)) continue;
    const v = runValue(k), src = s.sources[k] || {};
    const edited = k in S.edits && S.edits[k] !== base;
    const lab = document.createElement("label");
    lab.innerHTML = `${esc(f.label)} (${esc(f.unit)}) <input type="number" step="any" data-edit="${k}" value="${+(v / f.scale).toPrecision(6)}">` +
      `<small class="src" data-src="${k}">${edited ? '<span class="edited">edited</span> (catalog: ' + esc(+(base / f.scale).toPrecision(6)) + ")" : "source: " + esc(src.source || "catalog") + (src.confidence ? ` (${esc(src.confidence)})` : "")}</small>`;
    box.appendChild(lab);
  }
  box.querySelectorAll("input[data-edit]").forEach(inp => inp.addEventListener("change", () => {
    const k = inp.dataset.edit, f = CAT.fields[k], v = +inp.value * f.scale;
    if (!(v > 0) && k !== "price_per_chip_usd") { showError(`system.${k}: expected a positive number, got ${JSON.stringify(inp.value)}`); return; }
    const base = baseValue(k);
    if (base != null && Math.abs(v - base) <= 1e-9 * Math.abs(base)) delete S.edits[k]; else S.edits[k] = k === "scale_up_size" ? Math.round(v) : v;
    changed();
  }));
}
function modelSource() {
  if (S.cfg.trim()) return "model: pasted config (edited)";
  const m = modelOf(S.model);
  return m ? "model source: " + m.source : "";
}
function writeForm() {
  $("model").value = S.model; $("cfg").value = S.cfg; $("system").value = S.system; $("chips").value = S.chips;
  const up = runValue("scale_up_size") || 1;
  $("pods").value = S.chips % up === 0 ? S.chips / up : "";
  $("tokens").value = S.tokens; $("seq").value = S.seq; $("batch").value = S.batch; $("prec").value = S.prec;
  const vd = (sysOf(S.system) || {}).default_framework || CAT.default_framework;   // "": the chip vendor's stack
  $("fw").options[0].textContent = `${vd} (this chip vendor's default: framework not stated)`;
  $("fw").value = S.fw; $("fix").value = S.fix; $("size-days").value = S.size_days; $("size-unit").value = S.size_unit;
  $("size-fail").checked = S.size_fail; $("cap-units").value = S.cap_units; $("cap-days").value = S.cap_days;
  $("cap-family").value = S.cap_family; $("cap-prec").value = S.cap_prec;
  $("model-src").textContent = modelSource();
  const d = CAT.default, same = S.chips === d.chips && String(S.tokens) === String(d.tokens) && S.seq === d.seq_len &&
    S.batch === d.global_batch_seqs && S.prec === d.precision && S.system === d.system;
  $("run-src").innerHTML = same ? "chips, tokens, batch, precision: " + esc(d.source)
    : 'chips, tokens, batch, precision: <span class="edited">edited</span> (given in the page)';
  if (S.cfg) $("cfg-box").open = true;
  renderEdits();
}
function readForm() {
  S.model = $("model").value; S.cfg = $("cfg").value; S.chips = +$("chips").value; S.tokens = $("tokens").value.trim();
  S.seq = +$("seq").value; S.batch = +$("batch").value; S.prec = $("prec").value; S.fw = $("fw").value;
  S.fix = $("fix").value.trim(); S.size_days = +$("size-days").value; S.size_unit = $("size-unit").value;
  S.size_fail = $("size-fail").checked; S.cap_units = +$("cap-units").value; S.cap_days = +$("cap-days").value;
  S.cap_family = $("cap-family").value; S.cap_prec = $("cap-prec").value;
}

function modelValue() {
  if (S.cfg.trim()) {
    try { return JSON.parse(S.cfg); } catch (e) { throw new Error(`model: pasted config is not valid JSON (${e.message})`); }
  }
  const m = modelOf(S.model);
  return m && m.preset ? m.model : S.model;
}
function spec() {
  const tok = S.tokens === "" ? null : (isFinite(+S.tokens) ? +S.tokens : S.tokens);
  const tr = {seq_len: S.seq, global_batch_seqs: S.batch, precision: S.prec};
  if (tok !== null) tr.tokens = tok;
  const m = modelValue();
  const name = (typeof m === "string" ? m : (m.name || m.model_type || "pasted model")) + ` on ${S.chips} x ${S.system}`;
  return {name, model: m, system: S.system, chips: S.chips, training: tr};
}
function runRequest(extra) { return Object.assign({spec: spec(), edits: S.edits, fix: S.fix, framework: S.fw}, extra || {}); }

// ------------------------------------------------------------------ requests
let pending = 0;
function busy(d) {
  pending += d; document.body.dataset.pending = pending;
  $("out").classList.toggle("busy", pending > 0);
}
function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; document.body.dataset.error = msg ? "1" : "0"; }
async function post(path, body) {
  busy(1);
  $("status").textContent = "answering...";
  const t0 = performance.now();
  try {
    const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const txt = await r.text();
    let data; try { data = JSON.parse(txt); } catch (e) { data = {error: `server answered HTTP ${r.status}`}; }
    if (!r.ok || data.error) throw new Error(data.error || `HTTP ${r.status}`);
    $("status").textContent = `answered in ${Math.round(performance.now() - t0)} ms`;
    showError("");
    return data;
  } finally { busy(-1); }
}
async function guarded(fn) {
  try { await fn(); } catch (e) { showError(e.message); $("status").textContent = "error"; }
}
function card(key, label, text, value, title) {
  return `<div class="card"${title ? ` title="${esc(title)}"` : ""}><div class="k">${esc(label)}</div><div class="v" data-key="${key}"${value != null && isFinite(value) ? ` data-value="${value}"` : ""}>${esc(text)}</div></div>`;
}
function mark(viewId) { const v = $(viewId); v.dataset.answered = (+(v.dataset.answered || 0) + 1).toString(); }

// ------------------------------------------------------------------ plan
const CAUSES = {compute_gemm: "GEMMs", attention: "attention", memory_bound: "memory-bound ops", recompute: "recompute",
  tp_comm: "TP comm", ep_alltoall: "EP all-to-all", cp_comm: "CP comm", pp_p2p: "PP p2p", pipeline_bubble: "pipeline bubble",
  dp_comm: "DP comm (exposed)", optimizer: "optimizer", host: "host syncs and launches",
  activation_offload: "activation offload (exposed)", other: "other"};
async function doPlan() {
  const r = await post("/api/plan", runRequest());
  const a = r.answer, d = r.display, eco = a.economics || {};
  const nom = k => (eco[k] || {}).nominal;
  if (a.step_time_s == null) {
    $("plan-answer").textContent = a.message || "no plan"; $("plan-cards").innerHTML = ""; mark("view-plan"); return;
  }
  $("plan-answer").innerHTML = `<b>${esc(a.model)}</b> on ${a.chips.toLocaleString("en-US")} x ${esc(a.chip)} (${esc(a.system)}): ` +
    (a.days != null ? `<b>${esc(d.days)}</b> (${esc(d.effective_days)} with failures), ` : "") + `MFU ${esc(d.mfu)}, plan <code>${esc(d.plan)}</code>`;
  $("plan-cards").innerHTML = [
    card("days", "days (no failures)", d.days, a.days),
    card("effective_days", "days with failures", d.effective_days || "n/a", eco.effective_days, "goodput " + (d.goodput || "")),
    card("step_time_s", "step time", d.step_time_s, a.step_time_s),
    card("tokens_per_s_per_chip", "tokens/s per chip", d.tokens_per_s_per_chip, a.tokens_per_s_per_chip),
    card("mfu", "MFU", d.mfu, a.mfu, a.mfu_definition),
    card("memory_per_chip_bytes", "memory per chip", `${d.memory_per_chip_bytes} of ${d.hbm_bytes}`, a.memory_per_chip_bytes),
    card("energy_mwh", `energy, ${d.cost_basis || ""}`, d.energy_mwh || "n/a", nom("energy_mwh"), (eco.power_per_chip_w || {}).source),
    card("cost_capex_usd", `cost (amortised capex + power), ${d.cost_basis || ""}`, d.cost_capex_usd || "n/a", nom("cost_capex_usd")),
    card("cost_rental_usd", `cost (rental), ${d.cost_basis || ""}`, d.cost_rental_usd || "n/a", nom("cost_rental_usd"), (eco.rental_usd_per_chip_hour || {}).basis),
    card("validation_error", "validation error (median |error|)", d.validation_error || "n/a", (a.validation_error || {}).median_abs_error),
    card("plans_evaluated", "plans searched", a.plans_evaluated.toLocaleString("en-US"), a.plans_evaluated),
  ].join("");
  const rows = Object.entries(a.breakdown).filter(([k, v]) => v > 0).sort((x, y) => y[1] - x[1])
    .map(([k, v]) => ({label: CAUSES[k] || k, value: v, tip: `${CAUSES[k] || k}: ${v.toFixed(4)} s (${(100 * v / a.step_time_s).toFixed(1)}% of the step)`}));
  Charts.hbar($("chart-breakdown"), rows, {unit: "seconds per step", fmt: v => v.toFixed(3) + " s"});
  const mem = Object.entries(a.memory_breakdown_bytes).filter(([k, v]) => k !== "total" && v > 0).map(([k, v]) => ({label: k.replace(/_/g, " "), value: v}));
  Charts.stack($("chart-memory"), mem, {unit: "GiB per chip", fmt: fmt.gib, tick: t => +(t / CAT.units.gib_bytes).toPrecision(4), scale: CAT.units.gib_bytes, limit: a.hbm_bytes, limitLabel: "HBM " + fmt.gib(a.hbm_bytes)});
  // rows formatted by the server (trainsim.report.fmt, as the terminal prints them): the best plan, then runners-up
  $("plan-table").innerHTML = "<table><tr><th>#</th><th>plan</th><th>step time</th><th>MFU</th><th>tokens/s/chip</th><th>memory</th></tr>" +
    d.plans.map((p, i) => `<tr><td>${i + 1}</td><td style="text-align:left"><code>${esc(p.plan)}</code></td><td>${esc(p.step_time_s)}</td><td>${esc(p.mfu)}</td><td>${esc(p.tokens_per_s_per_chip)}</td><td>${esc(p.memory_per_chip_bytes)}</td></tr>`).join("") + "</table>";
  $("plan-flags").textContent = a.flags || a.flags_note || "";
  const ve = a.validation_error;
  $("plan-valid").textContent = ve ? `Held-out (leave-one-out) error of predicted tokens/s per chip for ${sysOf(S.system).family}: median |error| ${fmt.pct(ve.median_abs_error)}, max ${fmt.pct(ve.max_abs_error)} over ${ve.runs} runs (${ve.basis}).` : "No validation error recorded for this chip family.";
  mark("view-plan");
}

// ------------------------------------------------------------------ size / capacity
async function doSize() {
  const r = await post("/api/size", runRequest({days: S.size_days, unit: S.size_unit, failures: S.size_fail}));
  const a = r.answer;
  $("size-answer").textContent = a.message;
  $("size-cards").innerHTML = [
    card("size_chips", "chips", a.chips == null ? "none" : a.chips.toLocaleString("en-US"), a.chips),
    card("size_units", a.unit === "chip" ? "chips" : "scale-up domains", a.units == null ? "none" : a.units.toLocaleString("en-US"), a.units),
    card("size_effective_days", "days with failures", fmt.days(a.effective_days), a.effective_days),
    card("size_days", "days (no failures)", fmt.days(a.days), a.days),
    card("size_goodput", "goodput", fmt.pct(a.goodput), a.goodput),
  ].join("") + (a.best_plan ? `<p>best plan: <code>${esc(r.display.best_plan)}</code>; batch ${a.best_plan.global_batch_seqs} sequences</p>` : "");
  const pts = a.probes.filter(p => isFinite(p.effective_days)).map(p => ({x: p.chips, y: p.effective_days,
    tip: `${p.chips.toLocaleString("en-US")} chips (${p.units} ${a.unit}s): ${fmt.days(p.effective_days)} with failures, ${fmt.days(p.days)} ideal`,
    r: p.chips === a.chips ? 8 : 5}));
  Charts.scatter($("chart-size"), [{name: "probes (best plan each)", points: pts.sort((u, v) => u.x - v.x), line: true}],
    {xlabel: "chips (log scale)", ylabel: "days with failures", xlog: true, hline: {y: a.deadline_days, label: `deadline ${a.deadline_days} days`}});
  mark("view-size");
}
async function doCapacity() {
  const r = await post("/api/capacity", {system: S.system, edits: S.edits, units: S.cap_units, days: S.cap_days,
                                         family: S.cap_family, precision: S.cap_prec});
  const a = r.answer;
  $("cap-answer").textContent = a.message;
  $("cap-cards").innerHTML = [
    card("cap_total_params", "total parameters", fmt.count(a.total_params), a.total_params),
    card("cap_active_params", "active parameters", fmt.count(a.active_params), a.active_params),
    card("cap_tokens", "tokens", fmt.count(a.tokens), a.tokens),
    card("cap_training_flops", "training FLOPs (6ND)", a.training_flops == null ? "n/a" : a.training_flops.toExponential(2), a.training_flops),
    card("cap_goodput", "goodput", fmt.pct(a.goodput), a.goodput),
  ].join("");
  $("cap-limits").innerHTML = "<table><tr><th>limit</th><th>binding</th><th style='text-align:left'>detail</th></tr>" +
    a.limits.map(l => `<tr><td>${esc(l.limit)}</td><td>${l.binding ? "<b>yes</b>" : "no"}</td><td style="text-align:left">${esc(l.detail)}</td></tr>`).join("") + "</table>";
  const it = a.iterations.filter(i => isFinite(i.tokens_in_days));
  Charts.scatter($("chart-cap"), [
    {name: "tokens trainable in the days", points: it.map(i => ({x: i.active_params, y: i.tokens_in_days / 1e12, tip: `${fmt.count(i.active_params)} active: ${fmt.count(i.tokens_in_days)} tokens in ${a.days} days`}))},
    {name: "tokens the rule asks", points: it.map(i => ({x: i.active_params, y: i.tokens_rule / 1e12, tip: `${fmt.count(i.active_params)} active: rule ${fmt.count(i.tokens_rule)} tokens`}))}],
    {xlabel: "active parameters (log scale)", ylabel: "tokens (T)", xlog: true});
  mark("view-size");
}

// ------------------------------------------------------------------ what if
function whatifEdits() {
  const e = Object.assign({}, S.edits);
  for (const w of WHATIF) {
    const f = S.w[w.k] ?? 1;
    if (f === 1) continue;
    for (const k of w.fields) { const v = runValue(k); if (v != null) e[k] = v * f; }
  }
  if (S.w.scale_up_size) e.scale_up_size = S.w.scale_up_size;
  return e;
}
function failureRate() { const f = S.w.fail ?? 1; return f === 1 ? null : CAT.failure_rate.value * f; }
function renderSliders() {
  const box = $("sliders"); box.innerHTML = "";
  for (const w of WHATIF) {
    const f = S.w[w.k] ?? 1, k0 = w.fields[0];
    let nominal, unit, scale, src;
    if (w.k === "fail") { nominal = CAT.failure_rate.value; unit = "per chip-hour"; scale = 1; src = CAT.failure_rate.source; }
    else { nominal = runValue(k0); if (nominal == null) continue; unit = CAT.fields[k0].unit; scale = CAT.fields[k0].scale;
           src = k0 in S.edits ? "edited in the run" : "source: " + ((sysOf(S.system).sources[k0] || {}).source || "catalog"); }
    const div = document.createElement("div"); div.className = "slider";
    div.innerHTML = `<span>${esc(w.label)}</span><input type="range" min="-2" max="1" step="0.0833333" data-w="${w.k}" value="${Math.log2(f)}">` +
      `<span class="val" data-wval="${w.k}" title="${esc(src)}">x${f.toFixed(2)} = ${+(nominal * f / scale).toPrecision(4)} ${esc(unit)}${f !== 1 ? ' <span class="edited">edited</span>' : ""}</span>`;
    box.appendChild(div);
  }
  const up = runValue("scale_up_size"), sizes = [...new Set([8, 16, 32, 64, 72, 128, 144, 256, 384, 512, 1024, 8192, up])].filter(v => v <= Math.max(up * 4, 64) && v <= S.chips).sort((a, b) => a - b);
  const div = document.createElement("div"); div.className = "slider";
  div.innerHTML = `<span>chips per scale-up domain</span><select data-w="scale_up_size">${sizes.map(v => `<option value="${v}"${v === (S.w.scale_up_size || up) ? " selected" : ""}>${v}</option>`).join("")}</select>` +
    `<span class="val">${S.w.scale_up_size && S.w.scale_up_size !== up ? '<span class="edited">edited</span> (run: ' + up + ")" : "as in the run"}</span>`;
  box.appendChild(div);
  box.querySelectorAll("[data-w]").forEach(inp => inp.addEventListener(inp.tagName === "SELECT" ? "change" : "input", () => {
    if (inp.dataset.w === "scale_up_size") S.w.scale_up_size = +inp.value === up ? null : +inp.value;
    else S.w[inp.dataset.w] = +Math.pow(2, +inp.value).toFixed(4);
    toURL(); debounce(() => { renderSliders(); guarded(doWhatif); }, 250);
  }));
}
async function doWhatif() {
  const r = await post("/api/whatif", runRequest({edits: whatifEdits(), nominal_edits: S.edits, failure_rate: failureRate(), top: 1}));
  const n = r.nominal, c = r.current, dn = r.nominal_display, dc = r.display;
  const eff = a => (a.economics || {}).effective_days, cost = a => ((a.economics || {}).cost_capex_usd || {}).nominal,
        rent = a => ((a.economics || {}).cost_rental_usd || {}).nominal;
  const ch = (x, y) => x != null && y != null && isFinite(x) && isFinite(y) ? ` (${y >= x ? "+" : ""}${(100 * (y / x - 1)).toFixed(1)}%)` : "";
  if (c.step_time_s == null) { $("whatif-answer").textContent = c.message || "no plan fits"; $("whatif-cards").innerHTML = ""; mark("view-whatif"); return; }
  $("whatif-answer").innerHTML = `What if: <b>${esc(dc.effective_days)}</b> with failures${esc(ch(eff(n), eff(c)))} and <b>${esc(dc.cost_capex_usd)}</b>${esc(ch(cost(n), cost(c)))}; nominal ${esc(dn.effective_days)}, ${esc(dn.cost_capex_usd)}. Plan <code>${esc(dc.plan)}</code>` + (dn.plan !== dc.plan ? ` (nominal <code>${esc(dn.plan)}</code>)` : " (unchanged)");
  $("whatif-cards").innerHTML = [
    card("w_days", "days (no failures)", dc.days + ch(n.days, c.days), c.days),
    card("w_effective_days", "days with failures", dc.effective_days + ch(eff(n), eff(c)), eff(c)),
    card("w_cost_capex_usd", "cost (capex + power)", dc.cost_capex_usd + ch(cost(n), cost(c)), cost(c)),
    card("w_cost_rental_usd", "cost (rental)", dc.cost_rental_usd + ch(rent(n), rent(c)), rent(c)),
    card("w_mfu", "MFU", dc.mfu, c.mfu), card("w_step_time_s", "step time", dc.step_time_s, c.step_time_s),
    card("w_nominal_effective_days", "nominal days with failures", dn.effective_days, eff(n)),
  ].join("");
  const pt = (a, d, extra) => Object.assign({x: eff(a), y: cost(a) / 1e6, tip: `${d.effective_days} with failures, ${d.cost_capex_usd}\nplan ${d.plan}`}, extra);
  trail.push(pt(c, dc, {faded: true})); trail = trail.slice(-30);
  Charts.scatter($("chart-whatif"), [
    {name: "explored", color: "#8aa0c8", points: trail.slice(0, -1)},
    {name: "nominal", color: "#1d2330", points: [pt(n, dn, {r: 7})]},
    {name: "what if", color: "#e07b39", points: [pt(c, dc, {r: 8})]}],
    {xlabel: "days with failures", ylabel: "cost, amortised capex + power (million USD)"});
  mark("view-whatif");
}

// ------------------------------------------------------------------ wiring
let timer = null;
function debounce(fn, ms) { clearTimeout(timer); timer = setTimeout(fn, ms); }
function answerView() {
  if (S.view === "plan") return guarded(doPlan);
  if (S.view === "whatif") { renderSliders(); return guarded(doWhatif); }
  return guarded(doSize).then(() => guarded(doCapacity));
}
function changed() { readForm(); toURL(); writeForm(); if (S.view !== "size") debounce(answerView, 400); }
function setView(v) {
  S.view = v; toURL();
  document.querySelectorAll(".tab").forEach(b => b.classList.toggle("active", b.dataset.view === v));
  document.querySelectorAll(".view").forEach(d => d.hidden = d.id !== "view-" + v);
  answerView();
}
async function download(path, name) {
  await guarded(async () => {
    const body = S.view === "whatif" ? runRequest({edits: whatifEdits(), failure_rate: failureRate()}) : runRequest();
    busy(1);
    try {
      const r = await fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
      if (!r.ok) { let m = `HTTP ${r.status}`; try { m = (await r.json()).error; } catch (e) {} throw new Error(m); }
      const blob = await r.blob(), a = document.createElement("a");
      a.href = URL.createObjectURL(blob); a.download = name; document.body.appendChild(a); a.click(); a.remove();
    } finally { busy(-1); }
  });
}
async function init() {
  busy(1);
  try {
    CAT = await (await fetch("/api/catalog")).json();
  } finally { busy(-1); }
  $("model").innerHTML = CAT.models.map(m => `<option value="${esc(m.id)}">${esc(m.id)}${m.preset ? " (preset)" : ""}</option>`).join("");
  $("system").innerHTML = CAT.systems.map(s => `<option value="${esc(s.id)}">${esc(s.id)} (${esc(s.chip)})</option>`).join("");
  // software stacks: the run spec's framework: key (the search offers only what the stack has; flags of its emitter)
  // the first option ("") states no framework: the run takes its chip vendor's stack (trainsim.frameworks.default_framework)
  $("fw").innerHTML = '<option value="">vendor default</option>' + CAT.frameworks.map(f => `<option value="${esc(f.id)}" title="${esc(f.source)}">${esc(f.id)} (${esc(f.schedules.join(", "))}; flags: ${esc(f.emitter || "none")})</option>`).join("");
  S.fw = "";
  fromURL();
  if (S.fw && !CAT.frameworks.some(f => f.id === S.fw)) S.fw = ({megatron: "megatron-bridge-2026", mindspeed: "mindspeed-2026", torchtitan: "torchtitan-2024"})[S.fw] || "";
  writeForm();
  for (const id of ["model", "chips", "tokens", "seq", "batch", "prec", "fw", "fix", "size-days", "size-unit", "size-fail",
                    "cap-units", "cap-days", "cap-family", "cap-prec"]) $(id).addEventListener("change", changed);
  $("cfg").addEventListener("change", changed);
  $("system").addEventListener("change", () => { S.system = $("system").value; S.edits = {}; S.w = {}; trail = []; changed(); });
  $("pods").addEventListener("change", () => { const p = +$("pods").value; if (p > 0) { $("chips").value = p * (runValue("scale_up_size") || 1); changed(); } });
  document.querySelectorAll(".tab").forEach(b => b.addEventListener("click", () => setView(b.dataset.view)));
  $("go").addEventListener("click", () => { readForm(); toURL(); S.view === "size" ? guarded(doSize) : answerView(); });
  $("size-go").addEventListener("click", () => { readForm(); toURL(); guarded(doSize); });
  $("cap-go").addEventListener("click", () => { readForm(); toURL(); guarded(doCapacity); });
  $("dl-yaml").addEventListener("click", () => download("/api/spec.yaml", "run.yaml"));
  $("dl-html").addEventListener("click", () => download("/api/report", "report.html"));
  $("copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); $("status").textContent = "link copied"; }
    catch (e) { window.prompt("Copy this link", location.href); }
  });
  setView(S.view);
}
init().catch(e => showError(String(e.message || e)));
