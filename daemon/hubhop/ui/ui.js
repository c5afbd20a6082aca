// hubhop's live view: follows this node's table watch (GET /hubhop/v1/watch, server-sent events)
// and its peers view (GET /hubhop/v1/peers), and draws them.
//
// Rules:
// - Everything that came over the network (node names, models, reasons) is written as text
//   (textContent, setAttribute), never as markup: a peer cannot put script in this page.
// - The bearer token, when the node wants one, is asked for in a form and kept in
//   sessionStorage (this tab only). It goes only in the Authorization header of fetch(),
//   never in a URL, so it lands in no access log or history. That is why the feed is read
//   with fetch() and a stream reader rather than EventSource, which cannot send a header.
// - A snapshot replaces everything the page knew; each change after it updates one thing.
// - When the feed ends (the node drains or goes away) the page says "disconnected" and tries
//   again, soon at first, then less often.
"use strict";

(() => {
  const FEED = "/hubhop/v1/watch";
  const PEERS = "/hubhop/v1/peers";
  const TOKEN_KEY = "hubhop.token";
  // The probes' figures move slowly; a person reads them a few seconds apart.
  const PEERS_EVERY_MS = 5000;
  // After a drop, try again in a second (a restart), backing off to 10 s (a node that is down).
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 10000;
  // Changes come in bursts (a join updates many rows): draw at most ten times a second.
  const RENDER_EVERY_MS = 100;
  // As many decisions as fit on a screen; the snapshot brings up to 50.
  const DECISIONS_SHOWN = 20;
  const DECISIONS_KEPT = 50;
  // Tier bounds (one-way ms) and the radius of their ring on the map (viewBox units).
  const TIERS = [["city", 1], ["province", 5], ["region", 7], ["national", 10]];
  const RING_RADII = [85, 145, 195, 240];
  const CENTRE_GAP = 42; // the nearest a node is drawn to this node, so both stay readable
  const ANY_RADIUS = 272; // beyond the national tier, up to twice its bound
  const UNKNOWN_RADIUS = 298; // latency not known yet
  const LANES = ["emergency", "standard", "batch"];
  const TIER_NAMES = ["city", "province", "region", "national", "any"];
  const SVG = "http://www.w3.org/2000/svg";

  const view = {
    self: "",
    rows: new Map(), // "node\0backend" -> table row
    members: new Map(), // name -> member
    peers: new Map(), // name -> peers entry (probe figures and estimate)
    decisions: [], // oldest first
    counts: null, // [{lane, tier, outcome, count}]
  };
  let retryMs = RETRY_FIRST_MS;
  let retryTimer = null;
  let feedAbort = null;
  let renderTimer = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) {
      node.append(child instanceof Node ? child : String(child ?? ""));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function num(x, digits = 2) {
    if (x === null || x === undefined || !Number.isFinite(Number(x))) return "—";
    return String(Number(Number(x).toFixed(digits)));
  }

  // ---- the token --------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function authHeaders() {
    const t = token();
    return t ? { Authorization: `Bearer ${t}` } : {};
  }

  function askForToken(message) {
    $("token-form").hidden = false;
    $("token-error").textContent = message;
    $("token").focus();
  }

  function tokenFormDone() {
    $("token-form").hidden = true;
    $("forget-token").hidden = !token();
  }

  // ---- the feed -----------------------------------------------------------------------------

  function setConnection(stateName, text) {
    const badge = $("connection");
    badge.dataset.state = stateName;
    badge.textContent = text;
  }

  async function connect() {
    clearTimeout(retryTimer);
    if (feedAbort) feedAbort.abort();
    const abort = new AbortController();
    feedAbort = abort;
    setConnection("connecting", "connecting…");
    let response;
    try {
      response = await fetch(FEED, {
        headers: { ...authHeaders(), Accept: "text/event-stream" },
        cache: "no-store",
        signal: abort.signal,
      });
    } catch (err) {
      if (!abort.signal.aborted) retry(`disconnected (${err.message})`);
      return;
    }
    if (response.status === 401) {
      setConnection("unauthorized", "token needed");
      askForToken(token() ? "that token was refused" : "");
      return;
    }
    if (!response.ok) {
      retry(`disconnected (${response.status} ${response.statusText})`);
      return;
    }
    tokenFormDone();
    setConnection("live", "live");
    retryMs = RETRY_FIRST_MS;
    fetchPeers();
    try {
      await readEvents(response.body);
    } catch (err) {
      // the stream broke: the node went away mid-event
    }
    if (!abort.signal.aborted) retry("disconnected");
  }

  function retry(text) {
    setConnection("disconnected", `${text}; retrying in ${Math.round(retryMs / 1000)} s`);
    retryTimer = setTimeout(connect, retryMs);
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
  }

  async function readEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r/g, "");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  function dispatch(block) {
    let kind = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    let doc;
    try {
      doc = JSON.parse(data.join("\n"));
    } catch (err) {
      return; // one bad event is skipped, the feed goes on
    }
    apply(kind, doc);
    scheduleRender();
  }

  const rowKey = (node, backend) => `${node}\u0000${backend}`;

  function apply(kind, doc) {
    switch (kind) {
      case "snapshot":
        view.self = String(doc.node || "");
        view.rows = new Map((doc.rows || []).map((r) => [rowKey(r.node, r.backend), r]));
        view.members = new Map((doc.members || []).map((m) => [String(m.name), m]));
        view.decisions = (doc.decisions || []).slice(-DECISIONS_KEPT);
        break;
      case "row":
        view.rows.set(rowKey(doc.row.node, doc.row.backend), doc.row);
        break;
      case "row_removed":
        view.rows.delete(rowKey(doc.node, doc.backend));
        break;
      case "member":
        view.members.set(String(doc.member.name), doc.member);
        break;
      case "member_removed":
        view.members.delete(String(doc.name));
        break;
      case "decision":
        view.decisions.push(doc.decision);
        if (view.decisions.length > DECISIONS_KEPT) view.decisions.shift();
        break;
      case "counts":
        view.counts = doc.requests || [];
        break;
      default:
        break; // a kind this page does not know yet
    }
  }

  async function fetchPeers() {
    if ($("connection").dataset.state !== "live") return;
    try {
      const response = await fetch(PEERS, { headers: authHeaders(), cache: "no-store" });
      if (!response.ok) return;
      const doc = await response.json();
      view.peers = new Map((doc.peers || []).map((p) => [String(p.name), p]));
      scheduleRender();
    } catch (err) {
      // the feed's own retry says when the node is gone
    }
  }

  // ---- what the page shows ------------------------------------------------------------------

  function nodes() {
    const names = new Set(view.members.keys());
    for (const row of view.rows.values()) names.add(String(row.node));
    if (view.self) names.add(view.self);
    const out = [];
    for (const name of names) {
      const rows = [...view.rows.values()].filter((r) => String(r.node) === name);
      const member = view.members.get(name) || {};
      const first = rows[0] || {};
      const self = name === view.self;
      const peer = view.peers.get(name) || {};
      const latency = rows.map((r) => r.latency).find((l) => l) || null;
      let oneWay = latency ? latency.one_way_ms : null;
      if (self) oneWay = 0;
      else if (oneWay === null && peer.estimate) oneWay = peer.estimate.one_way_ms;
      const slots = rows.reduce((s, r) => s + (Number(r.slots) || 0), 0);
      const busy = rows.reduce((s, r) => s + (Number(r.busy) || 0), 0);
      out.push({
        name,
        self,
        rows,
        member,
        peer,
        latency,
        oneWay,
        slots,
        busy,
        state: self ? "alive" : String(member.state || first.state || "alive"),
        role: member.role || first.role || "",
        city: member.city || first.city || "",
        region: member.region || first.region || "",
      });
    }
    out.sort((a, b) => (b.self - a.self) || a.name.localeCompare(b.name));
    return out;
  }

  const isDown = (n) => n.state === "dead" || n.state === "left";

  function loadColour(n) {
    if (isDown(n)) return "#9aa0a6";
    if (!n.slots) return "#8fb3d9"; // no backends: nothing to load
    const load = Math.max(0, Math.min(1, n.busy / n.slots));
    return `hsl(${Math.round(130 * (1 - load))}, 60%, 44%)`;
  }

  function radiusOf(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return UNKNOWN_RADIUS;
    let lowMs = 0;
    let lowR = CENTRE_GAP;
    for (let i = 0; i < TIERS.length; i++) {
      const bound = TIERS[i][1];
      if (ms <= bound) return lowR + ((RING_RADII[i] - lowR) * (ms - lowMs)) / (bound - lowMs);
      lowMs = bound;
      lowR = RING_RADII[i];
    }
    return lowR + (ANY_RADIUS - lowR) * Math.min(1, (ms - lowMs) / lowMs);
  }

  function renderMap(all) {
    const map = $("map");
    map.replaceChildren();
    TIERS.forEach(([tier, bound], i) => {
      map.append(svg("circle", { class: "ring", r: RING_RADII[i] }));
      map.append(svg("text", { class: "ring-label", x: 4, y: -RING_RADII[i] - 4 },
        `${tier} ≤ ${bound} ms`));
    });
    map.append(svg("circle", { class: "ring outer", r: ANY_RADIUS }));
    map.append(svg("text", { class: "ring-label", x: 4, y: -ANY_RADIUS - 4 }, "any"));
    const others = all.filter((n) => !n.self);
    const here = all.find((n) => n.self);
    others.forEach((n, i) => {
      // Bearing from the two first Vivaldi dimensions (a map of the network as measured),
      // distance by the one-way latency on the tier rings; spread evenly until both have one.
      const mine = here && here.member.coordinate;
      const theirs = n.member.coordinate;
      const placed = mine && theirs && mine.length > 1 && theirs.length > 1 &&
        (theirs[0] !== mine[0] || theirs[1] !== mine[1]);
      const angle = placed
        ? Math.atan2(theirs[1] - mine[1], theirs[0] - mine[0])
        : -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, others.length) + Math.PI / 5;
      const r = radiusOf(n.oneWay);
      n.placed = placed ? "coordinates" : "spread";
      n.x = r * Math.cos(angle);
      n.y = r * Math.sin(angle);
      map.append(svg("line", { class: "spoke", x1: 0, y1: 0, x2: n.x, y2: n.y }));
    });
    for (const n of all) {
      if (n.self) {
        n.x = 0;
        n.y = 0;
      }
      map.append(drawNode(n));
    }
  }

  function drawNode(n) {
    const g = svg("g", {
      "data-node": n.name,
      "data-state": n.state,
      "data-placed": n.placed || "centre",
      transform: `translate(${num(n.x, 1)} ${num(n.y, 1)})`,
    });
    const title = svg("title", {}, `${n.name}: ${n.state}`);
    g.append(title);
    g.append(svg("circle", { r: 14, fill: loadColour(n), class: n.self ? "self-dot" : "" }));
    if (isDown(n)) {
      g.append(svg("line", { class: "cross", x1: -10, y1: -10, x2: 10, y2: 10 }));
      g.append(svg("line", { class: "cross", x1: -10, y1: 10, x2: 10, y2: -10 }));
    }
    g.append(svg("text", { class: "node-label", y: 30, "text-anchor": "middle" },
      n.self ? `${n.name} (this node)` : n.name));
    let detail = n.slots ? `${num(n.busy, 1)}/${n.slots} busy` : "no backends";
    if (!n.self) detail = `${n.oneWay === null ? "latency ?" : `${num(n.oneWay, 2)} ms`} · ${detail}`;
    g.append(svg("text", { class: "node-detail", y: 43, "text-anchor": "middle" }, detail));
    if (isDown(n) || n.state === "suspect") {
      g.append(svg("text", { class: "dead-text", y: -20, "text-anchor": "middle" }, n.state));
    }
    return g;
  }

  function distinct(values) {
    return [...new Set(values.filter((v) => v !== null && v !== undefined && v !== ""))];
  }

  function rttText(n) {
    if (n.self) return "this node";
    const est = n.peer.estimate;
    const probe = n.peer.probe;
    if (!est && !probe) return "not measured yet";
    const parts = [];
    if (est) {
      parts.push(`${num(est.rtt_ms, 3)} ms ±${num(est.uncertainty, 3)}`);
      parts.push(`${est.source}${est.samples ? `, ${est.samples} sample${est.samples === 1 ? "" : "s"}` : ""}`);
    } else {
      parts.push(`${num(probe.srtt_ms, 3)} ms ±${num(probe.rttvar_ms, 3)}`);
    }
    if (probe && !probe.fresh) parts.push("stale");
    if (probe && probe.loss_rate > 0) parts.push(`loss ${num(100 * probe.loss_rate, 1)}%`);
    return parts.join(" · ");
  }

  function oneWayText(n) {
    if (n.self) return "local";
    const l = n.latency;
    if (l) return `${num(l.one_way_ms, 3)} ms (${l.tier}), ${l.source}`;
    const est = n.peer.estimate;
    if (est) return `${num(est.one_way_ms, 3)} ms (${est.tier}), ${est.source}`;
    return "—";
  }

  function renderMembers(all) {
    const body = $("members").tBodies[0];
    body.replaceChildren();
    for (const n of all) {
      const rows = n.rows;
      const sum = (f) => rows.reduce((s, r) => s + (Number(f(r)) || 0), 0);
      const models = distinct(rows.flatMap((r) => r.models || []));
      const free = rows.length ? `${num(sum((r) => r.free), 1)} / ${sum((r) => r.slots)}` : "—";
      const queue = rows.length
        ? LANES.map((lane) => num(sum((r) => (r.queue || {})[lane]), 1)).join(" / ")
        : "—";
      const price = distinct(rows.map((r) => num(r.price, 3))).join(" · ") || "—";
      const green = distinct(rows.map((r) => `${num(100 * Number(r.green_share), 0)}%`));
      const tr = el("tr", { "data-node": n.name, "data-state": n.state },
        el("td", {}, n.self ? `${n.name} (this node)` : n.name),
        el("td", { class: "state" }, n.state),
        el("td", {}, n.role || "—"),
        el("td", {}, [n.city, n.region].filter(Boolean).join(" / ") || "—"),
        el("td", { class: "chips" }, distinct(rows.map((r) => r.chip)).join(", ") || "—"),
        el("td", {}, (models.length ? models : n.member.models || []).join(", ") || "—"),
        el("td", { class: "num" }, free),
        el("td", { class: "num" }, queue),
        el("td", { class: "num" }, price),
        el("td", { class: "num" }, green.join(" · ") || "—"),
        el("td", {}, oneWayText(n)),
        el("td", {}, rttText(n)));
      if (n.self) tr.classList.add("self");
      body.append(tr);
    }
  }

  function where(c) {
    return c ? `${c.node}/${c.backend}` : "";
  }

  function renderDecisions() {
    const body = $("decisions").tBodies[0];
    body.replaceChildren();
    const shown = view.decisions.slice(-DECISIONS_SHOWN).reverse();
    if (!shown.length) {
      body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no requests yet")));
    }
    for (const d of shown) {
      const reason = d.reason || {};
      const expected = reason.expected_ms;
      const runnerUp = (reason.alternates || [])[0];
      const rejected = [...(reason.rejected || [])].sort(
        (a, b) => (a.one_way_ms ?? Infinity) - (b.one_way_ms ?? Infinity))[0];
      const id = String(d.request_id || "");
      const ms = d.ms || {};
      let path = (d.path || []).join(" → ") || "—";
      if (d.tries > 1) path += ` (${d.tries} tries)`;
      if (d.hedged) path += `, hedged: ${d.hedged}`;
      const served = d.served_by
        ? `${d.served_by}/${d.backend} in ${d.tier_served ?? "?"}${d.spilled ? " (spilled)" : ""}`
        : "—";
      let why = rejected
        ? `${where(rejected)}${rejected.one_way_ms === null ? "" : ` (${num(rejected.one_way_ms)} ms)`}: ${(rejected.why || []).join(", ")}`
        : "none";
      if (d.error) why = d.error.message;
      body.append(el("tr", { "data-request": id, "data-outcome": String(d.outcome) },
        el("td", { title: id }, `…${id.slice(-10)}`, el("br"),
          el("span", { class: "muted" },
            `${String(d.ts || "").slice(11, 19)} ${d.client || ""}`.trim())),
        el("td", {}, `${d.model ?? "?"}`, el("br"),
          el("span", { class: "muted" }, `${d.lane ?? "?"} lane, ${d.tier_asked ?? "?"} tier`)),
        el("td", {}, served),
        el("td", {}, path),
        el("td", { class: d.outcome === "served" ? "" : "bad" },
          `${d.outcome}${d.status ? ` ${d.status}` : ""}`, el("br"),
          el("span", { class: "muted" }, `${num(ms.total, 1)} ms`)),
        el("td", { class: "num" }, expected
          ? `${num(expected.network)} + ${num(expected.queue)} + ${num(expected.service)} = ${num(expected.total)}`
          : "—"),
        el("td", {},
          runnerUp ? `${where(runnerUp)} ${num(runnerUp.expected_ms)} ms` : "no runner-up",
          el("br"), el("span", { class: "muted" }, why))));
    }
  }

  function renderSummary(all) {
    const states = new Map();
    for (const n of all) states.set(n.state, (states.get(n.state) || 0) + 1);
    const byState = [...states.entries()].map(([s, k]) => `${k} ${s}`).join(", ");
    const rows = [...view.rows.values()].filter((r) => r.state !== "dead" && r.state !== "left");
    const slots = rows.reduce((s, r) => s + (Number(r.slots) || 0), 0);
    const busy = rows.reduce((s, r) => s + (Number(r.busy) || 0), 0);
    const stamp = new Date().toLocaleTimeString([], { hour12: false });
    $("summary").textContent = view.self
      ? `${all.length} nodes: ${byState} · ${rows.length} live backends, ${num(busy, 1)} of ${slots} slots busy · updated ${stamp}`
      : "";
  }

  function renderCounts() {
    const table = $("counts");
    const head = table.tHead;
    const body = table.tBodies[0];
    const counts = view.counts || [];
    const lanes = [...LANES];
    const tiers = [...TIER_NAMES];
    for (const c of counts) {
      if (!lanes.includes(c.lane)) lanes.push(c.lane);
      if (!tiers.includes(c.tier)) tiers.push(c.tier);
    }
    const cell = new Map();
    const outcomes = new Map();
    let total = 0;
    for (const c of counts) {
      const key = `${c.lane}/${c.tier}`;
      cell.set(key, (cell.get(key) || 0) + c.count);
      outcomes.set(c.outcome, (outcomes.get(c.outcome) || 0) + c.count);
      total += c.count;
    }
    head.replaceChildren(el("tr", {}, el("th", {}, "lane \\ tier"),
      ...tiers.map((t) => el("th", { class: "num" }, t)), el("th", { class: "num total" }, "all")));
    body.replaceChildren();
    for (const lane of lanes) {
      const values = tiers.map((t) => cell.get(`${lane}/${t}`) || 0);
      body.append(el("tr", { "data-lane": lane }, el("th", {}, lane),
        ...values.map((v) => el("td", { class: "num" }, v)),
        el("td", { class: "num total" }, values.reduce((a, b) => a + b, 0))));
    }
    const columns = tiers.map((t) => lanes.reduce((s, l) => s + (cell.get(`${l}/${t}`) || 0), 0));
    body.append(el("tr", {}, el("th", { class: "total" }, "all"),
      ...columns.map((v) => el("td", { class: "num total" }, v)),
      el("td", { class: "num total" }, total)));
    const parts = [...outcomes.entries()].map(([o, n]) => `${o} ${n}`);
    $("outcomes").textContent = view.counts === null
      ? "this node keeps no request counts"
      : `Outcomes since the node started: ${parts.join(" · ") || "no requests yet"}.`;
  }

  function render() {
    $("node-name").textContent = view.self ? `· ${view.self}` : "";
    document.title = view.self ? `hubhop · ${view.self}` : "hubhop live view";
    const all = nodes();
    renderMap(all);
    renderMembers(all);
    renderDecisions();
    renderCounts();
    renderSummary(all);
  }

  function scheduleRender() {
    if (renderTimer === null) {
      renderTimer = setTimeout(() => {
        renderTimer = null;
        render();
      }, RENDER_EVERY_MS);
    }
  }

  // ---- start --------------------------------------------------------------------------------

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
      $("token").value = "";
      connect();
    });
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("forget-token").hidden = true;
      connect();
    });
    $("forget-token").hidden = !token();
    setInterval(fetchPeers, PEERS_EVERY_MS);
    render();
    connect();
  }

  start();
})();
