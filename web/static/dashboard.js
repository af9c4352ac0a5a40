// Banyan operator dashboard. One EventSource (/dashboard/events) brings a
// JSON frame a second: the streams overview and, for the selected stream,
// its topology snapshot, newest time-series point and new events. The
// topology is drawn on a canvas (tree layout by d3-hierarchy), the series
// with uPlot; both are vendored under /static/vendor (see web/vendor.json).
// Nothing here uses innerHTML with data: every value goes in as text.
"use strict";
(() => {
  const $ = (s) => document.querySelector(s);
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue("--" + name).trim();
  const C = {
    good: color("good"), low: color("low"), bad: color("bad"), unknown: color("unknown"),
    direct: color("direct"), turn: color("turn"), origin: color("origin"), connecting: color("connecting"),
    fg: color("fg"), muted: color("muted"), line: color("line"),
  };

  // State, exposed for tests and for looking at from the console.
  const dash = (window.banyanDash = {
    frames: 0, streams: [], stream: "", peers: 0, drawnNodes: 0, nodes: 0, aggregated: false, connected: false,
    render: { count: 0, last: 0, max: 0, total: 0, first: 0, topoLast: 0, parseLast: 0, bytesLast: 0 },
    selectPeer: (id) => showPeer(id),
    hits: () => hits, // topology glyphs: {x, y, r, id, s, path} in canvas pixels
    tip: "",
  });

  let selected = new URLSearchParams(location.search).get("stream") || "";
  let userChose = !!selected;
  let es = null;
  let series = [];
  let lastTopo = null;
  let hits = []; // topology hit targets: {x, y, r, id}
  let peerOpen = null;

  // ---------- formatting ----------
  const el = (tag, props, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e[k] = v;
    }
    for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
    return e;
  };
  const fmtBytes = (b) => {
    if (!b) return "0 B";
    const u = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
    return (i ? b.toFixed(b < 10 ? 2 : 1) : b) + " " + u[i];
  };
  const fmtBits = (bps) => {
    if (!bps) return "0 b/s";
    const u = ["b/s", "kb/s", "Mb/s", "Gb/s"];
    let i = 0;
    while (bps >= 1000 && i < u.length - 1) { bps /= 1000; i++; }
    return bps.toFixed(bps < 10 && i ? 2 : 0) + " " + u[i];
  };
  // Bytes by sender from a stats report: the one definition (protocol.Sources)
  // the viewer's panel and /metrics use. bytes_p2p and bytes_turn hold every
  // WebRTC byte; bytes_seeder and bytes_edge are parts of them.
  const sourcesText = (st) => {
    const webrtc = (st.bytes_p2p || 0) + (st.bytes_turn || 0);
    const seeder = st.bytes_seeder || 0, edges = st.bytes_edge || 0;
    return [webrtc - seeder - edges, edges, seeder, st.bytes_origin || 0].map(fmtBytes).join(" / ");
  };
  // Health counts in words, as the legend colours them.
  const healthWords = (h) => [[h.good, "healthy"], [h.low, "low"], [h.bad, "starving"], [h.unknown, "no media yet"]]
    .filter(([n]) => n > 0).map(([n, w]) => `${n} ${w}`).join(", ") || "none";
  const pct = (v) => (v == null ? "—" : (100 * v).toFixed(1) + " %");
  const hms = (t) => new Date(t).toLocaleTimeString([], { hour12: false });
  const ref = (id) => (id === 0 ? "seeder" : id === -1 ? "origin" : id === -2 ? "—" : "peer " + id);

  // ---------- connection ----------
  function connect() {
    if (es) es.close();
    const url = "/dashboard/events" + (selected ? "?stream=" + encodeURIComponent(selected) : "");
    es = new EventSource(url);
    setConn("connecting", "connecting…");
    es.onopen = () => { dash.connected = true; setConn("open", "live"); };
    es.onmessage = (ev) => {
      const t0 = performance.now();
      let f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      const t1 = performance.now();
      onFrame(f);
      const t2 = performance.now();
      const r = dash.render;
      r.count++; r.parseLast = t1 - t0; r.last = t2 - t0; r.total += r.last; r.max = Math.max(r.max, r.last);
      r.bytesLast = ev.data.length;
      if (!r.first && f.stream && f.stream.topology) r.first = t2; // since navigation start
    };
    es.onerror = async () => {
      dash.connected = false;
      setConn("error", "reconnecting…");
      if (es.readyState === EventSource.CLOSED) {
        // Refused (logged out, token changed): the page answers with the login form.
        const r = await fetch("/dashboard/api/streams", { credentials: "same-origin" }).catch(() => null);
        if (r && r.status === 401) location.reload();
        else setTimeout(connect, 2000);
      }
    };
  }
  function setConn(state, text) { const c = $("#conn"); c.dataset.state = state; c.textContent = text; }

  function select(name) {
    if (name === selected) return;
    selected = name;
    userChose = true;
    series = []; lastTopo = null; charts.reset(); closePeer();
    $("#events").replaceChildren();
    const u = new URL(location.href);
    if (name) u.searchParams.set("stream", name); else u.searchParams.delete("stream");
    history.replaceState(null, "", u);
    connect();
  }

  // ---------- frames ----------
  function onFrame(f) {
    dash.frames++;
    if (!dash.connected) { dash.connected = true; setConn("open", "live"); }
    dash.streams = f.streams || [];
    renderStreams(dash.streams);
    if (!userChose && !selected && dash.streams.length) {
      const pick = dash.streams.find((s) => s.live) || dash.streams.find((s) => s.viewers > 0) || dash.streams[0];
      selected = pick.name;
      connect();
      return;
    }
    dash.stream = selected;
    const rep = "/dashboard/api/report?since=24h&stream=" + encodeURIComponent(selected);
    $("#export-csv").href = rep + "&format=csv";
    $("#export-json").href = rep + "&format=json";
    const v = f.stream;
    for (const id of ["#topology-section", "#experience-section", "#charts-section", "#events-section"]) $(id).hidden = !v;
    if (!v) { dash.peers = 0; return; }
    if (f.type === "init") series = v.series || [];
    else for (const p of v.series || []) if (!series.length || p.t > series[series.length - 1].t) series.push(p);
    if (series.length > 600) series.splice(0, series.length - 600);
    const t0 = performance.now();
    renderTopology(v.topology);
    dash.render.topoLast = performance.now() - t0;
    charts.update(series);
    renderExperience(v.experience || []);
    renderEvents(v.events || []);
    if (peerOpen != null && dash.frames % 2 === 0) showPeer(peerOpen, true);
  }

  // ---------- streams overview ----------
  function renderStreams(list) {
    const body = $("#streams tbody");
    const rows = list.map((s) => {
      const tr = el("tr", { data: { stream: s.name, live: String(!!s.live), viewers: String(s.viewers) }, onclick: () => select(s.name) },
        el("td", {}, s.name, s.revoked ? el("span", { class: "muted" }, " (revoked)") : null),
        el("td", {}, el("span", { class: "live-dot", title: s.live ? "live" : "offline" }), " ", s.live ? "live" : "offline"),
        el("td", {}, s.ingest && s.ingest.protocol ? s.ingest.protocol.toUpperCase() : "—"),
        el("td", { class: "num" }, s.ingest && s.ingest.kbps ? fmtBits(s.ingest.kbps * 1000) : "—"),
        el("td", { class: "num" }, s.ingest && s.ingest.fps ? s.ingest.fps.toFixed(1) : "—",
          s.ingest && s.ingest.advice ? el("span", { class: "gop-warn", title: s.ingest.advice }, ` ⚠ keyframes every ${s.ingest.keyframe_s.toFixed(1)} s`) : null),
        el("td", { class: "num viewers", title: "viewers in the mesh; relay edges counted apart" }, s.viewers - (s.edges || 0), s.edges ? el("span", { class: "muted" }, ` +${s.edges} edge${s.edges > 1 ? "s" : ""}`) : null),
        el("td", { class: "num" }, pct(s.offload)),
        el("td", { class: "num" }, fmtBytes(s.bytes && s.bytes.viewers)),
        el("td", { class: "num" }, fmtBytes(s.bytes && s.bytes.edges)),
        el("td", { class: "num" }, fmtBytes(s.bytes && s.bytes.seeder)),
        el("td", { class: "num" }, fmtBytes(s.bytes && s.bytes.origin)),
        el("td", { class: "num" }, fmtBytes(s.bytes && s.bytes.turn)),
        el("td", { class: "num", title: s.stalls_per_viewer_hour == null ? "" : `${s.stalls} stalls, ${s.stalls_per_viewer_hour.toFixed(1)} per viewer-hour` }, s.stalled_share == null ? "—" : pct(s.stalled_share)),
        el("td", { class: "num" }, fmtBits(8 * (s.egress_bps || 0))));
      if (s.name === selected) tr.classList.add("selected");
      return tr;
    });
    body.replaceChildren(...rows);
    const live = list.filter((s) => s.live).length;
    $("#stream-summary").textContent = `${list.length} streams, ${live} live, ${list.reduce((a, s) => a + s.viewers, 0)} viewers`;
    const sel = $("#stream-select");
    const names = list.map((s) => s.name);
    if ([...sel.options].slice(1).map((o) => o.value).join() !== names.join()) {
      sel.replaceChildren(el("option", { value: "" }, "—"), ...names.map((n) => el("option", { value: n }, n)));
    }
    sel.value = selected;
  }
  $("#stream-select").addEventListener("change", (e) => select(e.target.value));

  // ---------- topology ----------
  const topo = $("#topo");
  const levelsCanvas = $("#levels");
  const healthColor = (h) => C[h] || C.unknown;
  const pathStyle = {
    direct: [C.direct, []], turn: [C.turn, [6, 4]], origin: [C.origin, [2, 3]],
    connecting: [C.connecting, [2, 4]], unknown: [C.connecting, [2, 4]],
  };

  function sizeCanvas(c, cssH) {
    const dpr = window.devicePixelRatio || 1;
    const w = c.parentElement.clientWidth - 8;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(cssH * dpr)) {
      c.width = Math.round(w * dpr); c.height = Math.round(cssH * dpr);
      c.style.height = cssH + "px";
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, cssH);
    return [g, w];
  }

  function renderTopology(t) {
    lastTopo = t;
    dash.peers = t.peers;
    dash.aggregated = t.aggregated;
    $("#topo-title").textContent = t.stream;
    const shown = t.shown_depth.map((d, s) => `stripe ${s}: depth ≤ ${d}`).join(", ");
    $("#topo-summary").textContent = `${t.peers} peers · ${t.stripes} stripes · max depth ${t.forest.max_depth}` +
      (t.aggregated ? ` · aggregated (${t.nodes.length} drawn; ${shown})` : "") + " · buffers: " + healthWords(t.health);
    $("#topo-summary").title = `snapshot built in ${(t.build_us / 1000).toFixed(1)} ms`;
    const nodes = new Map(t.nodes.map((n) => [n.id, n]));
    const maxShown = Math.max(1, ...t.shown_depth);
    const levelH = maxShown > 8 ? 44 : 60;
    const H = Math.min(1200, 50 + (maxShown + 0.6) * levelH);
    const [g, W] = sizeCanvas(topo, H);
    const bandW = W / t.stripes;
    hits = [];
    let drawn = 0;
    for (let s = 0; s < t.stripes; s++) {
      const x0 = s * bandW;
      // Depth guides.
      g.font = "11px system-ui, sans-serif";
      g.fillStyle = C.muted;
      g.fillText(`stripe ${s}`, x0 + 6, 14);
      g.strokeStyle = "#1d2722"; g.lineWidth = 1; g.setLineDash([]);
      for (let d = 1; d <= maxShown; d++) {
        const y = 30 + d * levelH;
        g.beginPath(); g.moveTo(x0 + 28, y); g.lineTo(x0 + bandW - 6, y); g.stroke();
        g.fillText("d" + d, x0 + 6, y + 4);
      }
      // Hierarchy: a virtual root over the seeder and the origin.
      const root = { id: "r", children: [] };
      const byId = new Map();
      const seeder = { id: 0, children: [] };
      root.children.push(seeder); byId.set(0, seeder);
      let origin = null;
      for (const e of t.edges[s]) {
        let parent = byId.get(e.p);
        if (!parent && e.p === -1) {
          origin = origin || { id: -1, children: [] };
          if (!byId.has(-1)) { root.children.push(origin); byId.set(-1, origin); }
          parent = origin;
        }
        if (!parent) continue;
        const c = { id: e.c, edge: e, children: [] };
        parent.children.push(c);
        byId.set(e.c, c);
      }
      const h = d3.hierarchy(root, (d) => (d.children.length ? d.children : null));
      d3.tree().size([bandW - 44, 1]).separation((a, b) => (a.parent === b.parent ? 1 : 1.4))(h);
      const perLevel = new Map();
      h.each((d) => perLevel.set(d.depth, (perLevel.get(d.depth) || 0) + 1));
      const widest = Math.max(...perLevel.values());
      const spacing = (bandW - 44) / widest;
      const r = Math.max(2, Math.min(7, spacing / 2.6));
      const X = (d) => x0 + 34 + d.x;
      const Y = (d) => 30 + (d.depth - 1) * levelH;
      // Edges first.
      for (const d of h.descendants()) {
        if (!d.parent || d.parent.data.id === "r") continue;
        const e = d.data.edge;
        const [col, dashp] = pathStyle[e.path] || pathStyle.unknown;
        g.strokeStyle = col; g.setLineDash(dashp);
        g.lineWidth = 0.8 + Math.min(3, (e.kbps || 0) / 800);
        g.beginPath(); g.moveTo(X(d.parent), Y(d.parent)); g.lineTo(X(d), Y(d)); g.stroke();
      }
      g.setLineDash([]);
      for (const d of h.descendants()) {
        const id = d.data.id;
        if (id === "r") continue;
        const x = X(d), y = Y(d);
        if (id === 0 || id === -1) {
          g.fillStyle = id === 0 ? C.good : C.origin;
          g.beginPath(); g.arc(x, y, 9, 0, 2 * Math.PI); g.fill();
          g.fillStyle = "#000"; g.font = "bold 10px system-ui, sans-serif"; g.textAlign = "center";
          g.fillText(id === 0 ? "S" : "O", x, y + 3.5); g.textAlign = "start";
          hits.push({ x, y, r: 10, id: id === 0 ? 0 : null });
          continue;
        }
        const n = nodes.get(id);
        g.fillStyle = healthColor(n ? n.health : "unknown");
        g.beginPath();
        if (n && n.kind === "relay") g.rect(x - r, y - r, 2 * r, 2 * r);
        else g.arc(x, y, r, 0, 2 * Math.PI);
        g.fill();
        if (n && n.interior === s) { g.strokeStyle = C.fg; g.lineWidth = 1; g.stroke(); }
        const e = d.data.edge;
        if (e.hidden > 0) {
          // A collapsed subtree: a wedge whose height grows with its size,
          // and its count where there is room for the text.
          const hgt = 4 + 4 * Math.log10(e.hidden + 1);
          const half = Math.min(5, spacing / 2.5);
          g.fillStyle = C.muted;
          g.beginPath(); g.moveTo(x - half, y + r + 2 + hgt); g.lineTo(x + half, y + r + 2 + hgt); g.lineTo(x, y + r + 2); g.fill();
          if (spacing >= 26) {
            g.font = "10px system-ui, sans-serif"; g.textAlign = "center";
            g.fillText("+" + e.hidden, x, y + r + 13 + hgt); g.textAlign = "start";
          }
        }
        hits.push({ x, y, r, id, s, path: e.path, kbps: e.kbps });
        drawn++;
      }
    }
    dash.drawnNodes = drawn; // glyphs: a peer is drawn once per stripe
    dash.nodes = t.nodes.length;
    renderLevels(t);
    renderSubtrees(t);
  }

  function renderLevels(t) {
    const maxD = Math.max(1, ...t.levels.map((l) => l.length));
    const rowH = 16;
    const H = Math.min(600, 18 + maxD * rowH);
    const [g, W] = sizeCanvas(levelsCanvas, H);
    const bandW = W / t.stripes;
    let most = 1;
    for (const ls of t.levels) for (const l of ls) most = Math.max(most, l.peers);
    g.font = "11px system-ui, sans-serif";
    for (let s = 0; s < t.stripes; s++) {
      const x0 = s * bandW + 6;
      const barW = bandW - 150;
      g.fillStyle = C.muted;
      g.fillText(`stripe ${s}`, x0, 11);
      t.levels[s].forEach((l, i) => {
        const y = 16 + i * rowH;
        g.fillStyle = C.muted;
        g.fillText("d" + l.depth, x0, y + 11);
        let x = x0 + 30;
        for (const k of ["good", "low", "bad", "unknown"]) {
          const w = (barW * l.health[k]) / most;
          g.fillStyle = C[k]; g.fillRect(x, y + 2, w, rowH - 5);
          x += w;
        }
        g.fillStyle = C.fg;
        const turn = l.paths.turn ? ` · ${l.paths.turn} turn` : "";
        const org = l.paths.origin ? ` · ${l.paths.origin} origin` : "";
        g.fillText(`${l.peers}${turn}${org}`, x + 6, y + 11);
      });
    }
  }

  function renderSubtrees(t) {
    const box = $("#subtrees");
    if (!t.aggregated) { box.replaceChildren(); return; }
    const rows = [];
    t.subtrees.forEach((list, s) => {
      for (const st of list.slice(0, 6)) {
        rows.push(el("tr", {},
          el("td", {}, "stripe " + s),
          el("td", {}, el("a", { onclick: () => showPeer(st.root) }, "peer " + st.root)),
          el("td", {}, "under " + ref(st.parent)),
          el("td", { class: "num" }, st.size + " peers"),
          el("td", { class: "num" }, "to depth " + st.max_depth),
          el("td", {}, healthWords(st.health))));
      }
    });
    box.replaceChildren(el("h3", {}, "Largest subtrees (collapsed)", el("span", { class: "muted" }, " buffers by health")),
      el("table", { class: "grid" }, el("tbody", {}, ...rows)));
  }

  // Hover: what a glyph is (kind, locality, path, buffer), without a click.
  const tip = el("div", { class: "tip", hidden: true });
  $("#topo-wrap").append(tip);
  const hitAt = (ev) => {
    const b = topo.getBoundingClientRect();
    const x = ev.clientX - b.left, y = ev.clientY - b.top;
    let best = null, bd = Infinity;
    for (const h of hits) {
      const d = Math.hypot(h.x - x, h.y - y);
      if (d < Math.max(h.r + 4, 8) && d < bd) { best = h; bd = d; }
    }
    return best;
  };
  const KIND = { browser: "browser", native: "native peer", relay: "edge (relay)" };
  topo.addEventListener("mousemove", (ev) => {
    const h = hitAt(ev);
    if (!h || !lastTopo) { tip.hidden = true; return; }
    let text;
    if (h.id === 0) text = "seeder (root of every stripe)";
    else if (h.id == null) text = "origin (HTTP fallback)";
    else {
      const n = lastTopo.nodes.find((m) => m.id === h.id) || {};
      text = [`peer ${h.id}`, KIND[n.kind] || n.kind || "unknown client", n.locality ? "region " + n.locality : null,
        `stripe ${h.s}: ${h.path}` + (h.kbps ? ` ${fmtBits(h.kbps * 1000)}` : ""),
        n.buffer_ms != null ? `buffer ${n.buffer_ms} ms` : null].filter(Boolean).join(" · ");
    }
    tip.textContent = text;
    tip.hidden = false;
    const wrap = $("#topo-wrap").getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - wrap.left + 12, wrap.width - 260) + "px";
    tip.style.top = ev.clientY - wrap.top + 12 + "px";
    dash.tip = text;
  });
  topo.addEventListener("mouseleave", () => { tip.hidden = true; });

  topo.addEventListener("click", (ev) => {
    const b = topo.getBoundingClientRect();
    const x = ev.clientX - b.left, y = ev.clientY - b.top;
    let best = null, bd = Infinity;
    for (const h of hits) {
      const d = Math.hypot(h.x - x, h.y - y);
      if (d < Math.max(h.r + 4, 8) && d < bd) { best = h; bd = d; }
    }
    if (best && best.id != null) showPeer(best.id);
  });

  // ---------- peer details ----------
  async function showPeer(id, refresh) {
    peerOpen = id;
    const r = await fetch(`/dashboard/api/peer?stream=${encodeURIComponent(selected)}&id=${id}`, { credentials: "same-origin" });
    if (peerOpen !== id) return;
    const box = $("#peer-body");
    $("#peer").hidden = false;
    if (!r.ok) {
      if (!refresh) box.replaceChildren(el("h3", {}, "peer " + id), el("p", { class: "muted" }, "gone"));
      else box.append(el("p", { class: "muted" }, "(left)"));
      peerOpen = null;
      return;
    }
    const p = await r.json();
    const link = (pid) => (pid > 0 ? el("a", { onclick: () => showPeer(pid) }, String(pid)) : ref(pid));
    const dl = (pairs) => el("dl", {}, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const st = p.stats || {};
    const parents = (p.parents || []).map((pl) => el("div", {}, `stripe ${pl.stripe}: `, link(pl.parent), ` · ${pl.path}` + (pl.kbps ? ` · ${pl.kbps} kb/s` : "") + (pl.kind ? ` · ${pl.kind}` : "")));
    const kids = (p.children_by_stripe || []).map((ids, s) => el("div", {}, `stripe ${s}: `, ...(ids.length ? ids.slice(0, 40).flatMap((c, i) => [i ? ", " : "", link(c)]) : ["—"]), ids.length > 40 ? ` … (${ids.length})` : ""));
    const conn = [...new Set((p.parents || []).map((pl) => pl.path))].join(", ") || "—";
    box.replaceChildren(
      el("h3", {}, p.seeder ? "Seeder (root of every stripe)" : "Peer " + p.id),
      dl([
        ["client", p.seeder ? "seeder" : p.kind || "—"],
        ["connection", p.seeder ? "root" : conn],
        ["NAT", p.nat || "—"], ["region", p.region || "—"], ["address", p.remote || "—"],
        ["health", p.health], ["depth", (p.depth || []).join(" / ") || "0"],
        ["forwards in", p.interior >= 0 ? "stripe " + p.interior : "no stripe (leaf)"],
        ["capacity", p.capacity + " slots"], ["children", String(p.children)],
        ["buffer", (st.buffer_ms || 0) + " ms"], ["behind live", (st.behind_live_ms || 0) + " ms"],
        ["playout target", st.playout_ms ? st.playout_ms + " ms" : "—"],
        ["receiving", (p.kbps || 0) + " kb/s"], ["upload", (st.upload_kbps || 0) + " kb/s"],
        ...(p.seeder ? [] : [["received from viewers / edges / seeder / origin", sourcesText(st)], ["of which via TURN", fmtBytes(st.bytes_turn)]]),
        ["bytes up", fmtBytes(st.bytes_up)], ["stalls", `${st.stalls || 0} (${st.stalled_ms || 0} ms)`],
        ["hop latency", (st.hop_latency_ms || 0) + " ms"],
        ["joined", p.joined ? hms(p.joined) : "—"], ["last report", p.last_seen ? hms(p.last_seen) : "—"],
      ]),
      ...(p.seeder ? [] : [el("h3", {}, "Parents"), ...parents]),
      el("h3", {}, "Children"), ...kids);
  }
  function closePeer() { peerOpen = null; $("#peer").hidden = true; }
  $("#peer-close").addEventListener("click", closePeer);

  // ---------- time series ----------
  const charts = (() => {
    const defs = [
      ["viewers", "Viewers", (p) => p.viewers, ""],
      ["offload", "Offload (share viewers and edges sent, not the seeder)", (p) => (p.offload == null ? null : 100 * p.offload), "%"],
      ["egress", "Seeder egress (root peer and origin)", (p) => (8 * p.egress_bps) / 1e6, "Mb/s"],
      ["join", "Join time (median, to first media report)", (p) => p.join_ms, "ms"],
      ["behind", "Latency behind live (median)", (p) => p.behind_ms, "ms"],
      ["stalls", "Stalls", (p) => p.stalls, "/s"],
    ];
    let plots = null;
    const axis = { stroke: C.muted, grid: { stroke: "#1d2722" }, ticks: { stroke: "#1d2722" } };
    function make() {
      const box = $("#charts");
      box.replaceChildren();
      plots = defs.map(([id, title, , unit]) => {
        const div = el("div", { class: "chart", id: "chart-" + id }, el("h3", {}, title));
        box.append(div);
        const w = Math.max(300, div.clientWidth - 10);
        return new uPlot({
          width: w, height: 150, legend: { show: false }, cursor: { y: false },
          scales: { x: { time: true } },
          // Ticks with as many decimals as their spacing needs, and room
          // for the widest label: a long one was clipped ("0000 kb/s").
          axes: [axis, { ...axis, size: 92, values: (u, v) => {
            const step = v.length > 1 ? Math.abs(v[1] - v[0]) : 1;
            const dec = Math.max(0, Math.min(3, -Math.floor(Math.log10(step || 1))));
            return v.map((x) => (x == null ? "" : x.toFixed(dec) + (unit ? " " + unit : "")));
          } }],
          series: [{}, { stroke: C.good, fill: "rgba(63,191,127,0.12)", width: 1.5, spanGaps: false }],
        }, [[], []], div);
      });
    }
    return {
      update(pts) {
        if (!plots) make();
        const xs = pts.map((p) => p.t);
        defs.forEach(([, , f], i) => plots[i].setData([xs, pts.map(f)]));
      },
      reset() { plots = null; $("#charts").replaceChildren(); },
      resize() {
        if (!plots) return;
        for (const u of plots) u.setSize({ width: Math.max(300, u.root.parentElement.clientWidth - 10), height: 150 });
      },
    };
  })();
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { charts.resize(); if (lastTopo) renderTopology(lastTopo); }, 150);
  });

  // ---------- viewer experience ----------
  const GROUP = { client: "client", path: "path" };
  function renderExperience(list) {
    const dist = (d, f) => (d && d.p50 != null ? `${f(d.p50)} / ${f(d.p95)}` : "—");
    const ms = (v) => (v >= 10000 ? (v / 1000).toFixed(0) + " s" : v >= 1000 ? (v / 1000).toFixed(1) + " s" : Math.round(v) + " ms");
    const share = (v) => (100 * v).toFixed(v < 0.01 ? 2 : 1) + " %";
    $("#experience tbody").replaceChildren(...list.map((e) => el("tr", { data: { group: e.by + "/" + e.name } },
      el("td", {}, el("span", { class: "muted" }, (GROUP[e.by] || e.by) + " "), e.name),
      el("td", { class: "num" }, e.viewers),
      el("td", { class: "num" }, dist(e.join_ms, ms)),
      el("td", { class: "num" }, dist(e.behind_ms, ms)),
      el("td", { class: "num" }, dist(e.playout_ms, ms)),
      el("td", { class: "num" }, dist(e.stalled, share)))));
  }

  // ---------- events ----------
  function describe(e) {
    switch (e.kind) {
      case "join": return `peer ${e.peer} joined` + (e.detail ? ` (${e.detail})` : "");
      case "leave": return `peer ${e.peer} left` + (e.detail ? `: ${e.detail}` : "");
      case "reparent": return `peer ${e.peer}, stripe ${e.stripe || 0}: ${ref(e.from || 0)} → ${ref(e.to || 0)}`;
      case "evict": return `peer ${e.peer} evicted: ${e.detail || ""}`;
      case "keys": return `content keys changed (${e.detail || ""})`;
      case "publish_start": return (e.detail === "new epoch" ? "new publishing epoch" : "publish started") + (e.epoch ? `, epoch ${e.epoch}` : "");
      case "publish_stop": return `publish stopped` + (e.detail ? ` (${e.detail})` : "");
      case "seeder": return `seeder registered (session ${e.peer})` + (e.epoch ? `, live epoch ${e.epoch}` : "");
      case "seeder_gone": return `seeder session ended` + (e.detail ? `: ${e.detail}` : "");
    }
    return e.kind;
  }
  function renderEvents(evs) {
    if (!evs.length) return;
    const list = $("#events");
    const items = evs.map((e) => el("li", { data: { kind: e.kind } }, hms(e.time), " ", el("span", { class: "k k-" + e.kind }, e.kind.replace("_", " ")), describe(e)));
    list.prepend(...items.reverse());
    while (list.childElementCount > 300) list.lastElementChild.remove();
  }

  // ---------- stream keys ----------
  const api = async (method, path, body) => {
    const r = await fetch(path, {
      method, credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || `${method} ${path}: ${r.status}`);
    return j;
  };
  const keysError = (msg) => { const e = $("#keys-error"); e.hidden = !msg; e.textContent = msg || ""; };
  async function loadKeys() {
    try {
      const j = await api("GET", "/api/streams");
      const rows = (j.streams || []).map((s) => el("tr", { data: { stream: s.name } },
        el("td", {}, s.name),
        el("td", {}, new Date(s.created_at).toLocaleString()),
        el("td", {}, s.last_used ? new Date(s.last_used).toLocaleString() : "never"),
        el("td", {}, s.revoked ? "revoked" : s.live ? "live" : "active"),
        el("td", {}, s.revoked ? "" : el("label", { class: "private" },
          el("input", { type: "checkbox", class: "private-toggle", checked: !!s.private, onchange: (ev) => setPrivate(s.name, ev.target.checked) }), " private")),
        el("td", {}, s.revoked ? "" : el("span", {},
          s.private ? el("button", { type: "button", class: "ghost mint", onclick: () => mint(s.name) }, "Viewer token") : null,
          el("button", { type: "button", class: "danger", onclick: () => revoke(s.name) }, "Revoke")))));
      $("#keys tbody").replaceChildren(...rows);
    } catch (e) { keysError(e.message); }
    loadAudit();
  }
  async function setPrivate(name, on) {
    try { await api("PUT", `/api/streams/${encodeURIComponent(name)}/private`, { private: on }); keysError(""); } catch (e) { keysError(e.message); }
    loadKeys();
  }
  async function mint(name) {
    const hours = Number(prompt(`Viewer token for "${name}": valid for how many hours?`, "1"));
    if (!(hours > 0)) return;
    try {
      const j = await api("POST", `/api/streams/${encodeURIComponent(name)}/tokens`, { ttl_seconds: Math.round(hours * 3600) });
      const box = $("#new-key");
      box.dataset.stream = name;
      box.replaceChildren(
        el("strong", {}, `Viewer token for "${name}", valid until ${new Date(j.expires_at).toLocaleString()}. `),
        copyRow("Token", j.token),
        copyRow("Player", `<banyan-player stream="${name}" token="${j.token}"></banyan-player>`),
        el("button", { type: "button", class: "ghost", onclick: () => { box.hidden = true; box.replaceChildren(); } }, "Hide"));
      box.hidden = false;
      keysError("");
    } catch (e) { keysError(e.message); }
    loadAudit();
  }

  // ---------- audit log ----------
  async function loadAudit() {
    try {
      const j = await api("GET", "/api/audit?limit=50");
      $("#audit tbody").replaceChildren(...(j.entries || []).map((e) => el("tr", { data: { action: e.action } },
        el("td", {}, new Date(e.time).toLocaleString()), el("td", {}, e.action.replaceAll("_", " ")),
        el("td", {}, e.stream || ""), el("td", {}, e.via), el("td", {}, e.remote || ""), el("td", {}, e.detail || ""))));
    } catch { /* shown by the keys error already */ }
  }
  async function revoke(name) {
    if (!confirm(`Revoke the key of "${name}"? A live publish with it ends now.`)) return;
    try { await api("DELETE", "/api/streams/" + encodeURIComponent(name)); keysError(""); } catch (e) { keysError(e.message); }
    loadKeys();
  }
  const copyRow = (label, value) => el("div", { class: "row" }, el("span", {}, label), el("code", { class: label.toLowerCase().replace(/\W+/g, "-") }, value),
    el("button", { type: "button", class: "ghost", onclick: (ev) => copy(value, ev.target) }, "Copy"));
  async function copy(text, btn) {
    try { await navigator.clipboard.writeText(text); btn.textContent = "Copied"; } catch { btn.textContent = "Select and copy"; }
    setTimeout(() => (btn.textContent = "Copy"), 1500);
  }
  $("#create-key").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = $("#new-name").value.trim();
    keysError("");
    try {
      const j = await api("POST", "/api/streams", { name });
      let server = `rtmp://${location.hostname}:1935/live`, whip = "";
      try {
        const ing = await api("GET", "/api/ingest?stream=" + encodeURIComponent(j.name));
        server = ing.rtmp_url || server; whip = ing.whip_url || "";
      } catch { /* no seeder known: the default */ }
      const box = $("#new-key");
      box.dataset.stream = j.name;
      box.replaceChildren(...[
        el("strong", {}, `Stream "${j.name}" created. `), el("span", { class: "muted" }, "The key is shown only now: copy it into OBS (Settings › Stream › Service: Custom)."),
        copyRow("Server", server), copyRow("Stream Key", j.key),
        whip ? copyRow("WHIP", whip) : null,
        copyRow("ffmpeg", `ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine -c:v libx264 -pix_fmt yuv420p -g 60 -c:a aac -f flv ${server}/${j.key}`),
        el("button", { type: "button", class: "ghost", onclick: () => { box.hidden = true; box.replaceChildren(); } }, "I have copied it — hide"),
      ].filter(Boolean));
      box.hidden = false;
      $("#new-name").value = "";
    } catch (e) { keysError(e.message); }
    loadKeys();
  });

  loadKeys();
  setInterval(loadKeys, 10000);
  connect();
})();
