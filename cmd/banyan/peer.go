package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/peer/httporigin"
	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/peer/rtc"
	"github.com/banyan-live/banyan/protocol"
)

type peerOptions struct {
	Tracker  string
	Stream   string
	Token    string
	Record   string
	Duration time.Duration
	Relay    bool
	CapMbps  float64
	MaxMbps  float64
	NoUpload bool
	Region   string
	Origin   string
	ICELoop  bool
	TURNOnly bool
	JSON     bool
	LogLevel string
	CAFile   string
}

func runPeer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o peerOptions
	c := newCommand("peer", "", "Runs a native peer: a headless viewer that relays to others (optionally recording what it\n"+
		"plays), or with --relay a high-capacity edge an operator runs on a server with a big uplink.\n"+
		"The recording is the verified, decrypted CMAF: init, then fragments as they arrive, so it\n"+
		"stays a playable fragmented MP4 when the peer is stopped with SIGINT/SIGTERM.")
	c.String(&o.Tracker, "tracker", "ws://127.0.0.1:8080/ws", "tracker signaling URL")
	c.String(&o.Stream, "stream", "", "stream name to join (required)")
	c.String(&o.Token, "token", "", "viewer token, for a private stream")
	c.String(&o.Record, "record", "", "write what is played to this .mp4 file (a new epoch goes to FILE-<epoch>.mp4)")
	c.Duration(&o.Duration, "duration", 0, "leave after this long (0: until SIGINT/SIGTERM)")
	c.Bool(&o.Relay, "relay", false, "run as a relay edge: high capacity, placed high in the trees")
	c.Float(&o.CapMbps, "capacity-mbps", 0, "upload capacity to offer, in Mbit/s (0: the tracker's default)")
	c.Float(&o.MaxMbps, "max-upload-mbps", 0, "upload ceiling in Mbit/s (0: none): caps the capacity declared and the uplink measured that the tracker is told, so it assigns fewer children (sending is not paced)")
	c.Bool(&o.NoUpload, "no-upload", false, "do not relay to other viewers (a leaf everywhere)")
	c.String(&o.Region, "region", "", "locality hint for parent choice")
	c.String(&o.Origin, "origin", "", "origin base URL (default: the tracker's, or the tracker host)")
	c.Bool(&o.ICELoop, "ice-loopback", false, "WebRTC over loopback only (tests and single-machine demos)")
	c.Bool(&o.TURNOnly, "relay-only", false, "connect to other peers only through TURN (hides this host's addresses)")
	c.Bool(&o.JSON, "json", false, "print a summary as one JSON object on stdout when leaving")
	c.String(&o.LogLevel, "log-level", "info", "log level")
	c.String(&o.CAFile, "ca", "", "PEM file of extra CA certificates trusted for wss:// and https:// (besides the system roots and SSL_CERT_FILE)")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if o.MaxMbps < 0 || o.MaxMbps > 10_000 || o.CapMbps < 0 || o.CapMbps > 10_000 {
		return usageError{"banyan peer: --capacity-mbps and --max-upload-mbps must be within 0–10000"}
	}
	rt, err := caTransport(o.CAFile)
	if err != nil {
		return err
	}
	if !protocol.ValidStream(o.Stream) {
		return usageError{"banyan peer: --stream NAME is required (a valid stream name)"}
	}
	tu, err := url.Parse(o.Tracker)
	if err != nil || (tu.Scheme != "ws" && tu.Scheme != "wss") {
		return usageError{fmt.Sprintf("banyan peer: --tracker must be a ws:// or wss:// URL, not %q", o.Tracker)}
	}
	log, err := newLogger(stderr, o.LogLevel)
	if err != nil {
		return err
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var rec *recorder
	if o.Record != "" {
		rec = &recorder{path: o.Record}
		defer rec.Close()
	}
	kind := protocol.KindNative
	if o.Relay {
		kind = protocol.KindRelay
	}
	join := protocol.Join{Stream: o.Stream, Token: o.Token, Kind: kind, NoUpload: o.NoUpload,
		UploadKbps: int(o.CapMbps * 1000), Region: o.Region, Client: "banyan-peer"}
	var api *webrtc.API
	if o.ICELoop {
		api = rtc.LoopbackAPI()
	}
	sum := &peerSummary{Stream: o.Stream}
	start := time.Now()
	var cur *node.Node
	var mu sync.Mutex
	cfg := node.ClientConfig{
		TrackerURL: o.Tracker, Join: join, Reconnect: true, Logger: log, HTTPClient: &http.Client{Transport: rt},
		OnNode: func(n *node.Node) { mu.Lock(); cur = n; mu.Unlock() },
		Node: node.Config{
			API:           api,
			RelayOnly:     o.TURNOnly,
			MaxUploadKbps: int(o.MaxMbps * 1000),
			OriginFor: func(originURL string) peer.Origin {
				base := o.Origin
				if base == "" {
					base = originURL
				}
				if base == "" {
					scheme := "http"
					if tu.Scheme == "wss" {
						scheme = "https"
					}
					base = scheme + "://" + tu.Host
				}
				return httporigin.NewWithTransport(base, o.Stream, rt)
			},
			Player: playerFunc{
				init: func(epoch uint32, data []byte) {
					if rec != nil {
						rec.Init(epoch, data)
					}
				},
				chunk: func(h chunk.Header, payload []byte) {
					mu.Lock()
					if sum.ChunksPlayed == 0 {
						sum.FirstChunkMS = time.Since(start).Milliseconds()
					}
					sum.ChunksPlayed++
					mu.Unlock()
					if rec != nil {
						rec.Chunk(h, payload)
					}
				},
			},
			OnState: func(s string) { log.Info("state", "state", s) },
			OnAssign: func(a protocol.Assign) {
				if a.Parent != 0 && !a.Remove {
					mu.Lock()
					sum.MaxDepth = max(sum.MaxDepth, a.Depth)
					mu.Unlock()
				}
			},
		},
	}
	err = node.Run(ctx, cfg)
	mu.Lock()
	if cur != nil {
		sum.Fill(cur)
	}
	mu.Unlock()
	if rec != nil {
		if rerr := rec.Close(); rerr != nil && err == nil {
			err = rerr
		}
	}
	if o.JSON {
		if werr := writeJSON(stdout, sum); werr != nil && err == nil {
			err = werr
		}
	}
	if errors.Is(err, node.ErrRefused) {
		return fmt.Errorf("the tracker refused to let us watch %q: %v", o.Stream, err)
	}
	return err
}

