// dolab timeline: draws the synced view model (lanes, bars, ticks, markers) as SVG.
// All logic (segments, stacking, tooltips) is computed in Python (dolab/views.py).
const SVG = "http://www.w3.org/2000/svg";
const ROW = 16;        // px per row inside a lane
const BAR = 12;        // px bar height
const GAP = 12;        // px between lanes
const LABEL_W = 170;   // px for lane labels
const AXIS_H = 26;     // px for the x axis

function svg(tag, attrs, parent) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function niceTicks(x0, x1, count) {
  const span = Math.max(x1 - x0, 1e-9);
  const raw = span / count;
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(x0 / step) * step; v <= x1 + 1e-9; v += step) out.push(+v.toFixed(9));
  return out;
}

function fmt(v, axis) {
  if (axis === "order") return String(Math.round(v));
  if (Math.abs(v) < 1) return `${+(v * 1000).toFixed(1)} ms`;
  return `${+v.toFixed(3)} s`;
}

function legend(model, parent) {
  parent.replaceChildren();
  const pal = model.get("palette") || {};
  const item = (color, label, shape) => {
    const span = html("span", "dolab-tl-legend-item", parent);
    const sw = html("span", `dolab-tl-swatch dolab-tl-swatch-${shape}`, span);
    sw.style.setProperty("--swatch", color);
    html("span", "", span, label);
  };
  for (const seg of Object.values(pal.segments || {})) item(seg.color, seg.label, "box");
  if (pal.commit) item(pal.commit, "commit", "line");
  if (pal.ops) {
    item(pal.ops.read.color, "read", "dot");
    item(pal.ops.write.color, "write", "diamond");
  }
  const extent = model.get("extent") || {};
  if (pal.ops && (extent.ops || []).includes("send")) item(pal.ops.send.color, "socket send", "triangle");
  if (pal.error) item(pal.error, "error", "outline");
  for (const kind of extent.marker_kinds || []) {
    const style = (pal.markers || {})[kind];
    if (!style) continue;
    const span = html("span", "dolab-tl-legend-item", parent);
    const glyph = html("span", "dolab-tl-glyph", span, style.glyph);
    glyph.style.color = style.color;
    html("span", "", span, style.label);
  }
}

function layout(lanes) {
  const tops = new Map();
  let y = 4;
  for (const lane of lanes) {
    tops.set(lane.id, y);
    y += (lane.rows || 1) * ROW + GAP;
  }
  return { tops, height: y + AXIS_H };
}

function drawLanes(g, lanes, tops, width, model) {
  lanes.forEach((lane, i) => {
    const top = tops.get(lane.id);
    const h = (lane.rows || 1) * ROW + GAP;
    svg("rect", { x: 0, y: top - GAP / 2, width, height: h,
      class: i % 2 === 0 ? "dolab-tl-lane even" : "dolab-tl-lane" }, g);
    const label = svg("text", { x: 8, y: top + Math.min(h - GAP, ROW * 1.5) / 2 + 4,
      class: "dolab-tl-label" }, g);
    svg("title", {}, label).textContent = lane.kind === "object" ? `${lane.id}: click to inspect` : lane.id;
    label.textContent = lane.label;
    const state = svg("tspan", { class: `dolab-tl-state state-${lane.state}`, dx: 6 }, label);
    state.textContent = lane.state;
    if (lane.kind === "object") {  // a click shows the object in the dashboard's inspector
      label.classList.add("clickable");
      label.addEventListener("click", () => { model.set("selected", lane.id); model.save_changes(); });
    }
  });
}

