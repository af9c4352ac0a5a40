//go:build !js

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

// TestUploadCeiling: a node run with MaxUploadKbps declares at join the
// smaller of its declared capacity and the ceiling (the ceiling when it
// declares none), and hands the ceiling to its engine, which caps the
// uplink it reports (peer TestUplinkCeiling). Before, the join declared
// --capacity-mbps whatever the ceiling, and the tracker sized a relay's
// slots from it and from its loopback uplink (13–14 slots at 20 Mbit/s,
// cmd/banyan's glass-to-glass measurement at depth 3+).
func TestUploadCeiling(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := protocol.Keys{PublicKey: base64.StdEncoding.EncodeToString(pub), Epoch: 1, Live: true}
	for _, tc := range []struct {
		declared, ceiling, want int
	}{
		{20_000, 12_000, 12_000},
		{0, 12_000, 12_000},
		{8_000, 12_000, 8_000},
		{20_000, 0, 20_000},
		{0, 0, 0},
	} {
		joins := make(chan protocol.Join, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			m, err := protocol.Decode(b)
			if j, ok := m.(protocol.Join); err == nil && ok {
				joins <- j
			}
			for _, m := range []protocol.Message{protocol.Welcome{Peer: 7, Stripes: 1, Epoch: 1}, keys} {
				b, _ := protocol.Encode(m)
				if c.Write(r.Context(), websocket.MessageText, b) != nil {
					return
				}
			}
			for {
				if _, _, err := c.Read(r.Context()); err != nil {
					return
				}
			}
		}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		engine := make(chan int, 1)
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, ClientConfig{
				TrackerURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws",
				Join:       protocol.Join{Stream: "ceil", Kind: protocol.KindNative, UploadKbps: tc.declared},
				Node: Config{API: rtc.LoopbackAPI(), MaxUploadKbps: tc.ceiling,
					Engine: func(c *peer.Config) {
						select {
						case engine <- c.MaxUplinkKbps:
						default:
						}
					}},
			})
		}()
		select {
		case j := <-joins:
			if j.UploadKbps != tc.want {
				t.Errorf("declared %d, ceiling %d: the join declares %d kbit/s, want %d", tc.declared, tc.ceiling, j.UploadKbps, tc.want)
			}
		case <-ctx.Done():
			t.Fatal("no join")
		}
		select {
		case got := <-engine:
			if got != tc.ceiling {
				t.Errorf("ceiling %d: the engine's MaxUplinkKbps is %d", tc.ceiling, got)
			}
		case <-ctx.Done():
			t.Fatal("no engine")
		}
		cancel()
		<-done
		srv.Close()
	}
}
