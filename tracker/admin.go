package tracker

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/store"
)

// AdminConfig configures the admin API.
type AdminConfig struct {
	Store store.Backend
	// OnRevoke is called after a stream's key is revoked or rotated, so a live
	// publish with the old key can be ended. May be nil.
	OnRevoke func(stream string)
	// IsLive reports whether a stream is being published right now. May be nil.
	IsLive func(stream string) bool
	// OnPrivate is called after a stream's private flag changed, so the
	// origin stops (or starts) serving clear LL-HLS at once. May be nil.
	OnPrivate func(stream string, private bool)
	Logger    *slog.Logger
	// Now is the clock of minted viewer tokens (time.Now when nil).
	Now func() time.Time
}

// maxAdminBody bounds admin request bodies; they carry a name at most.
const maxAdminBody = 4 << 10

// StreamInfo is a stream as the admin API shows it (never with its key).
type StreamInfo struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	LastUsed  time.Time `json:"last_used,omitzero"`
	Revoked   bool      `json:"revoked"`
	Private   bool      `json:"private"`
	Live      bool      `json:"live"`
}

// CreatedStream is the answer to a create or a key rotation: the only time
// the key is ever shown.
type CreatedStream struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// NewAdminAPI returns the /api/streams handler. Every request needs
// "Authorization: Bearer <admin token>"; cross-site browser requests are
// refused so a page elsewhere cannot ride an operator's session.
func NewAdminAPI(cfg AdminConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &adminAPI{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/streams", a.create)
	mux.HandleFunc("GET /api/streams", a.list)
	mux.HandleFunc("DELETE /api/streams/{name}", a.revoke)
	mux.HandleFunc("POST /api/streams/{name}/key", a.rotate)
	mux.HandleFunc("PUT /api/streams/{name}/private", a.setPrivate)
	mux.HandleFunc("POST /api/streams/{name}/tokens", a.mintToken)
	mux.HandleFunc("GET /api/viewer-token-secret", a.tokenSecret)
	mux.HandleFunc("POST /api/admin/token", a.rotateAdminToken)
	mux.HandleFunc("GET /api/audit", a.audit)
	return a.auth(mux)
}

type adminAPI struct{ cfg AdminConfig }

func (a *adminAPI) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpx.CrossSite(r) {
			httpx.Error(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		via := adminVia(a.cfg.Store, r)
		if via == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="banyan"`)
			httpx.Error(w, http.StatusUnauthorized, "admin token required (Authorization: Bearer <token>)")
			return
		}
		next.ServeHTTP(w, r.WithContext(withVia(r.Context(), via)))
	})
}

// SessionCookie is the dashboard's cookie: a session token, never the
// admin token (see store.CreateAdminSession).
const SessionCookie = "banyan_admin"

func sessionToken(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

func (a *adminAPI) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := httpx.ReadJSON(w, r, maxAdminBody, &req); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, httpx.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		httpx.Error(w, status, err.Error())
		return
	}
	st, key, err := a.cfg.Store.CreateStream(req.Name)
	switch {
	case errors.Is(err, store.ErrInvalidName):
		httpx.Error(w, http.StatusBadRequest, store.ErrInvalidName.Error())
		return
	case errors.Is(err, store.ErrExists):
		httpx.Error(w, http.StatusConflict, "stream "+req.Name+" already exists")
		return
	case err != nil:
		a.internal(w, "create stream", err)
		return
	}
	a.cfg.Logger.Info("stream created", "stream", st.Name)
	a.record(r, "create", st.Name, "")
	w.Header().Set("Location", "/api/streams/"+st.Name)
	httpx.WriteJSON(w, http.StatusCreated, CreatedStream{Name: st.Name, Key: key})
}

func (a *adminAPI) list(w http.ResponseWriter, r *http.Request) {
	streams, err := a.cfg.Store.Streams()
	if err != nil {
		a.internal(w, "list streams", err)
		return
	}
	out := make([]StreamInfo, 0, len(streams))
	for _, s := range streams {
		out = append(out, StreamInfo{
			Name: s.Name, CreatedAt: s.CreatedAt, LastUsed: s.LastUsed, Revoked: s.Revoked,
			Private: s.Private, Live: a.cfg.IsLive != nil && !s.Revoked && a.cfg.IsLive(s.Name),
		})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"streams": out})
}

func (a *adminAPI) revoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, err := a.cfg.Store.Revoke(name)
	if errors.Is(err, store.ErrNotFound) {
		httpx.Error(w, http.StatusNotFound, "no stream "+name)
		return
	}
	if err != nil {
		a.internal(w, "revoke stream", err)
		return
	}
	a.cfg.Logger.Info("stream key revoked", "stream", name)
	a.record(r, "revoke", name, "")
	if a.cfg.OnRevoke != nil {
		a.cfg.OnRevoke(name)
	}
	httpx.WriteJSON(w, http.StatusOK, StreamInfo{Name: st.Name, CreatedAt: st.CreatedAt, LastUsed: st.LastUsed, Revoked: true, Private: st.Private})
}

func (a *adminAPI) rotate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	st, key, err := a.cfg.Store.RotateKey(name)
	if errors.Is(err, store.ErrNotFound) {
		httpx.Error(w, http.StatusNotFound, "no active stream "+name)
		return
	}
	if err != nil {
		a.internal(w, "rotate key", err)
		return
	}
	a.cfg.Logger.Info("stream key rotated", "stream", name)
	a.record(r, "rotate", name, "")
	if a.cfg.OnRevoke != nil {
		a.cfg.OnRevoke(name)
	}
	httpx.WriteJSON(w, http.StatusOK, CreatedStream{Name: st.Name, Key: key})
}

func (a *adminAPI) internal(w http.ResponseWriter, what string, err error) {
	a.cfg.Logger.Error("admin api: "+what, "err", err)
	httpx.Error(w, http.StatusInternalServerError, what+" failed")
}
