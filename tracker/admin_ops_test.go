package tracker

import (
	"encoding/base64"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/viewertoken"
)

// TestAdminPrivateAndTokens (issue 18 #9): the admin API sets a stream
// private (telling the origin at once through OnPrivate), mints viewer
// tokens the tracker's access check accepts, hands out the secret for an
// operator's own minting, and writes every action to the audit log.
// Before the fix none of these routes existed (404).
func TestAdminPrivateAndTokens(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tok, _, _ := st.EnsureAdminToken()
	now := time.Unix(1_800_000_000, 0)
	type flag struct {
		name    string
		private bool
	}
	var flags []flag
	srv := httptest.NewServer(NewAdminAPI(AdminConfig{Store: st, Now: func() time.Time { return now },
		OnPrivate: func(n string, p bool) { flags = append(flags, flag{n, p}) }}))
	t.Cleanup(srv.Close)
	if code, _ := do(t, srv, "POST", "/api/streams", tok, `{"name":"show"}`); code != 201 {
		t.Fatalf("create: %d", code)
	}
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"private on", "PUT", "/api/streams/show/private", `{"private":true}`, 200},
		{"private without a value", "PUT", "/api/streams/show/private", `{}`, 400},
		{"private, bad JSON", "PUT", "/api/streams/show/private", `{"private":`, 400},
		{"private, unknown stream", "PUT", "/api/streams/nope/private", `{"private":true}`, 404},
		{"mint, default ttl", "POST", "/api/streams/show/tokens", ``, 200},
		{"mint, ttl", "POST", "/api/streams/show/tokens", `{"ttl_seconds":60}`, 200},
		{"mint, ttl too long", "POST", "/api/streams/show/tokens", `{"ttl_seconds":99999999}`, 400},
		{"mint, negative ttl", "POST", "/api/streams/show/tokens", `{"ttl_seconds":-1}`, 400},
		{"mint, unknown stream", "POST", "/api/streams/nope/tokens", ``, 404},
		{"audit, bad limit", "GET", "/api/audit?limit=0", ``, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, m := do(t, srv, tc.method, tc.path, tok, tc.body); code != tc.want {
				t.Fatalf("%s %s: %d %v, want %d", tc.method, tc.path, code, m, tc.want)
			}
		})
	}
	if s, _ := st.Stream("show"); !s.Private || len(flags) != 1 || flags[0] != (flag{"show", true}) {
		t.Fatalf("private flag: store %v, OnPrivate %v", s.Private, flags)
	}

	// A minted token admits a viewer to the private stream until it expires.
	code, m := do(t, srv, "POST", "/api/streams/show/tokens", tok, `{"ttl_seconds":60}`)
	vt, _ := m["token"].(string)
	if code != 200 || vt == "" || m["expires_at"] != now.Add(time.Minute).UTC().Format(time.RFC3339) {
		t.Fatalf("mint: %d %v", code, m)
	}
	secret, _ := st.ViewerTokenSecret()
	acc := StoreAccess{Store: st, TokenSecret: secret, Now: func() time.Time { return now }}
	if err := acc.Admit("show", vt); err != nil {
		t.Fatalf("minted token refused: %v", err)
	}
	if err := acc.Admit("show", ""); err == nil {
		t.Fatal("private stream admitted without a token")
	}
	acc.Now = func() time.Time { return now.Add(time.Minute) }
	if err := acc.Admit("show", vt); err == nil {
		t.Fatal("expired token admitted")
	}

	// The secret mints what the tracker accepts (an operator's own site).
	code, m = do(t, srv, "GET", "/api/viewer-token-secret", tok, "")
	raw, err := base64.RawURLEncoding.DecodeString(m["secret_base64url"].(string))
	if code != 200 || err != nil {
		t.Fatalf("secret: %d %v %v", code, m, err)
	}
	if _, err := viewertoken.Check(secret, "show", viewertoken.Mint(raw, "show", now.Add(time.Hour)), now); err != nil {
		t.Fatalf("token from the handed-out secret: %v", err)
	}

	if code, _ := do(t, srv, "PUT", "/api/streams/show/private", tok, `{"private":false}`); code != 200 {
		t.Fatalf("private off: %d", code)
	}
	if s, _ := st.Stream("show"); s.Private || len(flags) != 2 || flags[1] != (flag{"show", false}) {
		t.Fatalf("private off: store %v, OnPrivate %v", s.Private, flags)
	}

	// Rotating the admin token: the answer works, the old token does not.
	code, m = do(t, srv, "POST", "/api/admin/token", tok, "")
	nt, _ := m["token"].(string)
	if code != 200 || nt == "" || nt == tok {
		t.Fatalf("rotate admin token: %d %v", code, m)
	}
	if code, _ := do(t, srv, "GET", "/api/streams", tok, ""); code != 401 {
		t.Fatalf("old admin token after rotation: %d", code)
	}

	// The audit log, newest first, names every change and where it came from.
	code, m = do(t, srv, "GET", "/api/audit", nt, "")
	entries, _ := m["entries"].([]any)
	var actions []string
	for _, e := range entries {
		em := e.(map[string]any)
		if em["via"] != "api" || em["remote"] != "127.0.0.1" {
			t.Errorf("entry %v: via/remote", em)
		}
		actions = append(actions, em["action"].(string))
	}
	want := []string{"rotate_admin_token", "private_off", "token_secret_read", "token_mint", "token_mint", "token_mint", "private_on", "create"}
	if code != 200 || len(actions) != len(want) {
		t.Fatalf("audit: %d %v, want %v", code, actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("audit: %v, want %v", actions, want)
		}
	}
}
