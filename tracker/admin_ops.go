package tracker

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/viewertoken"
)

// Admin API beyond stream keys: private streams, viewer tokens, the
// admin token's rotation and the audit log. Every change is written to
// the store's audit log with where it came from.

// DefaultTokenTTL and MaxTokenTTL bound viewer tokens the API mints. A
// viewer token cannot be revoked one by one (it is a signature, checked
// without a lookup), so the API keeps them short; an operator's own site
// mints its own with the secret.
const (
	DefaultTokenTTL = time.Hour
	MaxTokenTTL     = 30 * 24 * time.Hour
)

type viaKey struct{}

func withVia(ctx context.Context, via string) context.Context {
	return context.WithValue(ctx, viaKey{}, via)
}

func viaOf(r *http.Request) string {
	v, _ := r.Context().Value(viaKey{}).(string)
	return v
}

// adminVia authenticates r: "api" for a Bearer admin token, "dashboard"
// for a live session cookie, "" for neither.
func adminVia(st store.Backend, r *http.Request) string {
	if tok, ok := httpx.BearerToken(r); ok {
		if tok != "" && len(tok) <= 256 && st.CheckAdminToken(tok) {
			return "api"
		}
		return ""
	}
	if st.CheckAdminSession(sessionToken(r)) {
		return "dashboard"
	}
	return ""
}

// auditAction writes one admin action to the audit log; a failure to
// write it is logged, not returned (the action has happened).
func auditAction(st store.Backend, log interface {
	Error(string, ...any)
}, r *http.Request, via, action, stream, detail string) {
	if _, err := st.AppendAudit(store.AuditEntry{Action: action, Stream: stream, Via: via, Remote: remoteIP(r), Detail: detail}); err != nil {
		log.Error("audit log", "action", action, "stream", stream, "err", err)
	}
}

func (a *adminAPI) record(r *http.Request, action, stream, detail string) {
	auditAction(a.cfg.Store, a.cfg.Logger, r, viaOf(r), action, stream, detail)
}

func (a *adminAPI) readBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	if err := httpx.ReadJSON(w, r, maxAdminBody, v); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, httpx.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		httpx.Error(w, status, err.Error())
		return false
	}
	return true
}

// setPrivate: PUT /api/streams/{name}/private {"private": true|false}.
func (a *adminAPI) setPrivate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Private *bool `json:"private"`
	}
	if !a.readBody(w, r, &req) {
		return
	}
	if req.Private == nil {
		httpx.Error(w, http.StatusBadRequest, `body must be {"private": true} or {"private": false}`)
		return
	}
	st, err := a.cfg.Store.Stream(name)
	if errors.Is(err, store.ErrNotFound) || err == nil && st.Revoked {
		httpx.Error(w, http.StatusNotFound, "no active stream "+name)
		return
	}
	if err == nil {
		err = a.cfg.Store.SetPrivate(name, *req.Private)
	}
	if err != nil {
		a.internal(w, "set private", err)
		return
	}
	if a.cfg.OnPrivate != nil {
		a.cfg.OnPrivate(name, *req.Private)
	}
	action := "private_off"
	if *req.Private {
		action = "private_on"
	}
	a.cfg.Logger.Info("stream private flag set", "stream", name, "private", *req.Private)
	a.record(r, action, name, "")
	st.Private = *req.Private
	httpx.WriteJSON(w, http.StatusOK, StreamInfo{Name: st.Name, CreatedAt: st.CreatedAt, LastUsed: st.LastUsed, Private: st.Private,
		Live: a.cfg.IsLive != nil && a.cfg.IsLive(name)})
}

// MintedToken is the answer to a viewer-token mint.
type MintedToken struct {
	Stream    string    `json:"stream"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// mintToken: POST /api/streams/{name}/tokens {"ttl_seconds": N}.
func (a *adminAPI) mintToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		TTLSeconds int64 `json:"ttl_seconds"`
	}
	if !a.readBody(w, r, &req) {
		return
	}
	ttl := DefaultTokenTTL
	if req.TTLSeconds != 0 {
		if req.TTLSeconds < 1 || req.TTLSeconds > int64(MaxTokenTTL/time.Second) {
			httpx.Error(w, http.StatusBadRequest, "ttl_seconds must be 1 to "+strconv.FormatInt(int64(MaxTokenTTL/time.Second), 10))
			return
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	st, err := a.cfg.Store.Stream(name)
	if errors.Is(err, store.ErrNotFound) || err == nil && st.Revoked {
		httpx.Error(w, http.StatusNotFound, "no active stream "+name)
		return
	}
	if err != nil {
		a.internal(w, "mint token", err)
		return
	}
	secret, err := a.cfg.Store.ViewerTokenSecret()
	if err != nil {
		a.internal(w, "mint token", err)
		return
	}
	now := time.Now
	if a.cfg.Now != nil {
		now = a.cfg.Now
	}
	exp := now().Add(ttl).Truncate(time.Second)
	a.record(r, "token_mint", name, "ttl "+ttl.String())
	httpx.WriteJSON(w, http.StatusOK, MintedToken{Stream: name, Token: viewertoken.Mint(secret, name, exp), ExpiresAt: exp.UTC()})
}

// tokenSecret: GET /api/viewer-token-secret, for an operator's site that
// mints its own viewer tokens (docs/viewer-tokens.md).
func (a *adminAPI) tokenSecret(w http.ResponseWriter, r *http.Request) {
	secret, err := a.cfg.Store.ViewerTokenSecret()
	if err != nil {
		a.internal(w, "read viewer-token secret", err)
		return
	}
	a.record(r, "token_secret_read", "", "")
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"secret_base64url": base64.RawURLEncoding.EncodeToString(secret)})
}

// rotateAdminToken: POST /api/admin/token. The old token and every
// dashboard session stop working at once; the new token is answered
// once and written to the data dir's admin.token.
func (a *adminAPI) rotateAdminToken(w http.ResponseWriter, r *http.Request) {
	tok, err := a.cfg.Store.RotateAdminToken()
	if err != nil {
		a.internal(w, "rotate admin token", err)
		return
	}
	a.cfg.Logger.Warn("admin token rotated: the old token and every dashboard session no longer work", "remote", remoteIP(r))
	a.record(r, "rotate_admin_token", "", "")
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// audit: GET /api/audit?limit=N (newest first, 100 by default).
func (a *adminAPI) audit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxAuditEntries {
			httpx.Error(w, http.StatusBadRequest, "limit must be 1 to "+strconv.Itoa(store.MaxAuditEntries))
			return
		}
		limit = n
	}
	entries, err := a.cfg.Store.Audit(limit)
	if err != nil {
		a.internal(w, "read audit log", err)
		return
	}
	if entries == nil {
		entries = []store.AuditEntry{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"entries": entries})
}
