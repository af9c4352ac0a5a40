package tracker

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/store"
)

// rotateFirst is the real store with an admin-token rotation landing
// between a login's token check and its session's creation, the window a
// concurrent `banyan admin rotate-token` can hit.
type rotateFirst struct {
	store.Backend
	session string // the session created, if any
}

func (r *rotateFirst) CreateAdminSession(ttl time.Duration) (string, time.Time, error) {
	if _, err := r.Backend.RotateAdminToken(); err != nil {
		return "", time.Time{}, err
	}
	tok, exp, err := r.Backend.CreateAdminSession(ttl)
	r.session = tok
	return tok, exp, err
}

// TestLoginRacesRotation (second reading of issue 18, the class of #1): a
// dashboard login checked with the old admin token must not yield a
// session that outlives the rotation. Rotation deletes every session in
// its transaction; a session created just after it, for a login whose
// token was checked just before it, survived: before the fix this login
// got a working cookie for the rotated-out token.
func TestLoginRacesRotation(t *testing.T) {
	tr := newSimTracker(t, 2)
	s, tok := adminStore(t)
	race := &rotateFirst{Backend: s}
	mux := http.NewServeMux()
	tr.MountDashboard(mux, DashboardConfig{Store: race, StreamLifetime: time.Second,
		Page: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := noRedirect(srv.Client()).PostForm(srv.URL+"/dashboard/login", url.Values{"token": {tok}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if race.session == "" {
		t.Fatal("the login never reached session creation: the test proves nothing")
	}
	if s.CheckAdminSession(race.session) {
		t.Error("a session started with the rotated-out token is alive")
	}
	if resp.StatusCode == http.StatusSeeOther || strings.Contains(resp.Header.Get("Set-Cookie"), race.session) {
		t.Errorf("login with the rotated-out token: %d, cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
}
