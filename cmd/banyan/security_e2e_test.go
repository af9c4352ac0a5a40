package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/store"
)

// h264Offer is a real WHIP offer (pion, one send-only H.264 video
// section, no candidates: the server accepts trickle).
func h264Offer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// createStream makes a stream through the admin API and returns its key.
func createStream(t *testing.T, base, token, name string) string {
	t.Helper()
	code, b := adminDo(t, "POST", base+"/api/streams", token, fmt.Sprintf(`{"name":%q}`, name))
	var cs struct{ Key string }
	if code != 201 || json.Unmarshal(b, &cs) != nil || cs.Key == "" {
		t.Fatalf("create %s: %d %s", name, code, b)
	}
	return cs.Key
}

// TestRevokedKeyCannotStartWHIP (issue 18 #1): a WHIP POST is authorized
// on its headers, then its body may take up to the HTTP read timeout. A
// key revoked (or rotated) while the offer is still arriving must not
// start a publish when the offer is complete: the seeder re-checks the
// key generation as the publish starts. Before the fix the POST got 201
// and the stream went live on a revoked key, with nothing left to kick it.
func TestRevokedKeyCannotStartWHIP(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	up := startUp(t, data, "--ice-loopback")
	token, err := store.ReadAdminTokenFile(data)
	if err != nil {
		t.Fatal(err)
	}
	offer := h264Offer(t)
	for _, tc := range []struct {
		name   string
		change func(stream string) // while the offer trickles in
	}{
		{"control", func(string) {}},
		{"revoke", func(s string) {
			if code, b := adminDo(t, "DELETE", up.base+"/api/streams/"+s, token, ""); code != 200 {
				t.Fatalf("revoke: %d %s", code, b)
			}
		}},
		{"rotate", func(s string) {
			if code, b := adminDo(t, "POST", up.base+"/api/streams/"+s+"/key", token, ""); code != 200 {
				t.Fatalf("rotate: %d %s", code, b)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := "whip-" + tc.name
			key := createStream(t, up.base, token, stream)
			pr, pw := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, "POST", up.base+"/whip/"+stream, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/sdp")
			type result struct {
				code int
				body string
				err  error
			}
			res := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					res <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				res <- result{code: resp.StatusCode, body: string(b)}
			}()
			half := len(offer) / 2
			if _, err := io.WriteString(pw, offer[:half]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the key check is done: the server is reading the body
			tc.change(stream)
			if _, err := io.WriteString(pw, offer[half:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if tc.name == "control" {
				if r.code != http.StatusCreated {
					t.Fatalf("control publish: %d %s", r.code, r.body)
				}
				return
			}
			if r.code == http.StatusCreated {
				t.Fatalf("%s during the offer: the publish started anyway (201)", tc.name)
			}
			if !strings.Contains(r.body, "revoked") {
				t.Errorf("%s: answer %d %q does not say why", tc.name, r.code, strings.TrimSpace(r.body))
			}
			t.Logf("figures: key %s while the offer arrived: %d %s", tc.name, r.code, strings.TrimSpace(r.body))
		})
	}
	up.stop(t, syscall.SIGTERM)
}
