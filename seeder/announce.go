package seeder

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// AnnouncerConfig configures an Announcer.
type AnnouncerConfig struct {
	// TrackerURL is the tracker's signaling websocket (ws://host/ws or
	// wss://host/ws).
	TrackerURL string
	// HTTPClient dials the trackers (default: http.DefaultClient, which
	// trusts the system roots and SSL_CERT_FILE).
	HTTPClient *http.Client
	// TrackerURLs, when set, are several trackers of a cluster, tried in
	// turn after a lost session (TrackerURL is then ignored). A tracker
	// that does not own a stream answers protocol.Moved, which is followed.
	TrackerURLs []string
	// Auth fills a SeederHello's identity and proof (SeederID, Time,
	// Nonce, Auth) just before it is sent: see MACAuth.
	Auth func(h *protocol.SeederHello)
	// OriginURL is this seeder's HTTP base, handed to viewers.
	OriginURL string
	// RTMPURL and WHIPURL are where broadcasters publish to this seeder;
	// Region is where it stands (the stream manager's choice).
	RTMPURL, WHIPURL, Region string
	UploadKbps               int // default 100 000
	PublicKey                ed25519.PublicKey
	Logger                   *slog.Logger
	// OnMessage receives what the tracker sends the root peer (Welcome,
	// Assign, Signal) for the stream's root engine. May be nil: the
	// announcer then sends the heartbeats itself (with a root peer, its
	// stats are the heartbeat).
	OnMessage func(stream string, m protocol.Message)
}

// Announcer keeps one signaling session per live stream between the seeder
// and the tracker: it registers the seeder as the stream's root and passes
// on new epochs and content keys. Feed it seeder Events; Close it.
type Announcer struct {
	cfg AnnouncerConfig
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	links map[string]*announceLink
}

