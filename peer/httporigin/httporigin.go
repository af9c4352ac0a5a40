//go:build !js

// Package httporigin is the native peer's origin fallback: the seeder's
// chunk HTTP API (GET /chunks/<stream>/live and /chunks/<stream>/<epoch>/<seq>)
// behind peer.Origin. The browser peer has its own, on fetch.
package httporigin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
)

// Origin fetches sealed chunks of one stream from a seeder.
type Origin struct {
	base   string
	stream string
	client *http.Client
}

// New returns an Origin for stream at base (http://host:port).
func New(base, stream string) *Origin {
	return NewWithTransport(base, stream, nil)
}

// NewWithTransport is New with the client's transport (nil: the default),
// e.g. one trusting a private CA for https://.
func NewWithTransport(base, stream string, tr http.RoundTripper) *Origin {
	return &Origin{
		base: strings.TrimRight(base, "/"), stream: stream,
		// The origin long-polls for up to 3 s; allow for it.
		client: &http.Client{Timeout: 10 * time.Second, Transport: tr},
	}
}

// Fetch implements peer.Origin.
func (o *Origin) Fetch(ctx context.Context, epoch uint32, seq uint64) ([]byte, error) {
	b, err := o.get(ctx, fmt.Sprintf("/chunks/%s/%d/%d", o.stream, epoch, seq), chunk.Overhead+chunk.MaxPayload)
	if err != nil {
		return nil, fmt.Errorf("origin: chunk %d/%d: %w", epoch, seq, err)
	}
	return b, nil
}

// Live implements peer.Origin.
func (o *Origin) Live(ctx context.Context) (peer.LiveEdge, error) {
	b, err := o.get(ctx, "/chunks/"+o.stream+"/live", 4096)
	if err != nil {
		return peer.LiveEdge{}, fmt.Errorf("origin: live: %w", err)
	}
	var l struct {
		Epoch       uint32 `json:"epoch"`
		Seq         uint64 `json:"seq"`
		KeyframeSeq uint64 `json:"keyframe_seq"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return peer.LiveEdge{}, fmt.Errorf("origin: live: %w", err)
	}
	return peer.LiveEdge{Epoch: l.Epoch, Seq: l.Seq, Keyframe: l.KeyframeSeq}, nil
}

func (o *Origin) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", o.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer over %d bytes", limit)
	}
	return b, nil
}
