package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/store"
)

// pprofHandler serves net/http/pprof under /debug/pprof/ (`up --pprof`).
// Profiles show memory contents and stacks, so it takes the admin token
// like the admin API and refuses cross-site browser requests.
func pprofHandler(st *store.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpx.CrossSite(r) {
			httpx.Error(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		tok, ok := httpx.BearerToken(r)
		if !ok || len(tok) > 256 || !st.CheckAdminToken(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="banyan"`)
			httpx.Error(w, http.StatusUnauthorized, "admin token required (Authorization: Bearer <token>)")
			return
		}
		mux.ServeHTTP(w, r)
	})
}
