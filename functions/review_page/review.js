/* The review desk: the page of the `review` function (functions/review*.py).
 *
 * It talks to the function's JSON API on the same origin (GET /api/queue,
 * /api/items/<id>, /api/labels, /api/me; POST /api/decisions) and shows the
 * queue as a grid. Every string that an uploader or a record controls (object
 * names, custom metadata, labels) goes into the DOM through textContent or
 * setAttribute only, never as HTML; there is no inline script or style (the
 * Content-Security-Policy forbids them). Every POST carries the header
 * `X-Requested-With: fashion-review`, which the function requires (CSRF).
 *
 * Undo (key u, or the Undo button) takes back the last action of this page:
 * one decision, or one bulk approval. The API has no "undecided" state, so
 * undo sends nothing by itself: it puts the items back into the grid, marked
 * with a dashed border, and the next decision on each of them is sent with
 * "change": true, which replaces the undone decision (the record keeps the
 * undone one in review.previous). Until then the record keeps the undone
 * decision. Items that someone else decided differently (409) are marked the
 * same way: deciding again overrides.
 *
 * Attributes (gender, colour family, usage, season; a model with attribute
 * heads only): the details pane shows each one with its confidence, marks
 * the ones the model left empty (low confidence), and offers a select per
 * attribute (key e focuses the first one, Esc goes back to the grid). The
 * corrections made there go with the item's next approve or relabel as
 * "attributes": {name: value or null}; the server checks them against the
 * record's model's attribute labels (400 with a JSON reason otherwise).
 */
"use strict";

