package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/internal/realip"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store"
)

// DashboardConfig configures the operator dashboard.
type DashboardConfig struct {
	// Store checks the admin token and lists the streams that have keys.
	// Required.
	Store store.Backend
	// Page serves the dashboard page itself (the web package's handler)
	// to a logged-in GET /dashboard. Nil: a one-line placeholder.
	Page http.Handler
	// Ingest tells what the seeder sees of a stream's publish: the ingest
	// protocol, bitrate (kbit/s), frame rate and whether it is live. May
	// be nil (a tracker without a local seeder).
	Ingest func(stream string) (protocol string, kbps, fps float64, live bool)
	// Keyframes tells the measured keyframe interval of a stream's
	// publish and the advice for a long one ("" when fine). May be nil.
	Keyframes func(stream string) (interval time.Duration, advice string)
	// MaxNodes is the swarm size past which topology is aggregated
	// (DefaultMaxNodes when zero).
	MaxNodes int
	// StreamLifetime bounds one server-sent-events connection; the browser
	// reconnects on its own (5 minutes when zero).
	StreamLifetime time.Duration
	// SessionTTL is how long a dashboard login lasts (DefaultSessionTTL
	// when zero); the session lives in the store, the browser holds only
	// its random token.
	SessionTTL time.Duration
	Logger     *slog.Logger
}

// DefaultSessionTTL is DashboardConfig.SessionTTL's default.
const DefaultSessionTTL = 12 * time.Hour

// MountDashboard serves the dashboard on mux under /dashboard.
func (t *Tracker) MountDashboard(mux *http.ServeMux, cfg DashboardConfig) {
	h := t.DashboardHandler(cfg)
	mux.Handle("/dashboard", h)
	mux.Handle("/dashboard/", h)
}

