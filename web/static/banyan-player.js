// banyan-player.js: Banyan's live viewer as a custom element.
//
//   <script src="https://HOST/static/banyan-player.js"></script>
//   <banyan-player stream="demo"></banyan-player>
//
// The element creates a <video>, loads the viewer (Go compiled to
// WebAssembly) from the server this script came from, and plays the stream
// through the Banyan mesh. Everything is served by that server; nothing is
// loaded from anywhere else.
//
// Attributes: stream (required); stats (show the stats panel open); token
// (viewer token of a private stream); tracker and origin (override the
// signaling and chunk URLs); debug (verbose console logs).
// Properties: state, reason, stats (the latest figures), video.
// Methods: play(), unmute().
// Events: "banyan-state" (detail {state, reason}), "banyan-stats" (detail:
// the figures). States: connecting, waiting, live, buffering, paused,
// reconnecting, ended, error.
//
// If the viewer crashes (it exits with a non-zero code: 3 after a panic it
// recovered, 2 after one it could not), the element says so, counts it in
// stats.restarts and starts a fresh viewer after a backoff, instead of
// leaving a frozen picture.
(() => {
  "use strict";
  if (customElements.get("banyan-player")) return;

  // Filled in by the server: {"wasm": "...", "exec": "..."} or {"error": "..."}.
  const ASSETS = /*BANYAN_ASSETS*/null;

  const here = document.currentScript && document.currentScript.src;
  const base = new URL(here || "/static/banyan-player.js", location.href);
  const server = base.origin;

  const registry = (globalThis.__banyan = globalThis.__banyan || {});
  let counter = 0;

  let execPromise = null;
  function loadExec() {
    if (typeof globalThis.Go === "function") return Promise.resolve();
    if (!execPromise) {
      execPromise = new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = new URL(ASSETS.exec, base).href;
        s.onload = () => resolve();
        s.onerror = () => {
          execPromise = null;
          reject(new Error("could not load wasm_exec.js"));
        };
        document.head.appendChild(s);
      });
    }
    return execPromise;
  }

  let modulePromise = null;
  function loadModule() {
    if (!modulePromise) {
      const url = new URL(ASSETS.wasm, base).href;
      modulePromise = (async () => {
        if (WebAssembly.compileStreaming) {
          try {
            return await WebAssembly.compileStreaming(fetch(url));
          } catch (e) {
            // A proxy that changed the Content-Type: compile from bytes,
            // after the whole download (the test fails on this warning).
            console.warn("banyan: streaming compilation failed, compiling from bytes:", String(e));
          }
        }
        const r = await fetch(url);
        if (!r.ok) throw new Error(`could not load the viewer: HTTP ${r.status}`);
        return WebAssembly.compile(await r.arrayBuffer());
      })();
      modulePromise.catch(() => { modulePromise = null; });
    }
    return modulePromise;
  }

  // releaseOnExit: when a viewer dies or is stopped, the browser objects it made stay
  // alive, and their handlers call into a program that has exited
  // ("Go program has already exited"): its PeerConnections would keep
  // neighbours sending to a dead peer, its websocket would keep the
  // tracker session open. wasm_exec.js drops its table of the JS values
  // the program holds just before it reports the exit, so this wraps that
  // import to take the table first and, on any exit, detach the
  // program's handlers and close its connections and timers. A clean
  // exit (the element removed or its stream changed) needs it as much as
  // a crash: in WebKit a handler of the stopped viewer fired after the
  // exit and threw "Go program has already exited". It leans on
  // wasm_exec.js internals (_values, _scheduledTimeouts, the import's
  // name) served with the same build; if they change, it does nothing.
  // The events the viewer's player listens to with addEventListener on the
  // video, MediaSource and SourceBuffer (wasm/player.go).
  const PLAYER_EVENTS = ["waiting", "playing", "pause", "error", "sourceopen", "sourceended",
    "sourceclose", "updateend", "startstreaming", "endstreaming"];
  function releaseOnExit(go, video) {
    const imports = go.importObject && go.importObject.gojs;
    const wasmExit = imports && imports["runtime.wasmExit"];
    if (typeof wasmExit !== "function") return;
    imports["runtime.wasmExit"] = (sp) => {
      const values = go._values;
      wasmExit(sp);
      if (!Array.isArray(values)) return;
      if (go._scheduledTimeouts instanceof Map) {
        for (const t of go._scheduledTimeouts.values()) clearTimeout(t);
        go._scheduledTimeouts.clear();
      }
      const dead = new Set(values.filter((v) => typeof v === "function"));
      const closable = [globalThis.RTCPeerConnection, globalThis.RTCDataChannel, globalThis.WebSocket].filter(Boolean);
      for (const v of [video, ...values]) {
        if (!v || typeof v !== "object" || !(v instanceof EventTarget)) continue;
        try {
          for (const f of dead) {
            for (const t of PLAYER_EVENTS) v.removeEventListener(t, f);
          }
          for (const k in v) {
            if (k.startsWith("on") && dead.has(v[k])) v[k] = null;
          }
          if (closable.some((c) => v instanceof c)) v.close();
        } catch (e) { /* best effort: the page goes on either way */ }
      }
    };
  }

  const LABELS = {
    connecting: "Connecting…",
    waiting: "Waiting for the broadcast to start",
    live: "Live",
    buffering: "Buffering…",
    paused: "Paused",
    reconnecting: "Reconnecting…",
    ended: "The broadcast has ended",
    error: "Cannot play this stream",
  };
  const BUSY = new Set(["connecting", "buffering", "reconnecting"]);
  // Restart backoff after a crash: 1 s, doubling up to 30 s; a viewer that
  // ran a minute without crashing starts again from 1 s.
  const RESTART_MIN_MS = 1000, RESTART_MAX_MS = 30000, RESTART_RESET_MS = 60000;

  const STYLE = `
:host { display: block; position: relative; max-width: 100%; background: #000; color: #eef3f0;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; border-radius: 8px; overflow: hidden; }
.stage { position: relative; width: 100%; aspect-ratio: 16 / 9; background: #000; }
video { display: block; width: 100%; height: 100%; background: #000; }
.badge { display: inline-block; margin-right: .4rem; padding: 0 .45rem; border-radius: 4px; line-height: 1.5;
  background: rgba(0,0,0,.65); font-size: .75rem; font-weight: 700; letter-spacing: .04em;
  text-transform: uppercase; pointer-events: none; }
.badge[data-state="live"] { background: #c62828; }
.overlay { position: absolute; inset: 0; display: flex; flex-direction: column; align-items: center;
  justify-content: center; gap: .5rem; padding: 1rem; text-align: center; background: rgba(0,0,0,.55);
  pointer-events: none; }
.overlay[hidden], button[hidden] { display: none; }
.overlay .label { font-size: 1.1rem; font-weight: 600; }
.overlay .reason { max-width: 36rem; color: #c3d0c9; overflow-wrap: anywhere; }
.overlay[data-state="error"] .label { color: #ff8a80; }
.spin { width: 2rem; height: 2rem; border: 3px solid rgba(255,255,255,.25); border-top-color: #fff;
  border-radius: 50%; animation: spin 1s linear infinite; }
.spin[hidden] { display: none; }
@keyframes spin { to { transform: rotate(360deg); } }
button { font: inherit; color: #fff; background: rgba(0,0,0,.7); border: 1px solid rgba(255,255,255,.35);
  border-radius: 6px; min-height: 44px; padding: .4rem .8rem; cursor: pointer; }
button:hover, button:focus-visible { background: rgba(40,40,40,.9); outline: 2px solid #3fbf7f; }
.unmute { position: absolute; top: .5rem; right: .5rem; display: flex; align-items: center; gap: .4rem; }
.unmute svg { width: 1.2rem; height: 1.2rem; fill: currentColor; }
.play { position: absolute; left: 50%; top: 50%; transform: translate(-50%, -50%); font-size: 1.2rem;
  padding: .7rem 1.6rem; }
details { background: #111714; padding: .3rem .75rem; }
summary { cursor: pointer; color: #9fb3aa; min-height: 32px; line-height: 32px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .3rem 0 .5rem; }
dt { color: #9fb3aa; }
dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
@media (max-width: 480px) {
  :host { border-radius: 0; font-size: 13px; }
  .unmute span { display: none; }
}
@media (prefers-reduced-motion: reduce) { .spin { animation: none; } }
`;

  const MUTED_ICON = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 9v6h4l5 5V4L7 9H3zm13.6 3 2.7-2.7-1.4-1.4-2.7 2.7-2.7-2.7-1.4 1.4 2.7 2.7-2.7 2.7 1.4 1.4 2.7-2.7 2.7 2.7 1.4-1.4-2.7-2.7z"/></svg>';

  const TEMPLATE = `<style>${STYLE}</style>
<div class="stage">
  <video part="video" controls muted playsinline></video>
  <div class="overlay" part="overlay" role="status" aria-live="polite">
    <div class="spin"></div><div class="label"></div><div class="reason"></div>
  </div>
  <button class="unmute" part="unmute" type="button" hidden>${MUTED_ICON}<span>Tap to unmute</span></button>
  <button class="play" part="play" type="button" hidden>&#9654; Play</button>
</div>
<details part="stats"><summary><span class="badge" part="badge" aria-hidden="true"></span> Stats</summary><dl>
  <dt>State</dt><dd data-k="state">–</dd>
  <dt title="A stall's cause, kept after playback resumes">Last stall</dt><dd data-k="cause">none</dd>
  <dt title="How late this tab's timers ran lately: a tab short of CPU delivers video late">Tab timers</dt><dd data-k="lag">–</dd>
  <dt title="Other viewers, over WebRTC">From viewers</dt><dd data-k="viewers">–</dd>
  <dt title="The operator's relay edges, over WebRTC">From edges</dt><dd data-k="edges">–</dd>
  <dt title="The seeder's own peer, over WebRTC">From seeder</dt><dd data-k="seeder">–</dd>
  <dt title="The seeder's HTTP origin">From origin (HTTP)</dt><dd data-k="origin">–</dd>
  <dt title="Part of the WebRTC bytes relayed through a TURN server">Via TURN</dt><dd data-k="turn">–</dd>
  <dt>Parents</dt><dd data-k="parents">–</dd>
  <dt>Children</dt><dd data-k="children">–</dd>
  <dt>Behind live</dt><dd data-k="behind">–</dd>
  <dt>Buffer</dt><dd data-k="buffer">–</dd>
  <dt>Stalls</dt><dd data-k="stalls">–</dd>
  <dt>First frame</dt><dd data-k="first">–</dd>
  <dt>Restarts</dt><dd data-k="restarts">none</dd>
</dl></details>`;

  // userActive: the page is handling a user's gesture (a click on the
  // native controls, say). Where the browser cannot tell, assume it is,
  // so that the element never fights the viewer's own choice.
  function userActive() {
    const ua = navigator.userActivation;
    return ua ? ua.isActive : true;
  }
  // QUIET_PAUSE_MS pairs an unasked-for unmute with the pause it causes.
  const QUIET_PAUSE_MS = 3000;

  function seconds(ms) { return (ms / 1000).toFixed(1) + " s"; }
  function bytes(n) {
    if (n >= 1 << 30) return (n / (1 << 30)).toFixed(2) + " GiB";
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1 << 10) return (n / (1 << 10)).toFixed(0) + " KiB";
    return n + " B";
  }

  class BanyanPlayer extends HTMLElement {
    static get observedAttributes() { return ["stream", "stats"]; }

    constructor() {
      super();
      const root = this.attachShadow({ mode: "open" });
      root.innerHTML = TEMPLATE;
      this._video = root.querySelector("video");
      this._badge = root.querySelector(".badge");
      this._overlay = root.querySelector(".overlay");
      this._spin = root.querySelector(".spin");
      this._label = root.querySelector(".overlay .label");
      this._reason = root.querySelector(".overlay .reason");
      this._unmute = root.querySelector(".unmute");
      this._play = root.querySelector(".play");
      this._details = root.querySelector("details");
      this._dd = {};
      for (const dd of root.querySelectorAll("dd")) this._dd[dd.dataset.k] = dd;
      this._state = "";
      this._reasonText = "";
      this._stats = null;
      this._handle = null;
      this._firstFrame = null;
      // The page's steps of the join timeline (ms since navigation); the
      // viewer adds its own in stats.phases.
      this._phases = {};
      this._restarts = 0;
      this._lastCrash = "";
      this._restartDelay = RESTART_MIN_MS;
      this._restartTimer = 0;
      this._wantSound = false; // the viewer asked for sound (unmute())
      this._remutedAt = -Infinity;
      this._quietPauseAt = -Infinity;
      this._unmute.addEventListener("click", () => this.unmute());
      this._play.addEventListener("click", () => this.play());
      this._video.addEventListener("volumechange", () => this._keepMuted());
      this._video.addEventListener("pause", () => this._quietPause());
      this._video.addEventListener("playing", () => this._play.hidden = true);
    }

    get state() { return this._state; }
    get reason() { return this._reasonText; }
    get stats() { return this._stats; }
    get video() { return this._video; }

    connectedCallback() {
      this._details.open = this.hasAttribute("stats");
      if (!this._handle) this._start();
    }

    disconnectedCallback() { this._stop(); }

    attributeChangedCallback(name, old, val) {
      if (name === "stats") this._details.open = val !== null;
      if (name === "stream" && old !== null && old !== val && this.isConnected) {
        this._stop();
        this._start();
      }
    }

    // play starts playback after the browser refused autoplay, or resumes
    // after a pause (jumping back to the live edge).
    play() {
      const p = this._video.play();
      if (p && p.catch) p.catch(() => {});
      if (this._handle && this._handle.play) this._handle.play();
      this._play.hidden = true;
    }

    unmute() {
      this._wantSound = true;
      this._video.muted = false;
      if (this._video.volume === 0) this._video.volume = 1;
      if (this._video.paused && this._state !== "ended") this.play();
      this._syncMute();
    }

    // _keepMuted: WebKitGTK's GStreamer backend reports its pipeline's
    // unmuted state back to the element a moment after playback starts
    // (a volumechange nobody asked for), and Safari's autoplay policy,
    // sound only after a gesture, then pauses the video. Unless the
    // viewer unmuted (this element's button, or the native controls,
    // under a user activation), mute again and resume.
    _keepMuted() {
      const v = this._video;
      if (!v.muted && !this._wantSound && !userActive()) {
        v.muted = true;
        this._remutedAt = performance.now();
        if (v.paused && this._remutedAt - this._quietPauseAt < QUIET_PAUSE_MS) this._resume();
      }
      this._syncMute();
    }

    // _quietPause: a pause without a user activation right after
    // _keepMuted is the autoplay policy's answer to the sound: resume.
    _quietPause() {
      if (userActive()) return;
      this._quietPauseAt = performance.now();
      if (this._quietPauseAt - this._remutedAt < QUIET_PAUSE_MS) this._resume();
    }

    _resume() {
      const p = this._video.play();
      if (p && p.catch) p.catch(() => {});
    }

    _syncMute() {
      this._unmute.hidden = !this._video.muted || this._state === "error";
    }

    _watchFirstFrame(t0) {
      const v = this._video;
      const done = () => {
        if (this._firstFrame) return;
        const now = performance.now();
        this._firstFrame = { sinceNavigation: now, sinceStart: now - t0 };
        this._phases.firstFrame = Math.round(now);
        this._dd.first.textContent = seconds(now) + " after page load";
      };
      if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(done);
      else v.addEventListener("playing", done, { once: true });
    }

    async _start() {
      const stream = this.getAttribute("stream") || "";
      const t0 = performance.now();
      this._firstFrame = null;
      this._phases = { start: Math.round(t0) };
      this._setState("connecting", "");
      if (!ASSETS || ASSETS.error) {
        this._setState("error", (ASSETS && ASSETS.error) || "the viewer is not set up on this server");
        return;
      }
      if (!globalThis.MediaSource && !globalThis.ManagedMediaSource) {
        this._setState("error", "this browser cannot play live video (no Media Source Extensions)");
        return;
      }
      if (typeof WebAssembly !== "object") {
        this._setState("error", "this browser cannot run WebAssembly");
        return;
      }
      const id = `p${++counter}_${Math.random().toString(36).slice(2, 10)}`;
      const handle = {
        video: this._video,
        onstate: (state, reason) => this._setState(state, reason),
        onstats: (stats) => this._setStats(stats),
      };
      this._handle = handle;
      registry[id] = handle;
      this._watchFirstFrame(t0);
      const tracker = this.getAttribute("tracker") || server.replace(/^http/, "ws") + "/ws";
      // Connect to the tracker while the wasm downloads and compiles: the
      // viewer adopts this socket for its first session (in Chromium the
      // connection took 150–400 ms after the wasm started).
      try { handle.ws = new WebSocket(tracker); } catch (e) { /* the viewer dials itself */ }
      const dropEarly = () => {
        if (handle.ws) { try { handle.ws.close(); } catch (e) { /* closed already */ } }
        delete handle.ws;
      };
      try {
        const [module] = await Promise.all([loadModule(), loadExec()]);
        if (this._handle !== handle) { dropEarly(); return; } // removed while loading
        this._phases.compiled = Math.round(performance.now());
        // The wasm's download, as the browser timed it (streaming
        // compilation overlaps it).
        const res = performance.getEntriesByName && performance.getEntriesByName(new URL(ASSETS.wasm, base).href)[0];
        if (res && res.responseEnd > 0) {
          this._phases.wasmResponse = Math.round(res.responseStart);
          this._phases.wasmFetched = Math.round(res.responseEnd);
        }
        const go = new Go();
        // A callback that arrives after this program exited (a promise or
        // an event it had registered, when the player was removed or
        // restarted) is dropped: wasm_exec.js would throw "Go program has
        // already exited" into the page as an unhandled rejection.
        const resume = go._resume.bind(go);
        go._resume = () => { if (!go.exited) resume(); };
        go.env = {
          BANYAN_STREAM: stream,
          BANYAN_HANDLE: id,
          BANYAN_TRACKER: tracker,
          BANYAN_ORIGIN: this.getAttribute("origin") || server,
        };
        const token = this.getAttribute("token");
        if (token) go.env.BANYAN_TOKEN = token;
        if (this.hasAttribute("debug")) go.env.BANYAN_DEBUG = "1";
        let exitCode = 0;
        go.exit = (code) => { exitCode = code; };
        releaseOnExit(go, this._video);
        const inst = await WebAssembly.instantiate(module, go.importObject);
        if (this._handle !== handle) { dropEarly(); return; }
        const began = performance.now();
        this._phases.instantiated = Math.round(began);
        go.run(inst)
          .catch((e) => { exitCode = exitCode || 1; this._lastCrash = String(e && e.message || e); })
          .finally(() => {
            delete registry[id];
            if (this._handle === handle && exitCode !== 0) this._crashed(exitCode, performance.now() - began);
          });
      } catch (e) {
        delete registry[id];
        dropEarly();
        if (this._handle === handle) this._setState("error", (e && e.message) || String(e));
      }
    }

    _stop() {
      const h = this._handle;
      this._handle = null;
      clearTimeout(this._restartTimer);
      if (h && h.stop) h.stop();
    }

    // _crashed: the viewer exited on its own with a non-zero code. Its
    // last words (the state it reported) say why; a fresh one starts after
    // the backoff, unless the element was removed or restarted meanwhile.
    _crashed(code, ranMs) {
      if (ranMs > RESTART_RESET_MS) this._restartDelay = RESTART_MIN_MS;
      const why = this._state === "error" && this._reasonText ? this._reasonText : `exit code ${code}`;
      this._lastCrash = why;
      this._restarts++;
      this._dd.restarts.textContent = `${this._restarts} (last: ${why})`;
      const delay = this._restartDelay;
      this._restartDelay = Math.min(RESTART_MAX_MS, delay * 2);
      this._handle = null;
      this._setState("reconnecting", `the viewer stopped (${why}); restarting in ${Math.round(delay / 1000)} s`);
      this._restartTimer = setTimeout(() => {
        if (this._handle === null && this.isConnected) this._start();
      }, delay);
    }

    _setState(state, reason) {
      if (state === this._state && reason === this._reasonText) return;
      this._state = state;
      this._reasonText = reason || "";
      this.setAttribute("data-state", state);
      this._badge.dataset.state = state;
      this._badge.textContent = state === "live" ? "Live" : (LABELS[state] || state).replace(/…$/, "");
      this._dd.state.textContent = (LABELS[state] || state).replace(/…$/, "") + (this._reasonText ? ": " + this._reasonText : "");
      const quiet = state === "live" || state === "paused";
      this._overlay.hidden = quiet;
      this._overlay.dataset.state = state;
      this._spin.hidden = !BUSY.has(state);
      this._label.textContent = LABELS[state] || state;
      this._reason.textContent = this._reasonText;
      this._play.hidden = !(state === "paused" && this._reasonText);
      this._syncMute();
      this.dispatchEvent(new CustomEvent("banyan-state", { detail: { state, reason: this._reasonText } }));
    }

    _setStats(s) {
      s.firstFrameMs = this._firstFrame ? Math.round(this._firstFrame.sinceNavigation) : null;
      s.restarts = this._restarts;
      s.lastCrash = this._lastCrash;
      s.joinMs = this._firstFrame ? Math.round(this._firstFrame.sinceStart) : null;
      s.phases = Object.assign({}, this._phases, s.phases);
      this._stats = s;
      // The one definition of byte sources (protocol.Sources): viewers,
      // edges, seeder (its peer over WebRTC) and origin add up to all
      // received; TURN is the relayed part of the WebRTC bytes.
      const total = s.bytesViewers + s.bytesEdges + s.bytesSeeder + s.bytesOrigin;
      const share = (n) => total > 0 ? `${Math.round(100 * n / total)} % (${bytes(n)})` : "–";
      this._dd.viewers.textContent = share(s.bytesViewers);
      this._dd.edges.textContent = share(s.bytesEdges);
      this._dd.seeder.textContent = share(s.bytesSeeder);
      this._dd.origin.textContent = share(s.bytesOrigin);
      this._dd.turn.textContent = share(s.bytesTURN);
      // A browser without WebRTC (s.webrtc false) plays from the origin
      // and relays to nobody: say so rather than show bare zeros.
      const noRTC = s.webrtc === false ? " (no WebRTC in this browser)" : "";
      this._dd.parents.textContent = String(s.parents) + (s.paths ? ` (${s.paths.split(",").join(", ")})` : noRTC);
      this._dd.children.textContent = String(s.children) + noRTC;
      this._dd.behind.textContent = seconds(s.behindMs) + (s.rate > 1 ? ` (catching up ×${s.rate.toFixed(2)})` : "");
      this._dd.buffer.textContent = seconds(s.bufferMs);
      this._dd.stalls.textContent = s.stalls ? `${s.stalls} (${seconds(s.stalledMs)})` : "none";
      if (s.cause) this._dd.cause.textContent = s.cause;
      this._dd.lag.textContent = s.timerLagMs >= 250 ? `${s.timerLagMs} ms late (short of CPU)` : s.timerLagMs > 0 ? `${s.timerLagMs} ms late` : "on time";
      if (s.blocked && this._video.paused) this._play.hidden = false;
      this.dispatchEvent(new CustomEvent("banyan-stats", { detail: s }));
    }
  }

  customElements.define("banyan-player", BanyanPlayer);
})();
