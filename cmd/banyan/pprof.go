package main

import (
	"net/http"
	"net/http/pprof"

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
	return tokenGate(st.CheckAdminToken, "admin token", mux)
}