// peerSummary is what `banyan peer --json` prints when it leaves
// (node.Summary, which the netns benchmark reads back).
type peerSummary = node.Summary

type playerFunc struct {
	init  func(epoch uint32, data []byte)
	chunk func(h chunk.Header, payload []byte)
}

func (p playerFunc) Init(epoch uint32, data []byte)       { p.init(epoch, data) }
func (p playerFunc) Chunk(h chunk.Header, payload []byte) { p.chunk(h, payload) }

// recorder writes the played stream as fragmented MP4: the init segment,
// then each fragment as it is played, so the file is valid whenever the
// process stops. A new epoch (new init) starts a new file.
type recorder struct {
	path  string
	mu    sync.Mutex
	f     *os.File
	epoch uint32
	files int
	err   error
}

func (r *recorder) Init(epoch uint32, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil || (r.f != nil && epoch == r.epoch) {
		return
	}
	if r.f != nil {
		r.err = r.f.Close()
	}
	path := r.path
	if r.files > 0 {
		path = strings.TrimSuffix(r.path, ".mp4") + fmt.Sprintf("-%d.mp4", epoch)
	}
	r.files++
	r.f, r.err = os.Create(path)
	r.epoch = epoch
	if r.err == nil {
		_, r.err = r.f.Write(data)
	}
}

func (r *recorder) Chunk(h chunk.Header, payload []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil || r.f == nil || h.Epoch != r.epoch || payload == nil {
		return
	}
	_, r.err = r.f.Write(payload)
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		if err := r.f.Close(); err != nil && r.err == nil {
			r.err = err
		}
		r.f = nil
	}
	if r.err != nil {
		return fmt.Errorf("recording %s: %w", r.path, r.err)
	}
	return nil
}