function drawBar(g, bar, sx, top, pal, tip) {
  const y = top + bar.row * ROW + (ROW - BAR) / 2;
  const group = svg("g", { class: `dolab-tl-bar status-${bar.status}`, "data-request": bar.request }, g);
  for (const seg of bar.segments) {
    const x = sx(seg.start);
    svg("rect", { x, y, width: Math.max(sx(seg.end) - x, 1.5), height: BAR,
      fill: (pal.segments[seg.kind] || {}).color || "#999", class: `seg seg-${seg.kind}` }, group);
  }
  const x0 = sx(bar.start);
  svg("rect", { x: x0, y, width: Math.max(sx(bar.end) - x0, 1.5), height: BAR,
    class: bar.status === "error" ? "dolab-tl-outline error" : "dolab-tl-outline",
    stroke: bar.status === "error" ? pal.error : "#343a40" }, group);
  for (const op of bar.ops) {
    if (op.kind === "read") {
      svg("circle", { cx: sx(op.x), cy: y + BAR / 2, r: 2.6, class: "dolab-tl-read",
        stroke: pal.ops.read.color }, group);
    } else if (op.kind === "send") {
      const cx = sx(op.x), cy = y + BAR / 2;
      svg("path", { d: `M${cx} ${cy - 4}L${cx + 3.5} ${cy + 3}L${cx - 3.5} ${cy + 3}Z`,
        fill: pal.ops.send.color, class: "dolab-tl-send" }, group);
    } else if (op.kind === "write") {
      const cx = sx(op.x), cy = y + BAR / 2;
      svg("path", { d: `M${cx} ${cy - 3.5}L${cx + 3.5} ${cy}L${cx} ${cy + 3.5}L${cx - 3.5} ${cy}Z`,
        fill: pal.ops.write.color, class: "dolab-tl-write" }, group);
    }
  }
  tip.attach(group, bar.title, `bar:${bar.request}`);
}

function drawTicks(g, ticks, lanes, tops, sx, pal, tip) {
  const rows = new Map(lanes.map((l) => [l.id, l.rows || 1]));
  for (const tick of ticks) {
    for (const lane of tick.lanes) {
      const top = tops.get(lane);
      if (top === undefined) continue;
      const line = svg("line", { x1: sx(tick.x), x2: sx(tick.x), y1: top - GAP / 2 + 1,
        y2: top + rows.get(lane) * ROW + GAP / 2 - 1, stroke: pal.commit, class: "dolab-tl-tick" }, g);
      tip.attach(line, tick.title, `tick:${tick.seq}:${lane}`);
    }
  }
}

function drawMarkers(g, markers, tops, sx, pal, tip) {
  for (const m of markers) {
    const top = tops.get(m.lane);
    if (top === undefined) continue;
    const style = (pal.markers || {})[m.kind] || { glyph: "•", color: "#555" };
    const text = svg("text", { x: sx(m.x), y: top - 1, fill: style.color,
      class: `dolab-tl-marker marker-${m.kind}`, "text-anchor": "middle" }, g);
    text.textContent = style.glyph;
    tip.attach(text, m.title, `marker:${m.seq}`);
  }
}

function drawAxis(g, extent, sx, y, width) {
  svg("line", { x1: LABEL_W, x2: width - 10, y1: y, y2: y, class: "dolab-tl-axis" }, g);
  for (const v of niceTicks(extent.x0, extent.x1, 8)) {
    svg("line", { x1: sx(v), x2: sx(v), y1: y, y2: y + 4, class: "dolab-tl-axis" }, g);
    const t = svg("text", { x: sx(v), y: y + 15, "text-anchor": "middle", class: "dolab-tl-axis-label" }, g);
    t.textContent = fmt(v, extent.axis);
  }
}

// One tooltip for the widget, positioned inside `el` (not the scrolling canvas, which would clip
// it) and flipped above / to the left of the pointer when it would leave the widget.
function tooltip(el) {
  const box = html("div", "dolab-tl-tooltip", el);
  box.hidden = true;
  const place = (ev) => {
    const r = el.getBoundingClientRect();
    let x = ev.clientX - r.left + 12;
    let y = ev.clientY - r.top + 12;
    if (x + box.offsetWidth > r.width) x = Math.max(0, ev.clientX - r.left - box.offsetWidth - 12);
    if (y + box.offsetHeight > r.height) y = Math.max(0, ev.clientY - r.top - box.offsetHeight - 12);
    box.style.left = `${x}px`;
    box.style.top = `${y}px`;
  };
  let current = null;        // key of what the pointer is on
  let pointer = null;        // its last position (client coordinates)
  let texts = new Map();     // key -> text, for the drawing on screen
  return {
    node: box,
    attach(node, text, key) {
      texts.set(key, text);
      node.dataset.tip = key;
      node.addEventListener("mouseenter", (ev) => {
        current = key;
        pointer = [ev.clientX, ev.clientY];
        box.textContent = text;
        box.hidden = false;
        place(ev);
      });
      node.addEventListener("mousemove", (ev) => { pointer = [ev.clientX, ev.clientY]; place(ev); });
      node.addEventListener("mouseleave", () => { current = null; box.hidden = true; });
    },
    reset() { texts = new Map(); },
    // A live redraw replaces the nodes under the pointer: keep the tooltip only if the pointer
    // is still on the same item (then with its new text).
    sync() {
      const under = pointer && document.elementFromPoint(pointer[0], pointer[1]);
      const key = under && under.closest ? (under.closest("[data-tip]") || {}).dataset : null;
      if (current !== null && key && key.tip === current && texts.has(current)) {
        box.textContent = texts.get(current);
      } else {
        current = null;
        box.hidden = true;
      }
    },
  };
}

