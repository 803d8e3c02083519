// Small inline-SVG charts for the trainsim explorer (written for trainsim; no third-party code).
// Every mark carries data-tip (shown on hover by the tooltip handler at the bottom); axes carry units.
"use strict";
const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2f6fdb", "#e07b39", "#3aa46b", "#c04a7a", "#8a63d2", "#c9a227", "#4aa8c0", "#7a7a7a",
                   "#a0522d", "#5b8c3a", "#b0466a", "#3b5b92"];
  function el(tag, attrs, parent, text) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function svg(host, w, h) {
    host.innerHTML = "";
    return el("svg", {viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img"}, host);
  }
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw);
    const out = [];
    const end = Math.ceil(hi / step - 1e-9) * step;
    for (let v = Math.floor(lo / step + 1e-9) * step; v <= end + 1e-9 * step; v += step) out.push(+v.toPrecision(12));
    return out;
  }
  function logTicks(lo, hi) {
    const out = [];
    for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++)
      for (const m of [1, 2, 5]) { const v = m * Math.pow(10, p); if (v >= lo && v <= hi) out.push(v); }
    return out;
  }
  const short = v => Math.abs(v) >= 1e12 ? (v / 1e12).toPrecision(3) + "T" : Math.abs(v) >= 1e9 ? (v / 1e9).toPrecision(3) + "G"
    : Math.abs(v) >= 1e6 ? (v / 1e6).toPrecision(3) + "M" : Math.abs(v) >= 1e3 ? (v / 1e3).toPrecision(3) + "k" : (+v.toPrecision(3)).toString();

  // horizontal bars: rows [{label, value, tip}], opts {unit, fmt}
  function hbar(host, rows, opts) {
    const W = 640, left = 130, right = 70, rowH = 20, top = 8, H = top + rows.length * rowH + 38;
    const s = svg(host, W, H);
    const max = Math.max(...rows.map(r => r.value), 1e-12);
    const ticks = niceTicks(0, max, 5), xmax = ticks[ticks.length - 1];
    const x = v => left + (W - left - right) * v / xmax;
    ticks.forEach(t => { el("line", {x1: x(t), x2: x(t), y1: top, y2: H - 30, stroke: "#e3e7ef"}, s);
      el("text", {x: x(t), y: H - 18, "text-anchor": "middle"}, s, short(t)); });
    el("text", {x: (left + W - right) / 2, y: H - 3, "text-anchor": "middle"}, s, opts.unit);
    rows.forEach((r, i) => {
      const y = top + i * rowH;
      el("text", {x: left - 6, y: y + 14, "text-anchor": "end"}, s, r.label);
      const b = el("rect", {x: left, y: y + 3, width: Math.max(0.5, x(r.value) - left), height: rowH - 6,
        fill: PALETTE[i % PALETTE.length], "data-tip": r.tip || `${r.label}: ${opts.fmt(r.value)}`}, s);
      b.classList.add("mark");
      el("text", {x: x(r.value) + 4, y: y + 14}, s, opts.fmt(r.value));
    });
  }

  // one stacked bar against a limit: segs [{label, value}], opts {unit, fmt, limit, limitLabel}
  function stack(host, segs, opts) {
    const W = 640, left = 10, right = 20, H = 120;
    const s = svg(host, W, H);
    const total = segs.reduce((a, g) => a + g.value, 0);
    const sc = opts.scale || 1;
    const ticks = niceTicks(0, Math.max(total, opts.limit) * 1.02 / sc, 6).map(t => t * sc), xmax = ticks[ticks.length - 1];
    const x = v => left + (W - left - right) * v / xmax;
    ticks.forEach(t => { el("line", {x1: x(t), x2: x(t), y1: 10, y2: 62, stroke: "#e3e7ef"}, s);
      el("text", {x: x(t), y: 76, "text-anchor": "middle"}, s, opts.tick ? opts.tick(t) : short(t)); });
    el("text", {x: W / 2, y: 92, "text-anchor": "middle"}, s, opts.unit);
    let acc = 0;
    segs.forEach((g, i) => {
      const r = el("rect", {x: x(acc), y: 18, width: Math.max(0.5, x(acc + g.value) - x(acc)), height: 36,
        fill: PALETTE[i % PALETTE.length], "data-tip": `${g.label}: ${opts.fmt(g.value)}`}, s);
      r.classList.add("mark");
      acc += g.value;
    });
    const lx = x(opts.limit);
    const l = el("line", {x1: lx, x2: lx, y1: 6, y2: 62, stroke: "#c0392b", "stroke-width": 2,
      "stroke-dasharray": "5 3", "data-tip": `${opts.limitLabel}: ${opts.fmt(opts.limit)}`}, s);
    l.classList.add("mark");
    el("text", {x: Math.min(lx + 4, W - 90), y: 14, fill: "#c0392b"}, s, opts.limitLabel);
    let lx2 = left;
    segs.forEach((g, i) => { el("rect", {x: lx2, y: 102, width: 10, height: 10, fill: PALETTE[i % PALETTE.length]}, s);
      el("text", {x: lx2 + 13, y: 111}, s, g.label); lx2 += 16 + 7 * g.label.length; });
  }

  // points and lines: series [{name, color, line, points: [{x, y, tip, r}]}],
  // opts {xlabel, ylabel, xlog, hline: {y, label}, xfmt, yfmt}
  function scatter(host, series, opts) {
    const W = 640, H = 320, left = 70, right = 20, top = 14, bottom = 46;
    const s = svg(host, W, H);
    const pts = series.flatMap(se => se.points).filter(p => isFinite(p.x) && isFinite(p.y));
    if (!pts.length) { el("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, s, "no finite points"); return; }
    let xs = pts.map(p => p.x), ys = pts.map(p => p.y);
    if (opts.hline) ys.push(opts.hline.y);
    let x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(0, ...ys), y1 = Math.max(...ys) * 1.08;
    if (x1 === x0) { x0 *= opts.xlog ? 0.5 : 0.9; x1 *= opts.xlog ? 2 : 1.1; if (x1 === x0) x1 = x0 + 1; }
    const lx = v => opts.xlog ? Math.log10(v) : v;
    let xt = opts.xlog ? logTicks(x0, x1) : niceTicks(x0, x1, 6);
    if (!opts.xlog) { x0 = Math.min(x0, xt[0]); x1 = Math.max(x1, xt[xt.length - 1]); }
    const yt = niceTicks(y0, y1, 5); y1 = yt[yt.length - 1];
    const X = v => left + (W - left - right) * (lx(v) - lx(x0)) / ((lx(x1) - lx(x0)) || 1);
    const Y = v => H - bottom - (H - top - bottom) * (v - y0) / ((y1 - y0) || 1);
    const xf = opts.xfmt || short, yf = opts.yfmt || short;
    xt.forEach(t => { el("line", {x1: X(t), x2: X(t), y1: top, y2: H - bottom, stroke: "#eef1f6"}, s);
      el("text", {x: X(t), y: H - bottom + 14, "text-anchor": "middle"}, s, xf(t)); });
    yt.forEach(t => { el("line", {x1: left, x2: W - right, y1: Y(t), y2: Y(t), stroke: "#eef1f6"}, s);
      el("text", {x: left - 6, y: Y(t) + 4, "text-anchor": "end"}, s, yf(t)); });
    el("text", {x: (left + W - right) / 2, y: H - 8, "text-anchor": "middle"}, s, opts.xlabel);
    el("text", {x: 14, y: (top + H - bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(top + H - bottom) / 2})`}, s, opts.ylabel);
    if (opts.hline) {
      const h = el("line", {x1: left, x2: W - right, y1: Y(opts.hline.y), y2: Y(opts.hline.y), stroke: "#c0392b",
        "stroke-dasharray": "5 3", "stroke-width": 2, "data-tip": opts.hline.label}, s);
      h.classList.add("mark");
      el("text", {x: W - right - 4, y: Y(opts.hline.y) - 4, "text-anchor": "end", fill: "#c0392b"}, s, opts.hline.label);
    }
    series.forEach((se, i) => {
      const color = se.color || PALETTE[i % PALETTE.length];
      const ok = se.points.filter(p => isFinite(p.x) && isFinite(p.y));
      if (se.line && ok.length > 1)
        el("polyline", {points: ok.map(p => `${X(p.x)},${Y(p.y)}`).join(" "), fill: "none", stroke: color,
          "stroke-width": 1.5}, s);
      ok.forEach(p => { const c = el("circle", {cx: X(p.x), cy: Y(p.y), r: p.r || 5, fill: color,
        "fill-opacity": p.faded ? 0.35 : 0.95, stroke: "#fff", "data-tip": p.tip || `${xf(p.x)}, ${yf(p.y)}`}, s);
        c.classList.add("mark"); if (p.cls) c.classList.add(p.cls); });
    });
    let lx2 = left + 6;
    series.forEach((se, i) => { if (!se.name) return;
      el("circle", {cx: lx2, cy: top + 4, r: 5, fill: se.color || PALETTE[i % PALETTE.length]}, s);
      el("text", {x: lx2 + 8, y: top + 8}, s, se.name); lx2 += 20 + 7 * se.name.length; });
  }

  // the tooltip: any element with data-tip
  document.addEventListener("mousemove", ev => {
    const tip = document.getElementById("tip");
    if (!tip) return;
    const t = ev.target && ev.target.getAttribute && ev.target.getAttribute("data-tip");
    if (t) { tip.textContent = t; tip.hidden = false; tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; }
    else tip.hidden = true;
  });
  return {hbar, stack, scatter, palette: PALETTE};
})();
