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
	"strconv"
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

// FetchRange implements peer.RangeOrigin: bytes [off, end) of the sealed
// chunk (end -1: to its end), with an HTTP Range request. A server that
// ignores the range answers the whole chunk, which is cut here.
func (o *Origin) FetchRange(ctx context.Context, epoch uint32, seq uint64, off, end int64) ([]byte, error) {
	rng := fmt.Sprintf("bytes=%d-", off)
	if end >= 0 {
		rng += strconv.FormatInt(end-1, 10)
	}
	path := fmt.Sprintf("/chunks/%s/%d/%d", o.stream, epoch, seq)
	b, status, err := o.do(ctx, path, rng, chunk.Overhead+chunk.MaxPayload)
	if err == nil && status == http.StatusOK {
		b, err = chunk.SliceRange(b, off, end)
	}
	if err == nil && end >= 0 && int64(len(b)) != end-off {
		err = fmt.Errorf("answer of %d bytes for a %d-byte range", len(b), end-off)
	}
	if err != nil {
		return nil, fmt.Errorf("origin: chunk %d/%d range %s: %w", epoch, seq, rng, err)
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
	b, _, err := o.do(ctx, path, "", limit)
	return b, err
}

// do GETs path (with a Range header unless rng is empty) and returns a 200
// or 206 answer's body and status.
func (o *Origin) do(ctx context.Context, path, rng string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", o.base+path, nil)
	if err != nil {
		return nil, 0, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && (rng == "" || resp.StatusCode != http.StatusPartialContent) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, resp.StatusCode, fmt.Errorf("%s", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if int64(len(b)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("answer over %d bytes", limit)
	}
	return b, resp.StatusCode, nil
}

var _ peer.RangeOrigin = (*Origin)(nil)
