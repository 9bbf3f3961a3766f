// dolab inspector: one object's committed storage and a slider over its versions.
// The data (entries, diff, labels) is computed in Python (dolab/views.py).
function table(parent, headers, rows) {
  const t = html("table", "dolab-in-table", parent);
  const tr = html("tr", "", html("thead", "", t));
  for (const h of headers) html("th", "", tr, h);
  const body = html("tbody", "", t);
  for (const row of rows) {
    const r = html("tr", row.cls || "", body);
    for (const cell of row.cells) html("td", "", r, cell === null || cell === undefined ? "—" : cell);
  }
  return t;
}

function render({ model, el }) {
  el.classList.add("dolab-card", "dolab-inspector");
  const head = html("div", "dolab-in-head", el);
  html("span", "dolab-in-title", head, "Inspector");
  const picker = html("select", "dolab-in-picker", head);
  const state = html("span", "dolab-in-state", head);
  const sliderRow = html("div", "dolab-in-slider", el);
  const slider = html("input", "", sliderRow);
  slider.type = "range";
  slider.min = "0";
  const versionLabel = html("span", "dolab-in-version", sliderRow);
  const body = html("div", "dolab-in-body", el);

  picker.addEventListener("change", () => { model.set("label", picker.value); model.save_changes(); });
  slider.addEventListener("input", () => {
    const versions = model.get("versions") || [];
    const v = versions[+slider.value];
    versionLabel.textContent = v ? v.label : "";
  });
  slider.addEventListener("change", () => { model.set("index", +slider.value); model.save_changes(); });

  function draw() {
    const objects = model.get("objects") || [];
    const label = model.get("label");
    picker.replaceChildren();
    if (!objects.includes(label) && label) objects.unshift(label);
    for (const name of objects) {
      const opt = html("option", "", picker, name);
      opt.value = name;
    }
    picker.value = label;
    const st = model.get("state") || "";
    state.textContent = st;
    state.className = `dolab-in-state state-${st.replace(/ /g, "-")}`;
    const versions = model.get("versions") || [];
    const index = model.get("index");
    sliderRow.hidden = versions.length === 0;
    slider.max = String(Math.max(versions.length - 1, 0));
    slider.value = String(Math.max(index, 0));
    versionLabel.textContent = versions[index] ? `${versions[index].label}  (${index + 1}/${versions.length})` : "";
    body.replaceChildren();
    if (!label) { html("p", "dolab-in-empty", body, "No objects yet."); return; }
    if (!versions.length) { html("p", "dolab-in-empty", body, "Nothing committed yet."); return; }
    const alarm = model.get("alarm");
    html("div", "dolab-in-alarm", body, `alarm: ${alarm || "none"}`);
    html("h4", "", body, "KV entries");
    const entries = model.get("entries") || [];
    if (entries.length) table(body, ["key", "value"], entries.map((e) => ({ cells: [e.key, e.value] })));
    else html("p", "dolab-in-empty", body, "(empty)");
    const more = model.get("hidden_entries");
    if (more) html("p", "dolab-in-empty", body, `… ${more} more entries`);
    const tables = model.get("tables") || [];
    if (tables.length) {
      html("h4", "", body, "SQL tables");
      html("p", "dolab-in-tables", body, tables.join(", "));
    }
    html("h4", "", body, index > 0 ? "Changes from the previous version" : "Changes (first version)");
    const diff = model.get("diff") || [];
    if (diff.length) {
      table(body, ["", "key", "before", "after"], diff.map((d) => ({
        cls: `change-${d.change}`,
        cells: [d.change, d.kind === "kv" ? d.key : `${d.kind}: ${d.key}`, d.old, d.new],
      })));
    } else html("p", "dolab-in-empty", body, "(no change)");
  }
  let frame = 0;
  const schedule = () => { if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); }); };
  const names = ["objects", "label", "state", "versions", "index", "entries", "hidden_entries",
    "tables", "alarm", "diff"];
  for (const name of names) model.on(`change:${name}`, schedule);
  draw();
  return () => {
    for (const name of names) model.off(`change:${name}`, schedule);
    if (frame) cancelAnimationFrame(frame);
  };
}

export default { render };