// NewAnnouncer makes an Announcer.
func NewAnnouncer(cfg AnnouncerConfig) *Announcer {
	if cfg.UploadKbps == 0 {
		cfg.UploadKbps = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Announcer{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, links: make(map[string]*announceLink)}
}

type announceLink struct {
	stream string
	mu     sync.Mutex
	state  protocol.Keys // what the tracker should know
	wake   chan struct{}
	out    chan protocol.Message // to the tracker, for the root engine
}

// Event takes a seeder event. It never blocks.
func (a *Announcer) Event(e Event) {
	a.mu.Lock()
	l := a.links[e.Stream]
	if l == nil {
		if e.Kind == PublishEnded {
			a.mu.Unlock()
			return
		}
		l = &announceLink{stream: e.Stream, wake: make(chan struct{}, 1), out: make(chan protocol.Message, 256)}
		a.links[e.Stream] = l
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.run(l) }()
	}
	a.mu.Unlock()

	l.mu.Lock()
	l.state.Keys = contentKeys(e.Keys)
	switch e.Kind {
	case PublishStarted:
		l.state.Live = true
	case EpochStarted:
		l.state.Live, l.state.Epoch = true, e.Epoch
	case PublishEnded:
		l.state.Live = false
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Send passes a message from the stream's root engine to the tracker.
func (a *Announcer) Send(stream string, m protocol.Message) {
	a.mu.Lock()
	l := a.links[stream]
	a.mu.Unlock()
	if l == nil {
		return
	}
	select {
	case l.out <- m:
	default:
		a.log.Warn("tracker link queue full, dropping", "stream", stream, "type", m.Type())
	}
}

func contentKeys(keys []chunk.MasterKey) []protocol.ContentKey {
	out := make([]protocol.ContentKey, 0, len(keys))
	for _, k := range keys {
		b, err := json.Marshal(k)
		if err != nil {
			continue
		}
		var ck protocol.ContentKey
		if json.Unmarshal(b, &ck) == nil {
			out = append(out, ck)
		}
	}
	return out
}

// maxMoves bounds the protocol.Moved answers followed in a row.
const maxMoves = 3

// movedError ends a session the tracker answered with protocol.Moved.
type movedError struct{ url string }

func (e movedError) Error() string { return "stream moved to " + e.url }

// run keeps the stream's session up, reconnecting with backoff.
func (a *Announcer) run(l *announceLink) {
	backoff := 250 * time.Millisecond
	urls := a.cfg.TrackerURLs
	if len(urls) == 0 {
		urls = []string{a.cfg.TrackerURL}
	}
	next, hops := 0, 0
	url := urls[0]
	for a.ctx.Err() == nil {
		start := time.Now()
		err := a.session(l, url)
		if a.ctx.Err() != nil {
			return
		}
		var mv movedError
		if errors.As(err, &mv) && hops < maxMoves {
			a.log.Info("stream is on another tracker", "stream", l.stream, "url", mv.url)
			url, hops = mv.url, hops+1
			continue
		}
		// Start over at the next configured tracker: it knows the owner
		// of the moment.
		next, hops = (next+1)%len(urls), 0
		url = urls[next]
		if time.Since(start) > 10*time.Second {
			backoff = 250 * time.Millisecond
		}
		a.log.Warn("tracker session ended, reconnecting", "stream", l.stream, "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-a.ctx.Done():
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (a *Announcer) session(l *announceLink, url string) error {
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	conn, _, err := websocket.Dial(dctx, url, &websocket.DialOptions{HTTPClient: a.cfg.HTTPClient})
	dcancel()
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(protocol.MaxMessage)
	write := func(m protocol.Message) error {
		b, err := protocol.Encode(m)
		if err != nil {
			return err
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}
	l.mu.Lock()
	sent := l.state
	l.mu.Unlock()
	hello := protocol.SeederHello{
		Stream: l.stream, UploadKbps: a.cfg.UploadKbps,
		OriginURL: a.cfg.OriginURL, RTMPURL: a.cfg.RTMPURL, WHIPURL: a.cfg.WHIPURL, Region: a.cfg.Region,
		PublicKey: base64.StdEncoding.EncodeToString(a.cfg.PublicKey),
		Keys:      sent.Keys, Epoch: liveEpoch(sent),
	}
	a.cfg.Auth(&hello) // fresh time and nonce on every (re)connect
	err = write(hello)
	if err != nil {
		return err
	}
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			m, err := protocol.Decode(data)
			if err != nil {
				continue
			}
			if mv, ok := m.(protocol.Moved); ok {
				readErr <- movedError{mv.URL}
				return
			}
			if e, ok := m.(protocol.Error); ok {
				a.log.Warn("tracker error for the seeder", "stream", l.stream, "code", e.Code, "msg", e.Message)
				continue
			}
			if a.cfg.OnMessage != nil {
				a.cfg.OnMessage(l.stream, m)
			}
		}
	}()
	stats := time.NewTicker(2 * time.Second)
	defer stats.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			return err
		case <-l.wake:
			l.mu.Lock()
			cur := l.state
			l.mu.Unlock()
			if err := write(protocol.Keys{Keys: cur.Keys, Epoch: cur.Epoch, Live: cur.Live}); err != nil {
				return err
			}
		case m := <-l.out:
			if err := write(m); err != nil {
				return err
			}
		case <-stats.C:
			if a.cfg.OnMessage != nil {
				continue // the root peer reports stats itself
			}
			if err := write(protocol.Stats{}); err != nil {
				return err
			}
		}
	}
}

// MACAuth is the AnnouncerConfig.Auth of a seeder called id that shares
// secret with its tracker: each hello carries the time and a random nonce
// under protocol.SeederMAC.
func MACAuth(id string, secret []byte) func(h *protocol.SeederHello) {
	return func(h *protocol.SeederHello) {
		var n [16]byte
		_, _ = rand.Read(n[:]) // crypto/rand.Read never fails (Go 1.24+)
		h.Sign(secret, id, time.Now(), base64.RawURLEncoding.EncodeToString(n[:]))
	}
}

func liveEpoch(k protocol.Keys) uint32 {
	if !k.Live {
		return 0
	}
	return k.Epoch
}

// Close ends every session.
func (a *Announcer) Close() {
	a.cancel()
	a.wg.Wait()
}
