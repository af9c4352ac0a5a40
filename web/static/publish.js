// publish.js: the browser publisher of /publish/<stream>.
//
// It captures a camera and a microphone, shows a preview, and publishes
// them over WHIP (RFC 9725) to /whip/<stream> on this server: H.264 video
// (forced with setCodecPreferences; Banyan's packager takes nothing else)
// and Opus audio. The stream key is a Bearer token; it stays in this tab's
// sessionStorage and is never put in a URL.
//
// State for scripts and tests: window.banyanPublisher, a plain object with
// state ("idle", "ready", "connecting", "live", "reconnecting", "stopping"),
// connection (RTCPeerConnection.connectionState), error (the message shown,
// "" when none), bitrateKbps (media bytes sent over the last second),
// targetKbps and availableKbps (the encoder's target, the network
// estimate), codec, encoder, width, height, fps, keyframes, framesSent,
// rttMs, qualityLimit, encodeMs and sendDelayMs (mean per frame and per
// packet), session (the WHIP session URL while publishing), liveSince,
// timing (ms from Go live to each step) and iceServers (how many the
// server advertised).
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const stream = document.body.dataset.stream || "";
  const whipURL = new URL("/whip/" + encodeURIComponent(stream), location.href).href;
  const keyStore = "banyan.publish.key." + stream;

  const RESOLUTIONS = { 360: [640, 360], 720: [1280, 720], 1080: [1920, 1080] };
  // ICE candidates gathered after this go to the server with PATCH
  // (trickle), so a slow STUN or TURN server does not hold up the offer.
  const GATHER_WAIT_MS = 2000;
  const HTTP_TIMEOUT_MS = 15000;
  const DELETE_TIMEOUT_MS = 7000;
  // Media must flow this long after the answer, or the publish failed.
  const CONNECT_TIMEOUT_MS = 20000;

  const pub = {
    state: "idle", connection: "new", error: "", bitrateKbps: 0, codec: "", encoder: "",
    width: 0, height: 0, fps: 0, keyframes: 0, framesSent: 0, rttMs: 0, qualityLimit: "", session: "",
    encodeMs: 0, sendDelayMs: 0, targetKbps: 0, availableKbps: 0,
    // Milliseconds from Go live to: keyChecked, gathered, answered, connected.
    timing: {},
    liveSince: 0, // Date.now() when media started to flow
    iceServers: 0, // STUN/TURN URLs the server advertised
  };
  window.banyanPublisher = pub;

  let media = null; // the preview MediaStream: at most one video and one audio track
  let session = null; // the publish in progress, see goLive
  let acquiring = false;
  let cameraError = ""; // the last capture failure shown, cleared by a success

  // A message for the person at the page, as opposed to a bug.
  class UserError extends Error {}

  // ---- UI ----

  const LABELS = {
    idle: "No camera", ready: "Ready", connecting: "Connecting…", live: "Live",
    reconnecting: "Reconnecting…", stopping: "Stopping…",
  };

  function render() {
    const st = $("status");
    st.dataset.state = pub.state;
    let label = LABELS[pub.state] || pub.state;
    if (pub.state === "live" && pub.liveSince) label += " for " + clock(Date.now() - pub.liveSince);
    $("st-state").textContent = label;
    $("st-conn").textContent = session ? pub.connection : "—";
    const live = pub.state === "live" || pub.state === "reconnecting";
    $("st-bitrate").textContent = live
      ? formatRate(pub.bitrateKbps) + (pub.availableKbps ? ` (the network allows ≈ ${formatRate(pub.availableKbps)})` : "")
      : "—";
    $("st-video").textContent = live && pub.width
      ? `${pub.width}×${pub.height} at ${Math.round(pub.fps)} fps` + (pub.qualityLimit && pub.qualityLimit !== "none" ? ` (limited by ${pub.qualityLimit})` : "")
      : "—";
    $("st-codec").textContent = live && pub.codec ? pub.codec + (pub.encoder ? ` (${pub.encoder})` : "") : "—";
    $("st-rtt").textContent = live && pub.rttMs ? `${Math.round(pub.rttMs)} ms` : "—";
    $("badge").hidden = pub.state !== "live";

    const hasVideo = !!(media && media.getVideoTracks().some((t) => t.readyState === "live"));
    $("golive").disabled = !!session || !hasVideo || acquiring;
    $("stop").disabled = !session || pub.state === "stopping";
    $("key").disabled = !!session;
    $("video-device").disabled = !media || acquiring;
    $("audio-device").disabled = !media || acquiring;
    $("nocam").hidden = hasVideo;
  }

  function clock(ms) {
    const t = Math.max(0, Math.floor(ms / 1000));
    const two = (n) => String(n).padStart(2, "0");
    const h = Math.floor(t / 3600);
    return (h ? h + ":" + two(Math.floor(t / 60) % 60) : Math.floor(t / 60)) + ":" + two(t % 60);
  }

  function formatRate(kbps) {
    return kbps >= 1000 ? `${(kbps / 1000).toFixed(2)} Mbps` : `${Math.round(kbps)} kbps`;
  }

  function setState(s) {
    pub.state = s;
    render();
  }

  function showError(msg) {
    pub.error = msg;
    const el = $("error");
    el.textContent = msg;
    el.hidden = !msg;
  }

  function noCamera(msg, canRetry) {
    $("nocam-msg").textContent = msg;
    $("camera").hidden = !canRetry;
  }

  // ---- capture ----

  function videoConstraints() {
    const [w, h] = RESOLUTIONS[$("resolution").value] || RESOLUTIONS[720];
    const c = { width: { ideal: w }, height: { ideal: h }, frameRate: { ideal: 30, max: 30 } };
    const id = $("video-device").value;
    if (id) c.deviceId = { exact: id };
    return c;
  }

  function audioConstraints() {
    const id = $("audio-device").value;
    if (id === "none") return false;
    const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    if (id) c.deviceId = { exact: id };
    return c;
  }

  function captureError(e, what) {
    switch (e && e.name) {
      case "NotAllowedError":
      case "SecurityError":
        return `Access to the ${what} was refused. Allow it in the browser's site settings, then press Start camera.`;
      case "NotFoundError":
        return `No ${what} found.`;
      case "NotReadableError":
      case "AbortError":
        return `The ${what} is in use by another application, or failed to start.`;
      case "OverconstrainedError":
        return `The selected ${what} cannot be used with these settings.`;
    }
    return `Cannot start the ${what}: ${e && e.message ? e.message : e}`;
  }

  // startCamera (re)captures everything: on load and from the Start
  // camera button.
  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      noCamera("This page cannot use a camera here: browsers allow it only on https pages and on localhost.", false);
      showError("Camera access needs a secure page: open this page over https (or on localhost).");
      return;
    }
    acquiring = true;
    noCamera("Waiting for the camera…", false);
    render();
    try {
      let s;
      const audio = audioConstraints();
      try {
        s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints(), audio });
      } catch (e) {
        if (!audio || (e.name !== "NotFoundError" && e.name !== "NotReadableError" && e.name !== "OverconstrainedError")) throw e;
        // No usable microphone: video alone is a valid publish.
        s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
        showError(captureError(e, "microphone") + " Publishing video only.");
      }
      if (pub.error === cameraError) showError("");
      setMedia(s);
      await listDevices();
    } catch (e) {
      cameraError = captureError(e, "camera");
      noCamera(cameraError, true);
      showError(cameraError);
    } finally {
      acquiring = false;
      render();
    }
  }

  function setMedia(s) {
    if (media) {
      for (const t of media.getTracks()) if (!s.getTracks().includes(t)) t.stop();
    }
    media = s;
    for (const t of s.getTracks()) watchTrack(t);
    $("preview").srcObject = s;
    if (pub.state === "idle") pub.state = "ready";
    if (session && session.pc) {
      // Recaptured while live: the publish carries on with the new tracks.
      for (const tr of [session.video, session.audio]) {
        if (!tr) continue;
        const kind = tr === session.video ? "video" : "audio";
        tr.sender.replaceTrack(s.getTracks().find((x) => x.kind === kind) || null).catch((e) => console.warn("banyan publish: replaceTrack", e));
      }
    }
  }

  function watchTrack(t) {
    t.addEventListener("ended", () => {
      if (!media || !media.getTracks().includes(t)) return;
      showError(`The ${t.kind === "video" ? "camera" : "microphone"} stopped (unplugged, or taken by another application). Pick it again.`);
      render();
    });
  }

  // replaceTrack swaps one kind of track in the preview, and in the
  // publish when live (no renegotiation: WHIP has none).
  async function replaceTrack(kind, track) {
    const old = media.getTracks().filter((t) => t.kind === kind);
    for (const t of old) {
      media.removeTrack(t);
      t.stop();
    }
    if (track) {
      media.addTrack(track);
      watchTrack(track);
    }
    // Some browsers drop a preview whose stream changed under it.
    $("preview").srcObject = media;
    if (session && session.pc) {
      const tr = kind === "video" ? session.video : session.audio;
      if (tr) await tr.sender.replaceTrack(track || null);
    }
  }

  async function changeDevice(kind) {
    if (!media || acquiring) return;
    acquiring = true;
    render();
    try {
      if (kind === "audio" && $("audio-device").value === "none") {
        await replaceTrack("audio", null);
        return;
      }
      // The old camera goes first: many cannot be opened twice.
      if (kind === "video") {
        noCamera("Switching camera…", false);
        await replaceTrack("video", null);
      }
      const c = kind === "video" ? { video: videoConstraints() } : { audio: audioConstraints() };
      const s = await navigator.mediaDevices.getUserMedia(c);
      await replaceTrack(kind, s.getTracks()[0]);
      showError("");
    } catch (e) {
      showError(captureError(e, kind === "video" ? "camera" : "microphone"));
      if (kind === "video") noCamera(captureError(e, "camera"), true);
    } finally {
      acquiring = false;
      render();
    }
  }

  async function changeResolution() {
    const t = media && media.getVideoTracks()[0];
    if (!t) return;
    const c = videoConstraints();
    delete c.deviceId;
    try {
      await t.applyConstraints(c);
    } catch (e) {
      await changeDevice("video"); // recapture at the new size
    }
  }

  async function listDevices() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch (e) {
      return;
    }
    const current = (kind) => {
      const t = media && media.getTracks().find((x) => x.kind === kind);
      return t ? t.getSettings().deviceId || "" : "";
    };
    fill($("video-device"), devices.filter((d) => d.kind === "videoinput"), current("video"), "Camera", null);
    fill($("audio-device"), devices.filter((d) => d.kind === "audioinput"), current("audio"), "Microphone", "No microphone (video only)");
  }

  function fill(sel, devices, selected, noun, noneLabel) {
    const keep = sel.value;
    sel.textContent = "";
    devices.forEach((d, i) => {
      if (!d.deviceId) return; // no permission yet: nothing to tell them apart
      sel.add(new Option(d.label || `${noun} ${i + 1}`, d.deviceId));
    });
    if (noneLabel) sel.add(new Option(noneLabel, "none"));
    if (!sel.options.length) sel.add(new Option(`(no ${noun.toLowerCase()})`, ""));
    // A kind with no track now: "none" where there is such a choice.
    const want = selected || (noneLabel ? "none" : keep);
    if ([...sel.options].some((o) => o.value === want)) sel.value = want;
  }

  // ---- WHIP ----

  async function httpFetch(url, opts, timeout = HTTP_TIMEOUT_MS) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeout);
    try {
      return await fetch(url, { ...opts, signal: ctl.signal, cache: "no-store", credentials: "omit" });
    } catch (e) {
      if (e.name === "AbortError") throw new UserError(`The server did not answer within ${timeout / 1000} s. Try again.`);
      throw new UserError(`Cannot reach the server (${e.message}). Check the network and try again.`);
    } finally {
      clearTimeout(timer);
    }
  }

  async function refusal(resp, what) {
    let body = "";
    try {
      body = (await resp.text()).trim().slice(0, 400);
    } catch (e) {
      // the reason is optional
    }
    switch (resp.status) {
      case 401:
        return "Wrong stream key: the server refused it. Check the key (banyan key create prints it once; an operator can make a new one).";
      case 403:
        return `This stream key belongs to another stream, not "${stream}".`;
      case 422:
        return `The server cannot take this publish: ${body || "unprocessable offer"}`;
      case 503:
        return `The server cannot take a publish right now: ${body || "busy"}. Try again in a few seconds.`;
    }
    return `${what} failed: HTTP ${resp.status}${body ? ": " + body : ""}`;
  }

  // parseLinks reads RFC 8288 Link header values: <url>; name="value"; …
  // (fetch joins several Link headers with ", ").
  function parseLinks(header) {
    const out = [];
    const n = header ? header.length : 0;
    let i = 0;
    while (i < n && out.length < 32) {
      const lt = header.indexOf("<", i);
      if (lt < 0) break;
      const gt = header.indexOf(">", lt);
      if (gt < 0) break;
      const link = { url: header.slice(lt + 1, gt), params: {} };
      i = gt + 1;
      for (;;) {
        while (header[i] === " " || header[i] === "\t") i++;
        if (header[i] !== ";") break;
        i++;
        while (header[i] === " " || header[i] === "\t") i++;
        let j = i;
        while (j < n && !"=;, \t".includes(header[j])) j++;
        const name = header.slice(i, j).toLowerCase();
        i = j;
        let value = "";
        if (header[i] === "=") {
          i++;
          if (header[i] === '"') {
            i++;
            while (i < n && header[i] !== '"') {
              if (header[i] === "\\") i++;
              if (i < n) value += header[i];
              i++;
            }
            i++;
          } else {
            j = i;
            while (j < n && header[j] !== ";" && header[j] !== ",") j++;
            value = header.slice(i, j).trim();
            i = j;
          }
        }
        if (name) link.params[name] = value;
      }
      while (i < n && header[i] !== ",") i++;
      i++;
      out.push(link);
    }
    return out;
  }

  function iceServersFrom(header) {
    const servers = [];
    for (const l of parseLinks(header)) {
      if (!(l.params.rel || "").split(/\s+/).includes("ice-server")) continue;
      if (!/^(stun|stuns|turn|turns):/i.test(l.url)) continue;
      const s = { urls: l.url };
      if (l.params.username !== undefined) s.username = l.params.username;
      if (l.params.credential !== undefined) s.credential = l.params.credential;
      servers.push(s);
    }
    return servers;
  }

  // iceServers asks the WHIP endpoint, with the key, which STUN and TURN
  // servers to use (an authorized OPTIONS, RFC 9725 section 4.6). A wrong
  // key is refused here, before the camera is negotiated.
  async function iceServers(key) {
    const resp = await httpFetch(whipURL, { method: "OPTIONS", headers: { Authorization: "Bearer " + key } });
    if (resp.status === 401 || resp.status === 403 || resp.status === 503) throw new UserError(await refusal(resp, "Checking the key"));
    if (!resp.ok) return []; // an endpoint without OPTIONS: no ICE servers advertised
    return iceServersFrom(resp.headers.get("Link"));
  }

  // h264Codecs lists the browser's H.264 send formats, best first:
  // packetization-mode=1 (mode 0 cannot carry big slices), then
  // constrained baseline 42e01f (every decoder plays it).
  function h264Codecs() {
    const caps = window.RTCRtpSender && RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
    if (!caps) return [];
    const score = (c) => {
      const f = c.sdpFmtpLine || "";
      let s = 0;
      if (/packetization-mode=1/.test(f)) s += 4;
      if (/profile-level-id=42e0/i.test(f)) s += 2;
      else if (/profile-level-id=42/i.test(f)) s += 1;
      return s;
    };
    return caps.codecs
      .filter((c) => c.mimeType.toLowerCase() === "video/h264")
      .map((c, i) => ({ c, i }))
      .sort((a, b) => score(b.c) - score(a.c) || a.i - b.i)
      .map((x) => x.c);
  }

  function preferCodecs(tr, kind) {
    if (typeof tr.setCodecPreferences !== "function") return; // the server still picks H.264 if offered
    const caps = RTCRtpSender.getCapabilities(kind).codecs;
    const list = kind === "video"
      ? [...h264Codecs(), ...caps.filter((c) => c.mimeType.toLowerCase() === "video/rtx")]
      : caps.filter((c) => c.mimeType.toLowerCase() === "audio/opus");
    if (!list.length) return;
    try {
      tr.setCodecPreferences(list);
    } catch (e) {
      console.warn("banyan publish: setCodecPreferences", kind, e);
    }
  }

  function bitrateKbps() {
    return Number($("bitrate").value) || 2500;
  }

  // applySendParameters sets the bitrate cap, and keeps the resolution:
  // a browser encoder otherwise starts small and steps the resolution up
  // (and down under load), and every step is a new SPS, so a new epoch
  // (a new init segment) for every viewer. Frame rate and quality give
  // way instead.
  async function applySendParameters(s = session) {
    if (!s || !s.video) return;
    const sender = s.video.sender;
    const p = sender.getParameters();
    if (!p.encodings || !p.encodings.length) return;
    p.encodings[0].maxBitrate = bitrateKbps() * 1000;
    p.degradationPreference = "maintain-resolution";
    try {
      await sender.setParameters(p);
    } catch (e) {
      console.warn("banyan publish: setParameters", e);
    }
  }

  function waitGathering(pc, ms) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const done = () => {
        clearTimeout(t);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") done();
      };
      const t = setTimeout(done, ms);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  // fragment is an RFC 8840 trickle-ICE SDP fragment of candidates.
  function fragment(pc, cands, end) {
    const sdp = pc.localDescription ? pc.localDescription.sdp : "";
    const ufrag = (sdp.match(/^a=ice-ufrag:(\S+)/m) || [])[1];
    const pwd = (sdp.match(/^a=ice-pwd:(\S+)/m) || [])[1];
    let out = "";
    if (ufrag && pwd) out += `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`;
    const byMid = new Map();
    for (const c of cands) {
      const mid = c.sdpMid != null ? c.sdpMid : String(c.sdpMLineIndex || 0);
      if (!byMid.has(mid)) byMid.set(mid, []);
      byMid.get(mid).push(c.candidate);
    }
    for (const [mid, lines] of byMid) {
      out += `m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:${mid}\r\n`;
      for (const l of lines) out += `a=${l}\r\n`;
    }
    if (end) out += "a=end-of-candidates\r\n";
    return out;
  }

  // trickle sends the candidates gathered after the offer went out.
  function trickle(s) {
    if (!s.location || (!s.pending.length && !s.pendingEnd) || s.closed) return;
    const cands = s.pending.splice(0);
    const end = s.pendingEnd;
    s.pendingEnd = false;
    if (!cands.length) return; // end-of-candidates alone changes nothing for the server
    s.patches = s.patches.then(async () => {
      if (s.closed) return;
      try {
        const headers = { Authorization: "Bearer " + s.key, "Content-Type": "application/trickle-ice-sdpfrag" };
        if (s.etag) headers["If-Match"] = s.etag;
        const resp = await httpFetch(s.location, { method: "PATCH", headers, body: fragment(s.pc, cands, end) });
        if (!resp.ok) console.warn("banyan publish: trickle refused", resp.status, await resp.text());
      } catch (e) {
        console.warn("banyan publish: trickle", e);
      }
    });
  }

  async function goLive(ev) {
    if (ev) ev.preventDefault();
    if (session) return;
    showError("");
    const key = $("key").value.trim();
    if (!key) {
      showError("Enter the stream key.");
      $("key").focus();
      return;
    }
    const vtrack = media && media.getVideoTracks().find((t) => t.readyState === "live");
    if (!vtrack) {
      showError("No camera: start the camera first.");
      return;
    }
    if (!window.RTCPeerConnection) {
      showError("This browser has no WebRTC (RTCPeerConnection): it cannot publish.");
      return;
    }
    if (!h264Codecs().length) {
      showError("This browser cannot send H.264 video (RTCRtpSender.getCapabilities lists none), and Banyan needs H.264. " +
        "Use Chrome, Edge or Safari, or Firefox with the OpenH264 plugin enabled.");
      return;
    }
    const s = {
      key, pc: null, video: null, audio: null, location: "", etag: "", closed: false,
      offered: false, pending: [], pendingEnd: false, patches: Promise.resolve(), prev: null, timer: 0, connectTimer: 0,
      t0: performance.now(),
    };
    session = s;
    const mark = (name) => {
      pub.timing[name] = Math.round(performance.now() - s.t0);
    };
    pub.timing = {};
    setState("connecting");
    try {
      const servers = await iceServers(key);
      pub.iceServers = servers.length;
      mark("keyChecked");
      if (s.closed) return;
      const pc = new RTCPeerConnection({ iceServers: servers, bundlePolicy: "max-bundle" });
      s.pc = pc;
      s.video = pc.addTransceiver(vtrack, {
        direction: "sendonly", streams: [media], sendEncodings: [{ maxBitrate: bitrateKbps() * 1000 }],
      });
      preferCodecs(s.video, "video");
      await applySendParameters(s);
      // Always an audio section, even with no microphone now: one can be
      // picked later without renegotiating.
      s.audio = pc.addTransceiver(media.getAudioTracks()[0] || "audio", { direction: "sendonly", streams: [media] });
      preferCodecs(s.audio, "audio");

      pc.addEventListener("icecandidate", (e) => {
        if (!s.offered) return; // already in the offer
        if (e.candidate && e.candidate.candidate) s.pending.push(e.candidate);
        else s.pendingEnd = true;
        trickle(s);
      });
      pc.addEventListener("connectionstatechange", () => onConnection(s));

      const offer = await pc.createOffer();
      if (!/^a=rtpmap:\d+ H264\//im.test(offer.sdp)) {
        throw new UserError("The browser did not offer H.264 video, which Banyan needs. Try another browser.");
      }
      await pc.setLocalDescription(offer);
      await waitGathering(pc, GATHER_WAIT_MS);
      mark("gathered");
      if (s.closed) return;
      s.offered = true;
      const resp = await httpFetch(whipURL, {
        method: "POST",
        headers: { "Content-Type": "application/sdp", Authorization: "Bearer " + key },
        body: pc.localDescription.sdp,
      });
      if (resp.status !== 201) throw new UserError(await refusal(resp, "Publishing"));
      const loc = resp.headers.get("Location");
      if (loc) s.location = new URL(loc, resp.url || whipURL).href;
      s.etag = resp.headers.get("ETag") || "";
      pub.session = s.location;
      const answer = await resp.text();
      mark("answered");
      if (s.closed) {
        endOnServer(s);
        return;
      }
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
      try {
        sessionStorage.setItem(keyStore, key);
      } catch (e) {
        // storage disabled: the key just is not remembered
      }
      trickle(s);
      await applySendParameters(s);
      watchTransport(s);
      s.timer = setInterval(() => poll(s), 1000);
      s.connectTimer = setTimeout(() => {
        if (session === s && pub.state === "connecting") {
          stop(s, "Could not connect to the server for media (ICE failed): UDP to the server may be blocked, or no TURN server could relay it.");
        }
      }, CONNECT_TIMEOUT_MS);
      onConnection(s);
    } catch (e) {
      if (e instanceof UserError) {
        if (/^Wrong stream key/.test(e.message)) {
          try {
            sessionStorage.removeItem(keyStore);
          } catch (err) {
            // nothing remembered
          }
        }
        await stop(s, e.message);
      } else {
        console.error("banyan publish:", e);
        await stop(s, `Publishing failed: ${e && e.message ? e.message : e}`);
      }
    }
  }

  function onConnection(s) {
    if (session !== s || !s.pc) return;
    const st = s.pc.connectionState;
    pub.connection = st;
    switch (st) {
      case "connected":
        if (pub.timing.connected === undefined) {
          pub.timing.connected = Math.round(performance.now() - s.t0);
          pub.liveSince = Date.now();
        }
        clearTimeout(s.connectTimer);
        setState("live");
        return;
      case "disconnected":
        if (pub.state === "live") setState("reconnecting");
        break;
      case "failed":
        stop(s, pub.state === "connecting"
          ? "Could not connect to the server for media (ICE failed): UDP to the server may be blocked, or no TURN server could relay it."
          : "The connection to the server was lost. Press Go live to publish again.");
        return;
    }
    render();
  }

  // watchTransport notices the server closing DTLS: it ended the publish.
  function watchTransport(s) {
    const t = s.video && s.video.sender.transport;
    if (!t) return;
    t.addEventListener("statechange", () => {
      if (session !== s) return;
      if (t.state === "closed") {
        stop(s, "The server ended this publish: the key was revoked, another publisher took over the stream, or the server is stopping.");
      } else if (t.state === "failed") {
        stop(s, "The secure media connection (DTLS) to the server failed.");
      }
    });
  }

  async function poll(s) {
    if (session !== s || !s.pc) return;
    let report;
    try {
      report = await s.pc.getStats();
    } catch (e) {
      return;
    }
    if (session !== s) return;
    let bytes = 0;
    let video = null;
    let pairId = "";
    report.forEach((r) => {
      if (r.type === "outbound-rtp") {
        bytes += r.bytesSent || 0;
        if (r.kind === "video" && (!video || (r.bytesSent || 0) > (video.bytesSent || 0))) video = r;
      } else if (r.type === "transport" && r.selectedCandidatePairId) {
        pairId = r.selectedCandidatePairId;
      }
    });
    const now = performance.now();
    if (s.prev && now > s.prev.t) {
      pub.bitrateKbps = Math.max(0, Math.round(((bytes - s.prev.bytes) * 8) / (now - s.prev.t)));
    }
    s.prev = { t: now, bytes };
    if (video) {
      pub.width = video.frameWidth || 0;
      pub.height = video.frameHeight || 0;
      pub.fps = video.framesPerSecond || 0;
      pub.keyframes = video.keyFramesEncoded || 0;
      pub.framesSent = video.framesSent || 0;
      pub.encoder = video.encoderImplementation || "";
      pub.qualityLimit = video.qualityLimitationReason || "";
      pub.targetKbps = Math.round((video.targetBitrate || 0) / 1000);
      // Mean time a frame spends in the encoder, and a packet in the
      // pacer: the browser's share of glass-to-server latency it can tell.
      pub.encodeMs = video.framesEncoded ? (1000 * (video.totalEncodeTime || 0)) / video.framesEncoded : 0;
      pub.sendDelayMs = video.packetsSent ? (1000 * (video.totalPacketSendDelay || 0)) / video.packetsSent : 0;
      const c = video.codecId && report.get(video.codecId);
      if (c) {
        const mode = /packetization-mode=(\d)/.exec(c.sdpFmtpLine || "");
        const profile = /profile-level-id=([0-9a-f]{6})/i.exec(c.sdpFmtpLine || "");
        pub.codec = c.mimeType.replace(/^video\//i, "") + (profile ? " " + profile[1] : "") + (mode ? " mode " + mode[1] : "");
      }
    }
    const pair = pairId && report.get(pairId);
    pub.rttMs = pair && pair.currentRoundTripTime !== undefined ? pair.currentRoundTripTime * 1000 : 0;
    pub.availableKbps = pair && pair.availableOutgoingBitrate ? Math.round(pair.availableOutgoingBitrate / 1000) : 0;
    render();
  }

  // endOnServer deletes the WHIP session (the server ends the publish at
  // once rather than waiting for the connection to time out).
  async function endOnServer(s, keepalive = false) {
    if (!s.location) return;
    const loc = s.location;
    s.location = "";
    try {
      const resp = await httpFetch(loc, { method: "DELETE", headers: { Authorization: "Bearer " + s.key }, keepalive }, DELETE_TIMEOUT_MS);
      if (!resp.ok && resp.status !== 404) console.warn("banyan publish: DELETE", resp.status, await resp.text());
    } catch (e) {
      console.warn("banyan publish: DELETE", e);
    }
  }

  // stop ends a publish: DELETE on the server, then the connection. msg,
  // when given, says why (an error).
  async function stop(s, msg) {
    if (!s || s.closed) return;
    s.closed = true;
    clearInterval(s.timer);
    clearTimeout(s.connectTimer);
    if (msg) showError(msg);
    setState("stopping");
    await endOnServer(s);
    if (s.pc) s.pc.close();
    if (session === s) session = null;
    Object.assign(pub, {
      connection: "new", bitrateKbps: 0, codec: "", encoder: "", width: 0, height: 0, fps: 0,
      keyframes: 0, framesSent: 0, rttMs: 0, qualityLimit: "", session: "", encodeMs: 0, sendDelayMs: 0,
      targetKbps: 0, availableKbps: 0, liveSince: 0,
    });
    setState(media && media.getVideoTracks().length ? "ready" : "idle");
  }

  // ---- wiring ----

  function init() {
    try {
      $("key").value = sessionStorage.getItem(keyStore) || "";
    } catch (e) {
      // storage disabled
    }
    $("form").addEventListener("submit", goLive);
    $("stop").addEventListener("click", () => stop(session));
    $("camera").addEventListener("click", startCamera);
    $("video-device").addEventListener("change", () => changeDevice("video"));
    $("audio-device").addEventListener("change", () => changeDevice("audio"));
    $("resolution").addEventListener("change", changeResolution);
    $("bitrate").addEventListener("change", () => applySendParameters());
    $("show-key").addEventListener("click", () => {
      const k = $("key");
      const show = k.type === "password";
      k.type = show ? "text" : "password";
      $("show-key").textContent = show ? "Hide" : "Show";
      $("show-key").setAttribute("aria-pressed", String(show));
    });
    if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
      navigator.mediaDevices.addEventListener("devicechange", () => {
        if (media) listDevices();
      });
    }
    // Leaving the page ends the publish on the server at once.
    addEventListener("pagehide", () => {
      const s = session;
      if (!s) return;
      s.closed = true;
      session = null;
      endOnServer(s, true);
      if (s.pc) s.pc.close();
    });
    render();
    startCamera();
  }

  init();
})();
