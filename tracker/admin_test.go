package tracker

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/banyan-live/banyan/store"
)

// adminStore opens a store in a temporary dir, closed with the test, and
// makes its admin token.
func adminStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tok, _, err := st.EnsureAdminToken()
	if err != nil {
		t.Fatal(err)
	}
	return st, tok
}

func newAdmin(t *testing.T) (*httptest.Server, string, *[]string) {
	t.Helper()
	st, tok := adminStore(t)
	var revoked []string
	srv := httptest.NewServer(NewAdminAPI(AdminConfig{Store: st, OnRevoke: func(s string) { revoked = append(revoked, s) }}))
	t.Cleanup(srv.Close)
	return srv, tok, &revoked
}

func do(t *testing.T, srv *httptest.Server, method, path, token, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestAdminAPI(t *testing.T) {
	srv, tok, revoked := newAdmin(t)
	big := `{"name":"` + strings.Repeat("a", 5000) + `"}`
	cases := []struct {
		name, method, path, token, body string
		hdr                             []string
		want                            int
	}{
		{"no token", "GET", "/api/streams", "", "", nil, 401},
		{"wrong token", "GET", "/api/streams", "nope", "", nil, 401},
		{"cross-site", "GET", "/api/streams", tok, "", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"foreign origin", "POST", "/api/streams", tok, `{"name":"x"}`, []string{"Origin", "http://evil.example"}, 403},
		{"create", "POST", "/api/streams", tok, `{"name":"demo"}`, nil, 201},
		{"duplicate", "POST", "/api/streams", tok, `{"name":"demo"}`, nil, 409},
		{"bad name", "POST", "/api/streams", tok, `{"name":"Bad Name"}`, nil, 400},
		{"empty name", "POST", "/api/streams", tok, `{"name":""}`, nil, 400},
		{"not json", "POST", "/api/streams", tok, `name=demo`, nil, 400},
		{"unknown field", "POST", "/api/streams", tok, `{"name":"a","x":1}`, nil, 400},
		{"trailing", "POST", "/api/streams", tok, `{"name":"a"}{}`, nil, 400},
		{"huge body", "POST", "/api/streams", tok, big, nil, 413},
		{"list", "GET", "/api/streams", tok, "", nil, 200},
		{"revoke unknown", "DELETE", "/api/streams/nope", tok, "", nil, 404},
		{"revoke", "DELETE", "/api/streams/demo", tok, "", nil, 200},
		{"revoke no token", "DELETE", "/api/streams/demo", "", "", nil, 401},
		{"rotate revoked", "POST", "/api/streams/demo/key", tok, "", nil, 404},
		{"recreate revoked", "POST", "/api/streams", tok, `{"name":"demo"}`, nil, 201},
		{"rotate", "POST", "/api/streams/demo/key", tok, "", nil, 200},
	}
	for _, c := range cases {
		got, body := do(t, srv, c.method, c.path, c.token, c.body, c.hdr...)
		if got != c.want {
			t.Errorf("%s: status %d, want %d (%v)", c.name, got, c.want, body)
		}
		if got >= 400 && body["error"] == nil {
			t.Errorf("%s: error reply without an error message: %v", c.name, body)
		}
		if c.name == "create" && (body["name"] != "demo" || len(body["key"].(string)) != 43) {
			t.Errorf("create reply %v", body)
		}
	}
	if len(*revoked) != 2 || (*revoked)[0] != "demo" {
		t.Errorf("OnRevoke calls %v, want revoke and rotate of demo", *revoked)
	}
	_, body := do(t, srv, "GET", "/api/streams", tok, "")
	list := body["streams"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "demo" {
		t.Fatalf("list %v", body)
	}
	if _, hasKey := list[0].(map[string]any)["key"]; hasKey {
		t.Fatal("list leaks a key")
	}
}
