package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/internal/e2e"
	"github.com/banyan-live/banyan/protocol"
)

// joinWith joins stream with a viewer token and returns the first answer
// that is a welcome or an error.
func joinWith(t *testing.T, base, stream, token string) protocol.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	b, _ := protocol.Encode(protocol.Join{Stream: stream, Kind: protocol.KindNative, Token: token})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("join %s: no welcome or error: %v", stream, err)
		}
		m, err := protocol.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		switch m.(type) {
		case protocol.Welcome, protocol.Error:
			return m
		}
	}
}

// TestPrivateStreamCLI (issue 18 #9, #11): `banyan stream private NAME on`
// on a live stream stops clear LL-HLS at the next request (not at the
// next publish) and refuses viewers without a token; `banyan token mint`
// gives one the tracker admits; off serves HLS again. `banyan admin
// rotate-token` retires the old admin token, and `banyan admin audit`
// lists each action. Before the fix none of these commands existed.
func TestPrivateStreamCLI(t *testing.T) {
	ffmpeg := e2e.Require(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data := t.TempDir()
	up := startUp(t, data)
	admin := up.adminToken(t)
	key := createStream(t, up.base, admin, "priv")
	url, _ := up.rtmpURL(t)
	startPublish(t, ctx, ffmpeg, url+"/"+key, 90)
	liveOf(t, up.base, "priv", 0)
	playlist := up.base + "/hls/priv/index.m3u8"
	waitFor(t, 20*time.Second, "a public playlist", func() bool { code, _ := httpGet(t, playlist); return code == 200 })

	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(t, append(args, "--server", up.base, "--data", data)...)
		if code != 0 {
			t.Fatalf("banyan %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	run("stream", "private", "priv", "on")
	if code, _ := httpGet(t, playlist); code != 403 {
		t.Fatalf("playlist right after private on: %d, want 403", code)
	}
	if m, ok := joinWith(t, up.base, "priv", "").(protocol.Error); !ok {
		t.Fatalf("join without a token: %#v", m)
	}
	var mt struct{ Token string }
	if err := json.Unmarshal([]byte(run("token", "mint", "priv", "--ttl", "2m", "--json")), &mt); err != nil || mt.Token == "" {
		t.Fatalf("mint: %v", err)
	}
	if m, ok := joinWith(t, up.base, "priv", mt.Token).(protocol.Welcome); !ok {
		t.Fatalf("join with the minted token: %#v", m)
	}
	if m, ok := joinWith(t, up.base, "priv", mt.Token+"x").(protocol.Error); !ok {
		t.Fatalf("join with a broken token: %#v", m)
	}
	run("stream", "private", "priv", "off")
	if code, _ := httpGet(t, playlist); code != 200 {
		t.Fatalf("playlist after private off: %d", code)
	}
	if out, _, code := cli(t, "stream", "private", "priv", "maybe", "--server", up.base, "--data", data); code != 2 {
		t.Fatalf("bad argument: exit %d %s", code, out)
	}

	var rot struct{ Token string }
	if err := json.Unmarshal([]byte(run("admin", "rotate-token", "--json")), &rot); err != nil || rot.Token == "" || rot.Token == admin {
		t.Fatalf("rotate-token: %v %q", err, rot.Token)
	}
	if code, _ := adminDo(t, "GET", up.base+"/api/streams", admin, ""); code != 401 {
		t.Fatalf("old admin token after rotation: %d", code)
	}
	var audit struct {
		Entries []struct{ Action, Stream, Via string }
	}
	if err := json.Unmarshal([]byte(run("admin", "audit", "--json")), &audit); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range audit.Entries {
		got = append(got, e.Action+":"+e.Stream+":"+e.Via)
	}
	want := "rotate_admin_token::api private_off:priv:api token_mint:priv:api private_on:priv:api create:priv:api"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit log:\n got %v\nwant %s", got, want)
	}
	up.stop(t, syscall.SIGTERM)
}
