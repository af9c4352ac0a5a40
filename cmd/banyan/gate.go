package main

import (
	"crypto/subtle"
	"net/http"

	"github.com/banyan-live/banyan/internal/httpx"
)

// maxBearer bounds a bearer token before it is hashed or compared.
const maxBearer = 256

// tokenGate serves next only to requests whose bearer token passes ok,
// and refuses cross-site browser requests, so another page cannot ride an
// operator's browser. /debug/pprof and /metrics on the public port use it.
func tokenGate(ok func(token string) bool, what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpx.CrossSite(r) {
			httpx.Error(w, http.StatusForbidden, "cross-site request refused")
			return
		}
		tok, found := httpx.BearerToken(r)
		if !found || len(tok) > maxBearer || !ok(tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="banyan"`)
			httpx.Error(w, http.StatusUnauthorized, what+" required (Authorization: Bearer <token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// metricsTokenOK accepts the admin token, or the metrics token when one is
// set: a Prometheus scraper then holds a credential that opens nothing
// else.
func metricsTokenOK(admin func(string) bool, metricsToken string) func(string) bool {
	return func(tok string) bool {
		if metricsToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(metricsToken)) == 1 {
			return true
		}
		return admin(tok)
	}
}