// DashboardHandler serves /dashboard and everything under it:
//
//	GET  /dashboard                       the page, or a login form (401) without a session
//	POST /dashboard/login                 token=<admin token> (form): starts a session, sets its cookie
//	POST /dashboard/logout                ends the session, clears the cookie
//	GET  /dashboard/api/streams           streams overview
//	GET  /dashboard/api/stream?name=S     overview, topology snapshot, series, events of one stream
//	GET  /dashboard/api/peer?stream=S&id=N one peer (0: the seeder)
//	GET  /dashboard/events?stream=S       text/event-stream, one JSON frame a second
//
// Everything but the login form needs a live session (its random token in
// SessionCookie: HttpOnly, SameSite=Strict, expiring with the session)
// or the admin token as a Bearer token; logins and logouts go to the
// audit log;
// cross-site browser requests are refused. The first call starts the
// once-a-second sampler that feeds the time series; it stops with the
// tracker.
func (t *Tracker) DashboardHandler(cfg DashboardConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = t.log
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.StreamLifetime <= 0 {
		cfg.StreamLifetime = 5 * time.Minute
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	d := &dashboard{t: t, cfg: cfg, logins: rate.NewLimiter(2, 10), snaps: make(map[string]cachedSnap)}
	t.dashOnce.Do(func() {
		t.mu.Lock()
		closed := t.closed
		if !closed {
			t.wg.Add(1)
		}
		t.mu.Unlock()
		if !closed {
			go t.sampleLoop(d.ingest)
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard", d.page)
	mux.HandleFunc("POST /dashboard/login", d.login)
	mux.HandleFunc("POST /dashboard/logout", d.authed(d.logout))
	mux.HandleFunc("GET /dashboard/api/streams", d.authed(d.apiStreams))
	mux.HandleFunc("GET /dashboard/api/stream", d.authed(d.apiStream))
	mux.HandleFunc("GET /dashboard/api/peer", d.authed(d.apiPeer))
	mux.HandleFunc("GET /dashboard/api/report", d.authed(d.apiReport))
	mux.HandleFunc("GET /dashboard/events", d.authed(d.events))
	mux.HandleFunc("/dashboard/", d.authed(func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, http.StatusNotFound, "no such dashboard resource")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		mux.ServeHTTP(w, r)
	})
}

type dashboard struct {
	t      *Tracker
	cfg    DashboardConfig
	logins *rate.Limiter // failed logins, all addresses together

	mu    sync.Mutex
	snaps map[string]cachedSnap // by stream: several open dashboards share one build a second
}

type cachedSnap struct {
	at   time.Time
	snap *Snapshot
}

func (d *dashboard) ingest(stream string) IngestStat {
	if d.cfg.Ingest == nil {
		return IngestStat{}
	}
	p, kbps, fps, live := d.cfg.Ingest(stream)
	in := IngestStat{Live: live, Protocol: p, Kbps: kbps, FPS: fps}
	if d.cfg.Keyframes != nil && live {
		iv, advice := d.cfg.Keyframes(stream)
		in.KeyframeS, in.Advice = iv.Seconds(), advice
	}
	return in
}

func (d *dashboard) loggedIn(r *http.Request) bool {
	return adminVia(d.cfg.Store, r) != ""
}

// authed guards a handler: same-site requests with the admin token only.
func (d *dashboard) authed(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if httpx.CrossSite(r) {
			httpx.Error(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		if !d.loggedIn(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="banyan"`)
			httpx.Error(w, http.StatusUnauthorized, "admin token required: log in at /dashboard")
			return
		}
		next(w, r)
	}
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Log in · Banyan dashboard</title><link rel="stylesheet" href="/static/dashboard.css"></head>
<body class="login"><main>
<h1>Banyan dashboard</h1>
<form method="post" action="/dashboard/login" id="login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
{{if .}}<p class="error" role="alert">{{.}}</p>{{end}}
<p class="hint">The token is printed by <code>banyan up</code> on its first start and kept in <code>DATA/admin.token</code>.</p>
</form>
</main></body></html>
`))

// showLogin answers a request without a session: the login form, with
// status 401 (the dashboard itself is refused).
func (d *dashboard) showLogin(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, msg)
}

func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	if !d.loggedIn(r) {
		d.showLogin(w, http.StatusUnauthorized, "")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if d.cfg.Page == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("dashboard page not configured; the API is under /dashboard/api/\n"))
		return
	}
	d.cfg.Page.ServeHTTP(w, r)
}

// maxLoginBody bounds the login form.
const maxLoginBody = 4 << 10

func (d *dashboard) login(w http.ResponseWriter, r *http.Request) {
	if httpx.CrossSite(r) {
		// Login CSRF: another site must not log a browser in.
		httpx.Error(w, http.StatusForbidden, "cross-site request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		d.showLogin(w, http.StatusBadRequest, "That form could not be read.")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" || len(tok) > 256 || !d.cfg.Store.CheckAdminToken(tok) {
		if !d.logins.Allow() {
			d.showLogin(w, http.StatusTooManyRequests, "Too many failed logins; wait a few seconds.")
			return
		}
		d.cfg.Logger.Warn("dashboard: failed login", "remote", remoteIP(r))
		d.showLogin(w, http.StatusUnauthorized, "That is not the admin token.")
		return
	}
	sess, exp, err := d.cfg.Store.CreateAdminSession(d.cfg.SessionTTL)
	if err != nil {
		d.cfg.Logger.Error("dashboard: start session", "err", err)
		d.showLogin(w, http.StatusInternalServerError, "The session could not be started; see the server log.")
		return
	}
	// A rotation that committed between the check above and the session
	// (which it would have deleted) must win: check the token again now
	// that the session exists, so a session either predates the rotation,
	// which deleted it, or follows it and sees the new token.
	if !d.cfg.Store.CheckAdminToken(tok) {
		if err := d.cfg.Store.DeleteAdminSession(sess); err != nil {
			d.cfg.Logger.Error("dashboard: end session", "err", err)
		}
		d.showLogin(w, http.StatusUnauthorized, "The admin token was rotated; log in with the new one.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: sess, Path: "/", HttpOnly: true, Expires: exp,
		MaxAge: int(d.cfg.SessionTTL / time.Second), SameSite: http.SameSiteStrictMode, Secure: realip.HTTPS(r),
	})
	d.cfg.Logger.Info("dashboard: operator logged in", "remote", remoteIP(r))
	auditAction(d.cfg.Store, d.cfg.Logger, r, "dashboard", "login", "", "")
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (d *dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if tok := sessionToken(r); tok != "" {
		if err := d.cfg.Store.DeleteAdminSession(tok); err != nil {
			d.cfg.Logger.Error("dashboard: end session", "err", err)
		}
		auditAction(d.cfg.Store, d.cfg.Logger, r, "dashboard", "logout", "", "")
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: realip.HTTPS(r),
	})
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

// StreamOverview is one row of the streams overview.
type StreamOverview struct {
	Name    string `json:"name"`
	HasKey  bool   `json:"has_key"` // the store knows it
	Revoked bool   `json:"revoked"`
	Private bool   `json:"private"`
	// Live: a broadcaster is publishing (the seeder says so, or the
	// tracker's seeder session does).
	Live    bool       `json:"live"`
	Seeder  bool       `json:"seeder"` // a seeder session is the root
	Ingest  IngestStat `json:"ingest"`
	Viewers int        `json:"viewers"` // in the overlay, edges included
	Edges   int        `json:"edges"`   // operators' relay edges among them
	Stripes int        `json:"stripes"`
	Depth   int        `json:"max_depth"`
	// Offload is over the last 10 s; OffloadTotal since the tracker
	// started. Nil when viewers received nothing.
	Offload      *float64 `json:"offload"`
	OffloadTotal *float64 `json:"offload_total"`
	// Bytes viewers received by sender (protocol.Sources), and what the
	// seeder sent (root peer and origin fallback), since the tracker
	// started.
	Bytes       protocol.Sources `json:"bytes"`
	SeederBytes uint64           `json:"seeder_bytes"`
	EgressBps   float64          `json:"egress_bps"`
	Stalls      uint64           `json:"stalls"`
	// StallsPerViewerHour is stalls over the viewer-hours watched since
	// the tracker started; nil before a viewer-minute.
	StallsPerViewerHour *float64 `json:"stalls_per_viewer_hour"`
	// StalledShare is the share of watch time viewers spent stalled since
	// the tracker started; nil before a viewer-minute.
	StalledShare *float64     `json:"stalled_share"`
	Health       HealthCounts `json:"health"`
}

// overviewLocked summarises a stream. Callers hold st.mu.
func (st *streamState) overviewLocked(in IngestStat) StreamOverview {
	d := &st.dash
	o := StreamOverview{
		Name: st.name, Live: st.live || in.Live, Seeder: st.seeder != nil, Ingest: in,
		Viewers: st.forest.Len(), Stripes: st.forest.Stripes(), OffloadTotal: d.total.offload(),
		Bytes:       d.total.Src,
		SeederBytes: d.total.fromSeeder(), Stalls: d.total.Stalls,
	}
	for s := 0; s < o.Stripes; s++ {
		o.Depth = max(o.Depth, st.forest.MaxDepth(s))
	}
	if p, ok := d.latestLocked(); ok {
		o.Offload, o.EgressBps = p.Offload, p.EgressBps
	}
	if d.viewerSeconds >= 60 {
		v := float64(d.total.Stalls) / (d.viewerSeconds / 3600)
		o.StallsPerViewerHour = &v
		share := min(1, float64(d.total.StalledMS)/1000/d.viewerSeconds)
		o.StalledShare = &share
	}
	for _, s := range st.sessions {
		if !s.isSeeder {
			o.Health.add(healthOf(&s.stats))
			if s.kind == protocol.KindRelay {
				o.Edges++
			}
		}
	}
	return o
}

// Overview summarises every stream the tracker has state for, by name.
// ingest may be nil.
func (t *Tracker) Overview(ingest func(string) IngestStat) []StreamOverview {
	var out []StreamOverview
	for _, st := range t.streamList() {
		var in IngestStat
		if ingest != nil {
			in = ingest(st.name)
		}
		st.mu.Lock()
		out = append(out, st.overviewLocked(in))
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b StreamOverview) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// overview merges the tracker's streams with the store's.
func (d *dashboard) overview() ([]StreamOverview, error) {
	out := d.t.Overview(d.ingest)
	keyed, err := d.cfg.Store.Streams()
	if err != nil {
		return nil, err
	}
	for _, s := range keyed {
		i, found := slices.BinarySearchFunc(out, s.Name, func(o StreamOverview, name string) int {
			switch {
			case o.Name < name:
				return -1
			case o.Name > name:
				return 1
			}
			return 0
		})
		if !found {
			in := d.ingest(s.Name)
			out = slices.Insert(out, i, StreamOverview{Name: s.Name, Ingest: in, Live: in.Live})
		}
		o := &out[i]
		o.HasKey, o.Revoked, o.Private = true, s.Revoked, s.Private
	}
	return out, nil
}

func (d *dashboard) apiStreams(w http.ResponseWriter, r *http.Request) {
	ov, err := d.overview()
	if err != nil {
		d.cfg.Logger.Error("dashboard: list streams", "err", err)
		httpx.Error(w, http.StatusInternalServerError, "list streams failed")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"streams": ov})
}

// snapshot returns a snapshot at most half a second old.
func (d *dashboard) snapshot(stream string) (*Snapshot, error) {
	now := time.Now()
	d.mu.Lock()
	c, ok := d.snaps[stream]
	d.mu.Unlock()
	if ok && now.Sub(c.at) < 500*time.Millisecond {
		return c.snap, nil
	}
	snap, err := d.t.Snapshot(stream, d.cfg.MaxNodes)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.snaps[stream] = cachedSnap{at: now, snap: snap}
	d.mu.Unlock()
	return snap, nil
}

// StreamView is everything about one stream the dashboard opens with.
type StreamView struct {
	Overview StreamOverview `json:"overview"`
	Topology *Snapshot      `json:"topology"`
	Series   []Point        `json:"series"`
	Events   []Event        `json:"events"`
	// Experience is join time, behind-live and stalled share by client
	// and by path, p50/p95 over the current viewers.
	Experience []Experience `json:"experience"`
}

// maxEventsPerFrame bounds the events one answer or frame carries.
const maxEventsPerFrame = 200

func (d *dashboard) streamView(name string, withSeries bool, after uint64) (*StreamView, uint64, error) {
	st := d.t.streamState(name)
	if st == nil {
		return nil, after, ErrUnknownStream
	}
	snap, err := d.snapshot(name)
	if err != nil {
		return nil, after, err
	}
	in := d.ingest(name)
	st.mu.Lock()
	v := &StreamView{Overview: st.overviewLocked(in), Topology: snap, Experience: st.experienceLocked(d.t.cfg.Now())}
	if withSeries {
		v.Series = st.dash.seriesLocked()
	} else if p, ok := st.dash.latestLocked(); ok {
		v.Series = []Point{p}
	}
	v.Events = st.dash.events.since(after, maxEventsPerFrame)
	last := st.dash.events.n
	st.mu.Unlock()
	return v, last, nil
}

func streamParam(w http.ResponseWriter, r *http.Request, key string) (string, bool) {
	name := r.URL.Query().Get(key)
	if !protocol.ValidStream(name) {
		httpx.Error(w, http.StatusBadRequest, key+"= must be a valid stream name")
		return "", false
	}
	return name, true
}

func (d *dashboard) apiStream(w http.ResponseWriter, r *http.Request) {
	name, ok := streamParam(w, r, "name")
	if !ok {
		return
	}
	v, _, err := d.streamView(name, true, 0)
	if errors.Is(err, ErrUnknownStream) {
		httpx.Error(w, http.StatusNotFound, "no peers or seeder for stream "+name+" yet")
		return
	}
	if err != nil {
		httpx.Error(w, http.StatusInternalServerError, "snapshot failed")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

func (d *dashboard) apiPeer(w http.ResponseWriter, r *http.Request) {
	name, ok := streamParam(w, r, "stream")
	if !ok {
		return
	}
	id, err := strconv.ParseUint(r.URL.Query().Get("id"), 10, 64)
	if err != nil {
		httpx.Error(w, http.StatusBadRequest, "id= must be a peer id (0: the seeder)")
		return
	}
	p, err := d.t.Peer(name, protocol.PeerID(id))
	switch {
	case errors.Is(err, ErrUnknownStream), errors.Is(err, ErrUnknownPeer):
		httpx.Error(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		httpx.Error(w, http.StatusInternalServerError, "peer lookup failed")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

// Frame is one server-sent event of /dashboard/events.
type Frame struct {
	// Type is "init" for the first frame (full series, recent events) and
	// "tick" after (the newest point, new events).
	Type    string           `json:"type"`
	Time    time.Time        `json:"time"`
	Streams []StreamOverview `json:"streams"`
	// Stream is the selected stream's view; nil when none is selected or
	// the tracker has no state for it yet.
	Stream *StreamView `json:"stream,omitempty"`
}

// events streams one Frame a second until the client goes, the tracker
// closes or StreamLifetime passes.
func (d *dashboard) events(w http.ResponseWriter, r *http.Request) {
	var name string
	if q := r.URL.Query().Get("stream"); q != "" {
		var ok bool
		if name, ok = streamParam(w, r, "stream"); !ok {
			return
		}
	}
	rc := http.NewResponseController(w)
	// A server ReadTimeout would otherwise end the stream: the idle
	// connection's background read times out and cancels the request.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithTimeout(r.Context(), d.cfg.StreamLifetime)
	defer cancel()
	stop := context.AfterFunc(d.t.ctx, cancel)
	defer stop()

	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	var after uint64
	first := true
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		f := Frame{Type: "tick", Time: time.Now()}
		if first {
			f.Type = "init"
		}
		ov, err := d.overview()
		if err != nil {
			return
		}
		f.Streams = ov
		if name != "" {
			if v, last, err := d.streamView(name, first, after); err == nil {
				f.Stream, after = v, last
				first = false
			}
		} else {
			first = false
		}
		b, err := json.Marshal(f)
		if err != nil {
			d.cfg.Logger.Error("dashboard: encode frame", "err", err)
			return
		}
		buf := make([]byte, 0, len(b)+16)
		buf = append(buf, "data: "...)
		buf = append(buf, b...)
		buf = append(buf, "\n\n"...)
		if !write(buf) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