function render({ model, el }) {
  el.classList.add("dolab-timeline");
  const head = html("div", "dolab-tl-head", el);
  html("span", "dolab-tl-title", head, "Timeline");
  const legendBox = html("div", "dolab-tl-legend", head);
  const controls = html("div", "dolab-tl-controls", head);
  const status = html("span", "dolab-tl-status", controls);
  const select = html("select", "dolab-tl-axis-select", controls);
  for (const [value, label] of [["order", "trace order"], ["time", "lab time"]]) {
    const opt = html("option", "", select, label);
    opt.value = value;
  }
  select.addEventListener("change", () => { model.set("axis", select.value); model.save_changes(); });
  const wrap = html("div", "dolab-tl-canvas", el);
  const tip = tooltip(el);
  const empty = html("div", "dolab-tl-empty", wrap,
    "No requests yet: call a stub (or lab.fetch) and this timeline fills in as they run.");

  let frame = 0;
  let chart = null;
  function draw() {
    frame = 0;
    const lanes = model.get("lanes") || [];
    const bars = model.get("bars") || [];
    const extent = model.get("extent") || { x0: 0, x1: 1, axis: "order" };
    const pal = model.get("palette") || { segments: {}, ops: { read: {}, write: {} } };
    select.value = model.get("axis");
    const hidden = extent.hidden ? ` · ${extent.hidden} earlier hidden` : "";
    status.textContent = `${extent.shown || 0} requests${hidden}`;
    empty.hidden = lanes.length > 0;
    if (chart) chart.remove();
    chart = null;
    tip.reset();
    if (!lanes.length) { tip.sync(); return; }
    const width = Math.max(wrap.clientWidth || 0, 640);
    const { tops, height } = layout(lanes);
    const span = Math.max(extent.x1 - extent.x0, 1e-9);
    const sx = (v) => LABEL_W + ((v - extent.x0) / span) * (width - LABEL_W - 16);
    chart = svg("svg", { width, height, class: "dolab-tl-svg" });
    wrap.appendChild(chart);
    drawLanes(svg("g", {}, chart), lanes, tops, width, model);
    const plot = svg("g", {}, chart);
    for (const bar of bars) {
      if (tops.has(bar.lane)) drawBar(plot, bar, sx, tops.get(bar.lane), pal, tip);
    }
    drawTicks(svg("g", {}, chart), model.get("ticks") || [], lanes, tops, sx, pal, tip);
    drawMarkers(svg("g", {}, chart), model.get("markers") || [], tops, sx, pal, tip);
    drawAxis(svg("g", {}, chart), extent, sx, height - AXIS_H + 4, width);
    tip.sync();
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(draw); };
  const names = ["lanes", "bars", "ticks", "markers", "extent", "palette", "axis"];
  for (const name of names) model.on(`change:${name}`, schedule);
  const relegend = () => legend(model, legendBox);
  model.on("change:palette", relegend);
  model.on("change:extent", relegend);
  relegend();
  draw();
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(schedule) : null;
  if (resize) resize.observe(wrap);
  return () => {
    for (const name of names) model.off(`change:${name}`, schedule);
    model.off("change:palette", relegend);
    model.off("change:extent", relegend);
    if (resize) resize.disconnect();
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
