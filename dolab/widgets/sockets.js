// dolab sockets: simulated WebSocket clients as cards. Buttons send actions to Python
// ({action: "add" | "send" | "close" | "drop"}), which runs them and syncs `clients` back.
function button(parent, text, cls, onclick) {
  const b = html("button", `dolab-so-button ${cls || ""}`, parent, text);
  b.type = "button";
  b.addEventListener("click", onclick);
  return b;
}

function makeCard(model, id) {
  const card = html("div", "dolab-so-card");
  card.dataset.client = id;
  const head = html("div", "dolab-so-card-head", card);
  const title = html("span", "dolab-so-card-title", head);
  const state = html("span", "dolab-so-state", head);
  const actions = html("span", "dolab-so-actions", head);
  const closeB = button(actions, "close", "close", () => model.send({ action: "close", client: id }));
  const dropB = button(actions, "drop", "drop", () => model.send({ action: "drop", client: id }));
  const url = html("div", "dolab-so-card-url", card);
  const list = html("ol", "dolab-so-messages", card);
  const form = html("form", "dolab-so-send", card);
  const input = html("input", "", form);
  input.placeholder = "message";
  const sendB = html("button", "dolab-so-button send", form, "send");
  sendB.type = "submit";
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    model.send({ action: "send", client: id, text: input.value });
    input.value = "";
  });
  return { card, title, url, state, list, controls: [closeB, dropB, input, sendB] };
}

function update(parts, data) {
  parts.title.textContent = data.id;
  parts.url.textContent = data.url;
  parts.state.textContent = data.close ? `${data.state} ${data.close}` : data.state;
  parts.state.className = `dolab-so-state state-${data.state}`;
  for (const c of parts.controls) c.disabled = data.state !== "open";
  parts.list.replaceChildren();
  if (data.hidden) html("li", "dolab-so-more", parts.list, `… ${data.hidden} earlier`);
  for (const m of data.messages) {
    html("li", `dolab-so-msg ${m.dir}`, parts.list, `${m.dir === "in" ? "←" : "→"} ${m.text}`);
  }
  parts.list.scrollTop = parts.list.scrollHeight;
}

function render({ model, el }) {
  el.classList.add("dolab-card", "dolab-sockets");
  const head = html("div", "dolab-so-head", el);
  html("span", "dolab-so-title", head, "WebSocket clients");
  const url = html("input", "dolab-so-url", head);
  url.value = model.get("url");
  url.addEventListener("change", () => { model.set("url", url.value); model.save_changes(); });
  const add = button(head, "+ add client", "add", () => model.send({ action: "add", url: url.value }));
  const error = html("div", "dolab-so-error", el);
  const grid = html("div", "dolab-so-grid", el);
  const empty = html("p", "dolab-so-empty", el, "No clients yet: add one (it connects through the Worker's fetch).");
  const cards = new Map();  // id -> parts; kept across updates so drafts in send boxes survive

  function draw() {
    const clients = model.get("clients") || [];
    if (document.activeElement !== url) url.value = model.get("url");
    add.disabled = model.get("busy");
    error.textContent = model.get("error") || "";
    empty.hidden = clients.length > 0;
    const seen = new Set();
    for (const data of clients) {
      seen.add(data.id);
      if (!cards.has(data.id)) {
        const parts = makeCard(model, data.id);
        cards.set(data.id, parts);
        grid.appendChild(parts.card);
      }
      update(cards.get(data.id), data);
    }
    for (const [id, parts] of cards) {
      if (!seen.has(id)) { parts.card.remove(); cards.delete(id); }
    }
  }
  const names = ["clients", "url", "error", "busy"];
  for (const name of names) model.on(`change:${name}`, draw);
  draw();
  return () => { for (const name of names) model.off(`change:${name}`, draw); };
}

export default { render };