(() => {
  const PAGE_SIZE = 48;
  const CSRF_HEADER = "X-Requested-With";
  const CSRF_VALUE = "fashion-review";

  const $ = (id) => document.getElementById(id);
  const ui = {
    grid: $("grid"),
    empty: $("empty"),
    status: $("status"),
    band: $("band"),
    category: $("category"),
    attributesFilter: $("attributes-filter"),
    order: $("order"),
    refresh: $("refresh"),
    loadMore: $("load-more"),
    bulk: $("bulk-approve"),
    undo: $("undo"),
    selectedCount: $("selected-count"),
    doneToday: $("done-today"),
    remaining: $("remaining"),
    reviewer: $("reviewer"),
    legend: $("legend"),
    template: $("card-template"),
    dialog: $("reject-dialog"),
    rejectForm: $("reject-form"),
    rejectReason: $("reject-reason"),
    rejectWhat: $("reject-what"),
    rejectCancel: $("reject-cancel"),
    details: {
      empty: $("details-empty"),
      list: $("details-list"),
      name: $("d-name"),
      sku: $("d-sku"),
      created: $("d-created"),
      status: $("d-status"),
      destination: $("d-destination"),
      topk: $("d-topk"),
      metadata: $("d-metadata"),
      attributes: $("d-attributes"),
      attributesTitle: $("d-attributes-title"),
      attributesBox: $("d-attributes-box"),
    },
  };

  const state = {
    labels: [],
    attributeLabels: {}, // attribute -> [labels] of the current model
    corrections: new Map(), // id -> {attribute: value or null}, sent with the next approve or relabel
    cards: new Map(), // id -> {item, card}
    current: null, // id
    selected: new Set(),
    reopened: new Set(), // ids whose next decision goes with change: true
    nextToken: null,
    undoStack: [], // [{what, entries: [{id, item, index}]}]
    rejecting: null, // id being rejected in the dialog
    busy: false,
    detailsFor: null,
    loadSeq: 0,
  };

  // -- the API --------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /** JSON from the function; throws ApiError with the answer's {"error": {code, message}}. */
  async function api(path, options = {}) {
    const init = { method: options.method || "GET", headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (init.method !== "GET") {
      init.headers[CSRF_HEADER] = CSRF_VALUE;
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body || {});
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "unreachable", `cannot reach the review service (${err.message})`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      throw new ApiError(response.status, String(error.code || "http_" + response.status), String(error.message || response.statusText));
    }
    return body;
  }

  function describe(err) {
    if (err instanceof ApiError) {
      return err.status ? `Error ${err.status} (${err.code}): ${err.message}` : `Error: ${err.message}`;
    }
    return `Error: ${err && err.message ? err.message : err}`;
  }

  // -- status and progress --------------------------------------------------

  function showStatus(text, kind = "info") {
    ui.status.textContent = text;
    ui.status.classList.toggle("error", kind === "error");
    ui.status.hidden = !text;
    ui.status.dataset.kind = kind;
  }

  function showProgress(progress) {
    if (!progress) return;
    ui.doneToday.textContent = String(progress.done_today);
    ui.remaining.textContent = String(progress.remaining);
  }

  function queueQuery(pageSize, token) {
    const params = new URLSearchParams();
    if (ui.band.value) params.set("band", ui.band.value);
    if (ui.category.value) params.set("category", ui.category.value);
    if (ui.attributesFilter.value) params.set("attributes", ui.attributesFilter.value);
    params.set("order", ui.order.value);
    params.set("page_size", String(pageSize));
    if (token) params.set("page_token", token);
    return "/api/queue?" + params.toString();
  }

  async function refreshProgress() {
    try {
      showProgress((await api(queueQuery(1, null))).progress);
    } catch (err) {
      // the decision itself went through; the next load shows the figures
    }
  }

  // -- labels and reviewer --------------------------------------------------

  function labelNumber(index) {
    return index === 9 ? "0" : String(index + 1);
  }

  function renderLabels() {
    ui.legend.replaceChildren();
    state.labels.forEach((label, index) => {
      const entry = document.createElement("li");
      if (index < 10) {
        const key = document.createElement("kbd");
        key.textContent = labelNumber(index);
        entry.append(key);
      }
      entry.append(document.createTextNode(index < 10 ? " " + label : label));
      ui.legend.append(entry);
      const option = document.createElement("option");
      option.value = label;
      option.textContent = label;
      ui.category.append(option);
    });
  }

  // -- the grid ---------------------------------------------------------------

  function percent(value) {
    return typeof value === "number" ? (value * 100).toFixed(1) + "%" : "-";
  }

  function renderCard(item) {
    const card = ui.template.content.firstElementChild.cloneNode(true);
    card.dataset.id = item.id;
    const name = item.source && item.source.name ? String(item.source.name) : String(item.id);
    card.setAttribute("aria-label", `${name}: ${item.label} ${percent(item.confidence)}`);
    card.querySelector(".label").textContent = String(item.label);
    card.querySelector(".confidence").textContent = percent(item.confidence);
    const band = card.querySelector(".band");
    band.textContent = String(item.band || "");
    if (item.band === "check" || item.band === "review") band.classList.add("band-" + item.band);
    card.querySelector(".margin").textContent = typeof item.margin === "number" ? `margin ${percent(item.margin)}` : "";
    renderCardAttributes(card.querySelector(".attrs"), item);
    const nameEl = card.querySelector(".name");
    nameEl.textContent = name;
    nameEl.setAttribute("title", name);
    const img = card.querySelector(".thumb");
    img.setAttribute("alt", name);
    img.addEventListener("error", () => renewImage(item.id, img), { once: true });
    if (typeof item.image_url === "string") img.setAttribute("src", item.image_url);
    const relabel = card.querySelector(".relabel");
    state.labels.forEach((label, index) => {
      const option = document.createElement("option");
      option.value = label;
      option.textContent = index < 10 ? `${labelNumber(index)} ${label}` : label;
      relabel.append(option);
    });
    const box = card.querySelector(".pick-box");
    box.setAttribute("aria-label", `select ${name}`);
    box.addEventListener("change", () => toggleSelected(item.id, box.checked));
    card.querySelector(".approve").addEventListener("click", () => approve(item.id));
    card.querySelector(".reject").addEventListener("click", () => askReject(item.id));
    relabel.addEventListener("change", () => {
      const label = relabel.value;
      relabel.value = "";
      if (label) relabelTo(item.id, label);
    });
    card.addEventListener("click", (event) => {
      if (!event.target.closest("button, select, input, label")) setCurrent(item.id, true);
    });
    card.addEventListener("focusin", () => setCurrent(item.id, false));
    return card;
  }

  /** The card's line of attributes: "gender Men · colour ? ..." (a "?" marks one left empty). */
  function renderCardAttributes(line, item) {
    line.replaceChildren();
    const attributes = item.attributes || {};
    const names = Object.keys(attributes);
    line.hidden = !names.length;
    names.forEach((name, index) => {
      const a = attributes[name] || {};
      const span = document.createElement("span");
      span.className = "attr";
      if (a.value == null) span.classList.add("attr-low");
      span.dataset.attribute = name;
      span.textContent = `${name} ${a.value == null ? "?" : a.value}`;
      if (index) line.append(document.createTextNode(" \u00b7 "));
      line.append(span);
    });
  }

  /** The details pane's attributes: one select per attribute, its confidence, low-confidence ones marked. */
  function renderAttributes(detail) {
    const d = ui.details;
    d.attributes.replaceChildren();
    const attributes = detail.attributes || {};
    const names = Object.keys(attributes);
    d.attributesTitle.hidden = d.attributesBox.hidden = !names.length;
    const pending = state.corrections.get(detail.id) || {};
    for (const name of names) {
      const a = attributes[name] || {};
      const id = "attr-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
      const label = document.createElement("label");
      label.setAttribute("for", id);
      label.textContent = name;
      const select = document.createElement("select");
      select.id = id;
      select.className = "attr-select";
      select.dataset.attribute = name;
      const empty = document.createElement("option");
      empty.value = "";
      empty.textContent = "(empty)";
      select.append(empty);
      const choices = (state.attributeLabels[name] || []).map(String);
      for (const value of [a.value, a.best]) if (value != null && !choices.includes(String(value))) choices.push(String(value));
      for (const value of choices) {
        const option = document.createElement("option");
        option.value = value;
        option.textContent = value === a.best && a.value == null ? `${value} (model's guess)` : value;
        select.append(option);
      }
      const chosen = Object.prototype.hasOwnProperty.call(pending, name) ? pending[name] : a.value;
      select.value = chosen == null ? "" : String(chosen);
      select.classList.toggle("attr-changed", Object.prototype.hasOwnProperty.call(pending, name));
      select.addEventListener("change", () => {
        const corrections = state.corrections.get(detail.id) || {};
        corrections[name] = select.value === "" ? null : select.value;
        state.corrections.set(detail.id, corrections);
        select.classList.add("attr-changed");
      });
      select.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          if (state.current && state.cards.has(state.current)) state.cards.get(state.current).card.focus({ preventScroll: true });
        }
      });
      const note = document.createElement("p");
      note.className = "attr-note";
      const low = a.low_confidence && !a.corrected;
      const model = a.model || { value: a.low_confidence ? null : a.value, best: a.best, confidence: a.confidence, threshold: a.threshold };
      const parts = [];
      if (a.corrected) parts.push("set by a reviewer");
      if (a.corrected && model.best != null) parts.push(`model said ${model.value == null ? "(empty)" : model.value}, guess ${model.best} at ${percent(model.confidence)}`);
      else parts.push(`confidence ${percent(model.confidence)}`);
      if (typeof model.threshold === "number") parts.push(`threshold ${percent(model.threshold)}`);
      if (low) parts.push(`low confidence: left empty (model's guess ${model.best})`);
      note.textContent = parts.join(", ");
      if (low) {
        label.classList.add("attr-low");
        note.classList.add("attr-low");
      }
      d.attributes.append(label, select, note);
    }
  }

  function editAttributes() {
    const first = ui.details.attributes.querySelector("select");
    if (first) first.focus();
    else showStatus("This item has no attributes to edit.", "info");
  }

  /** A signed image URL expires within minutes: ask for the item again, once, for a fresh one. */
  async function renewImage(id, img) {
    try {
      const fresh = await api("/api/items/" + encodeURIComponent(id));
      if (typeof fresh.image_url === "string") img.setAttribute("src", fresh.image_url);
    } catch (err) {
      // the alt text (the object's name) stays
    }
  }

  function ids() {
    return Array.from(ui.grid.children, (card) => card.dataset.id);
  }

  function addItems(items) {
    for (const item of items) {
      if (state.cards.has(item.id)) continue;
      const card = renderCard(item);
      state.cards.set(item.id, { item, card });
      ui.grid.append(card);
    }
    updateEmpty();
  }

  function updateEmpty() {
    ui.empty.hidden = ui.grid.children.length > 0;
    ui.loadMore.hidden = !state.nextToken;
  }

  async function loadQueue(reset) {
    const seq = ++state.loadSeq;
    if (reset) state.nextToken = null;
    try {
      const page = await api(queueQuery(PAGE_SIZE, reset ? null : state.nextToken));
      if (seq !== state.loadSeq) return;
      if (reset) {
        ui.grid.replaceChildren();
        state.cards.clear();
        state.selected.clear();
        state.current = null;
        showDetails(null);
      }
      state.nextToken = page.next_page_token || null;
      addItems(page.items || []);
      showProgress(page.progress);
      updateSelection();
      if (!state.current && ui.grid.children.length) setCurrent(ids()[0], false);
      if (reset) showStatus("");
    } catch (err) {
      if (seq === state.loadSeq) showStatus(describe(err), "error");
    }
  }

  // -- current item, selection, details --------------------------------------

  function setCurrent(id, focus) {
    if (!id || !state.cards.has(id)) return;
    if (state.current && state.cards.has(state.current)) state.cards.get(state.current).card.classList.remove("current");
    state.current = id;
    const { card } = state.cards.get(id);
    card.classList.add("current");
    if (focus) {
      card.focus({ preventScroll: true });
      card.scrollIntoView({ block: "nearest" });
    }
    loadDetails(id);
  }

  function columns() {
    const template = getComputedStyle(ui.grid).gridTemplateColumns;
    return Math.max(1, template.split(" ").filter(Boolean).length);
  }

  function move(delta) {
    const list = ids();
    if (!list.length) return;
    const at = list.indexOf(state.current);
    const next = at < 0 ? 0 : Math.min(list.length - 1, Math.max(0, at + delta));
    setCurrent(list[next], true);
    if (next === list.length - 1 && delta > 0 && state.nextToken) loadQueue(false);
  }

  function toggleSelected(id, on) {
    if (!state.cards.has(id)) return;
    const want = on === undefined ? !state.selected.has(id) : on;
    if (want) state.selected.add(id);
    else state.selected.delete(id);
    updateSelection();
  }

  function updateSelection() {
    for (const [id, { card }] of state.cards) {
      const on = state.selected.has(id);
      card.setAttribute("aria-selected", on ? "true" : "false");
      card.querySelector(".pick-box").checked = on;
    }
    ui.selectedCount.textContent = `${state.selected.size} selected`;
    ui.bulk.disabled = state.selected.size === 0;
    ui.undo.disabled = state.undoStack.length === 0;
  }

  function showDetails(detail) {
    const d = ui.details;
    d.empty.hidden = !!detail;
    d.list.hidden = !detail;
    if (!detail) return;
    const source = detail.source || {};
    d.name.textContent = String(source.name || detail.id);
    d.sku.textContent = detail.sku == null ? "-" : String(detail.sku);
    const created = detail.created_at ? new Date(detail.created_at) : null;
    d.created.textContent = created && !isNaN(created) ? created.toLocaleString() : String(detail.created_at || "-");
    const review = detail.review;
    d.status.textContent = review ? `${detail.status}: ${review.decision}${review.final_label ? " as " + review.final_label : ""} by ${review.reviewed_by}` : String(detail.status || "-");
    const destination = detail.destination || {};
    d.destination.textContent = destination.name ? `gs://${destination.bucket}/${destination.name}` : "-";
    d.topk.replaceChildren();
    for (const entry of detail.top_k || []) {
      const li = document.createElement("li");
      li.textContent = `${entry.label} ${percent(entry.score)}`;
      d.topk.append(li);
    }
    renderAttributes(detail);
    d.metadata.replaceChildren();
    const metadata = detail.metadata || {};
    const keys = Object.keys(metadata);
    if (!keys.length) {
      const row = d.metadata.insertRow();
      row.insertCell().textContent = "none";
    }
    for (const key of keys) {
      const row = d.metadata.insertRow();
      const th = document.createElement("th");
      th.setAttribute("scope", "row");
      th.textContent = key;
      row.append(th);
      row.insertCell().textContent = String(metadata[key]);
    }
  }

  let detailsTimer = null;
  function loadDetails(id) {
    clearTimeout(detailsTimer);
    state.detailsFor = id;
    detailsTimer = setTimeout(async () => {
      try {
        const detail = await api("/api/items/" + encodeURIComponent(id));
        if (state.detailsFor === id) showDetails(detail);
      } catch (err) {
        if (state.detailsFor === id) {
          showDetails(null);
          showStatus(describe(err), "error");
        }
      }
    }, 120);
  }

  // -- decisions --------------------------------------------------------------

  function cardError(id, text) {
    const entry = state.cards.get(id);
    if (!entry) return;
    const el = entry.card.querySelector(".card-error");
    el.textContent = text;
    el.hidden = !text;
  }

  /** POST the decisions; drop the decided cards; remember them for undo. */
  async function decide(decisions, what) {
    if (state.busy) {
      showStatus("Still sending the previous decision...", "info");
      return;
    }
    decisions = decisions.filter((d) => state.cards.has(d.id));
    if (!decisions.length) return;
    for (const d of decisions) {
      d.change = state.reopened.has(d.id);
      const corrections = state.corrections.get(d.id);
      if (d.action !== "reject" && corrections && Object.keys(corrections).length) d.attributes = corrections;
    }
    state.busy = true;
    const order = ids();
    for (const d of decisions) state.cards.get(d.id).card.classList.add("busy");
    let results;
    try {
      const answer = await api("/api/decisions", { method: "POST", body: { decisions } });
      results = answer.results || [];
    } catch (err) {
      if (decisions.length === 1 && err instanceof ApiError && err.status >= 400 && err.status < 500) {
        results = [{ id: decisions[0].id, ok: false, error: { code: err.code, message: err.message }, status: err.status }];
      } else {
        for (const d of decisions) state.cards.get(d.id).card.classList.remove("busy");
        state.busy = false;
        showStatus(describe(err), "error");
        return;
      }
    }
    const done = [];
    const failed = [];
    const list = ids();
    let nextCurrent = state.current;
    for (const result of results) {
      const entry = state.cards.get(result.id);
      if (!entry) continue;
      entry.card.classList.remove("busy");
      if (result.ok) {
        done.push({ id: result.id, item: entry.item, index: order.indexOf(result.id), result });
        if (nextCurrent === result.id) {
          const rest = list.filter((id) => !results.some((r) => r.ok && r.id === id));
          const after = list.slice(list.indexOf(result.id) + 1).find((id) => rest.includes(id));
          nextCurrent = after || rest[rest.length - 1] || null;
        }
      } else {
        const error = result.error || {};
        const conflict = result.status === 409 || error.code === "already_decided";
        const text = `${result.status ? "Error " + result.status : "Error"} (${error.code}): ${error.message}`;
        failed.push(`${entry.item.source ? entry.item.source.name : result.id}: ${text}`);
        cardError(result.id, conflict ? `${text}. Decide again to replace it.` : text);
        if (conflict) {
          state.reopened.add(result.id);
          entry.card.classList.add("reopened");
        }
      }
    }
    for (const d of decisions) {
      const entry = state.cards.get(d.id);
      if (entry) entry.card.classList.remove("busy");
    }
    for (const { id } of done) {
      const entry = state.cards.get(id);
      entry.card.remove();
      state.cards.delete(id);
      state.selected.delete(id);
      state.reopened.delete(id);
      state.corrections.delete(id);
    }
    if (done.length) state.undoStack.push({ what, entries: done });
    state.busy = false;
    updateSelection();
    updateEmpty();
    if (nextCurrent && state.cards.has(nextCurrent)) setCurrent(nextCurrent, true);
    else if (state.cards.size) setCurrent(ids()[0], true);
    else {
      state.current = null;
      showDetails(null);
      if (state.nextToken) loadQueue(false);
    }
    if (failed.length) {
      const head = decisions.length === 1 ? `${what} failed` : `${what}: ${done.length} done, ${failed.length} failed`;
      const hint = state.reopened.size ? " Items marked with a dashed border: decide again to replace the earlier decision." : "";
      showStatus(`${head}. ${failed.join("; ")}.${hint}`, "error");
    } else {
      const where = done.length === 1 && done[0].result.destination ? ` -> ${done[0].result.destination.name}` : "";
      showStatus(`${what}: done${done.length > 1 ? " (" + done.length + ")" : ""}${where}. Press u to undo.`, "info");
    }
    if (done.length) refreshProgress();
  }

  function itemName(id) {
    const entry = state.cards.get(id);
    return entry && entry.item.source ? String(entry.item.source.name) : String(id);
  }

  function approve(id) {
    if (!id) return;
    decide([{ id, action: "approve" }], `Approve ${itemName(id)}`);
  }

  function relabelTo(id, label) {
    const entry = state.cards.get(id);
    if (!entry) return;
    if (label === entry.item.label) {
      decide([{ id, action: "approve" }], `Approve ${itemName(id)} (${label} is the model's answer)`);
    } else {
      decide([{ id, action: "relabel", label }], `Relabel ${itemName(id)} to ${label}`);
    }
  }

  function relabelByNumber(digit) {
    const index = digit === 0 ? 9 : digit - 1;
    if (index >= state.labels.length) {
      showStatus(`There is no label number ${digit}.`, "error");
      return;
    }
    if (state.current) relabelTo(state.current, state.labels[index]);
  }

  function askReject(id) {
    if (!id || !state.cards.has(id)) return;
    state.rejecting = id;
    ui.rejectWhat.textContent = itemName(id);
    ui.rejectReason.value = "";
    ui.dialog.showModal();
    ui.rejectReason.focus();
  }

  function bulkApprove() {
    const chosen = ids().filter((id) => state.selected.has(id));
    if (!chosen.length) {
      showStatus("Select items first (x or space, or their check boxes).", "error");
      return;
    }
    decide(
      chosen.map((id) => ({ id, action: "approve" })),
      `Approve ${chosen.length} selected`,
    );
  }

  function undo() {
    const last = state.undoStack.pop();
    if (!last) {
      showStatus("Nothing to undo.", "info");
      return;
    }
    const list = ids();
    for (const { id, item, index } of last.entries.slice().sort((a, b) => a.index - b.index)) {
      if (state.cards.has(id)) continue;
      const card = renderCard(item);
      card.classList.add("reopened");
      state.cards.set(id, { item, card });
      state.reopened.add(id);
      const before = list[index];
      const anchor = before && state.cards.has(before) ? state.cards.get(before).card : null;
      ui.grid.insertBefore(card, anchor);
      list.splice(index, 0, id);
    }
    updateSelection();
    updateEmpty();
    setCurrent(last.entries[0].id, true);
    const names = last.entries.map((e) => (e.item.source ? e.item.source.name : e.id)).join(", ");
    showStatus(
      `Undone: ${last.what}. ${names} is back in the queue; the record keeps the undone decision until you decide again (sent as a change).`,
      "info",
    );
  }

  // -- events -----------------------------------------------------------------

  ui.rejectForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = ui.rejectReason.value.trim();
    if (!reason) {
      ui.rejectReason.focus();
      return;
    }
    const id = state.rejecting;
    state.rejecting = null;
    ui.dialog.close();
    if (id) decide([{ id, action: "reject", reason }], `Reject ${itemName(id)}`);
  });
  ui.rejectCancel.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("close", () => {
    state.rejecting = null;
    if (state.current && state.cards.has(state.current)) state.cards.get(state.current).card.focus({ preventScroll: true });
  });

  for (const control of [ui.band, ui.category, ui.attributesFilter, ui.order]) control.addEventListener("change", () => loadQueue(true));
  ui.refresh.addEventListener("click", () => loadQueue(true));
  ui.loadMore.addEventListener("click", () => loadQueue(false));
  ui.bulk.addEventListener("click", bulkApprove);
  ui.undo.addEventListener("click", undo);
  $("filters").addEventListener("submit", (event) => event.preventDefault());

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || ui.dialog.open) return;
    const target = event.target;
    if (target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    if (target instanceof HTMLInputElement && target.type !== "checkbox") return;
    const onControl = target instanceof HTMLButtonElement || target instanceof HTMLInputElement;
    const key = event.key;
    let handled = true;
    if (key === "ArrowRight" || key === "j") move(1);
    else if (key === "ArrowLeft" || key === "k") move(-1);
    else if (key === "ArrowDown") move(columns());
    else if (key === "ArrowUp") move(-columns());
    else if (key === "a") approve(state.current);
    else if (key === "A") bulkApprove();
    else if (key === "r") askReject(state.current);
    else if (key === "u") undo();
    else if (key === "e") editAttributes();
    else if (key === "x" || (key === " " && !onControl)) toggleSelected(state.current);
    else if (/^[0-9]$/.test(key)) relabelByNumber(Number(key));
    else handled = false;
    if (handled) event.preventDefault();
  });

  // -- start --------------------------------------------------------------------

  async function start() {
    try {
      const [labels, me] = await Promise.all([api("/api/labels"), api("/api/me")]);
      state.labels = (labels.labels || []).map(String);
      state.attributeLabels = labels.attributes && typeof labels.attributes === "object" ? labels.attributes : {};
      ui.reviewer.textContent = String(me.reviewer);
      renderLabels();
    } catch (err) {
      showStatus(describe(err), "error");
    }
    await loadQueue(true);
    document.body.dataset.ready = "true";
  }

  start();
})();
