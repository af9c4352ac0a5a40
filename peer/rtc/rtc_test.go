//go:build !js

package rtc

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/peer"
	"github.com/banyan-live/banyan/protocol"
)

// bus relays signals between transports like the tracker does, on its own
// goroutine, in order.
type bus struct {
	mu   sync.Mutex
	ts   map[peer.PeerID]*Transport
	ch   chan protocol.Signal
	drop map[peer.PeerID]bool // signals to these peers vanish
	// answerDelay holds each answer back (a loaded remote browser).
	answerDelay time.Duration
	// early counts candidates that reached a peer before the offer did.
	early int
	done  chan struct{}
	errsT testing.TB
}

func newBus(tb testing.TB) *bus {
	b := &bus{ts: map[peer.PeerID]*Transport{}, ch: make(chan protocol.Signal, 1024), drop: map[peer.PeerID]bool{}, done: make(chan struct{}), errsT: tb}
	go func() {
		defer close(b.done)
		for s := range b.ch {
			b.mu.Lock()
			t, dropped, delay := b.ts[s.To], b.drop[s.To], b.answerDelay
			b.mu.Unlock()
			if t == nil || dropped {
				continue
			}
			if s.SDP != nil && s.SDP.Type == "answer" && delay > 0 {
				time.AfterFunc(delay, func() { _ = t.HandleSignal(s) })
				continue
			}
			if len(s.Candidate) > 0 && t.Link(s.From) == nil {
				b.mu.Lock()
				b.early++
				b.mu.Unlock()
			}
			if err := t.HandleSignal(s); err != nil {
				tb.Logf("signal %d->%d: %v", s.From, s.To, err)
			}
		}
	}()
	tb.Cleanup(func() { close(b.ch); <-b.done })
	return b
}

// transport makes a loopback Transport for id; cfg's callbacks are kept.
func (b *bus) transport(tb testing.TB, id peer.PeerID, cfg Config) *Transport {
	tb.Helper()
	cfg.Self = id
	cfg.API = LoopbackAPI()
	cfg.Signal = func(s protocol.Signal) {
		s.From = id
		select {
		case b.ch <- s:
		default:
			tb.Errorf("signal bus full")
		}
	}
	t, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	b.mu.Lock()
	b.ts[id] = t
	b.mu.Unlock()
	tb.Cleanup(func() { t.Close() })
	return t
}

func TestLinkOpenSendBackpressureClose(t *testing.T) {
	b := newBus(t)
	got := make(chan []byte, 64)
	opened := make(chan *Link, 2)
	closed := make(chan error, 2)
	base := Config{
		OnOpen:    func(l *Link) { opened <- l },
		OnMessage: func(l *Link, m []byte) { got <- m },
		OnClose:   func(l *Link, err error) { closed <- err },
		HighWater: 64 << 10,
	}
	ta := b.transport(t, 1, base)
	b.transport(t, 2, base)
	la, err := ta.Dial(2)
	if err != nil {
		t.Fatal(err)
	}
	var lb *Link
	for range 2 {
		select {
		case l := <-opened:
			if l.Remote() == 1 {
				lb = l
			}
		case <-time.After(10 * time.Second):
			t.Fatal("link did not open")
		}
	}
	if la.Path() != peer.PathDirect || lb.Path() != peer.PathDirect {
		t.Errorf("paths %q %q, want direct", la.Path(), lb.Path())
	}
	msg := bytes.Repeat([]byte{'P'}, 16<<10)
	if err := lb.Send(msg); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if !bytes.Equal(m, msg) {
			t.Fatal("message corrupted")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message lost")
	}
	// Fill the buffer: Send must refuse, not block, above 64 KiB.
	var sent int
	var bpErr error
	for i := 0; i < 1000 && bpErr == nil; i++ {
		if bpErr = la.Send(msg); bpErr == nil {
			sent++
		}
	}
	if !errors.Is(bpErr, peer.ErrBackpressure) || sent > 8 {
		t.Errorf("after %d sends: %v, want ErrBackpressure within 64 KiB", sent, bpErr)
	}
	// It drains and accepts again.
	deadline := time.Now().Add(5 * time.Second)
	for la.Send(msg) != nil {
		if time.Now().After(deadline) {
			t.Fatal("link stayed congested")
		}
		time.Sleep(10 * time.Millisecond)
	}
	la.Close()
	for range 2 {
		select {
		case err := <-closed:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("close: %v", err)
			}
		case <-time.After(35 * time.Second):
			t.Fatal("remote did not see the close")
		}
	}
	if err := la.Send(msg); !errors.Is(err, peer.ErrLinkClosed) {
		t.Errorf("send after close: %v", err)
	}
}

func TestConnectTimeout(t *testing.T) {
	b := newBus(t)
	closed := make(chan error, 1)
	ta := b.transport(t, 1, Config{ConnectTimeout: 300 * time.Millisecond, AnswerTimeout: time.Minute, OnClose: func(l *Link, err error) { closed <- err }})
	b.transport(t, 2, Config{})
	b.mu.Lock()
	b.drop[2] = true // the offer never arrives
	b.mu.Unlock()
	start := time.Now()
	if _, err := ta.Dial(2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, ErrConnectTimeout) {
			t.Errorf("got %v", err)
		}
		if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("timed out after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout")
	}
	if ta.Link(2) != nil {
		t.Error("failed link still registered")
	}
}

// TestAnswerTimeout: a dialed peer that never answers (it vanished and the
// tracker does not know yet) fails the link well before ConnectTimeout.
func TestAnswerTimeout(t *testing.T) {
	b := newBus(t)
	closed := make(chan error, 1)
	ta := b.transport(t, 1, Config{ConnectTimeout: time.Minute, AnswerTimeout: 200 * time.Millisecond, OnClose: func(l *Link, err error) { closed <- err }})
	b.transport(t, 2, Config{})
	b.mu.Lock()
	b.drop[2] = true // the offer never arrives
	b.mu.Unlock()
	if _, err := ta.Dial(2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, ErrNoAnswer) || !errors.Is(err, ErrConnectTimeout) {
			t.Errorf("got %v, want ErrNoAnswer (a connect timeout)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer timeout within 10 s (ConnectTimeout is a minute)")
	}
}

// TestSlowAnswerRedial: a live remote whose answers take longer than
// AnswerTimeout (a loaded browser) loses the first offer, but the next
// one waits longer and connects; with a fixed timeout every redial failed
// and the child stayed on the origin (TestBrowserViewersInMesh on a
// loaded machine).
func TestSlowAnswerRedial(t *testing.T) {
	b := newBus(t)
	b.answerDelay = 700 * time.Millisecond
	closed := make(chan error, 4)
	opened := make(chan *Link, 4)
	ta := b.transport(t, 1, Config{AnswerTimeout: 400 * time.Millisecond,
		OnOpen: func(l *Link) { opened <- l }, OnClose: func(l *Link, err error) { closed <- err }})
	b.transport(t, 2, Config{})
	if _, err := ta.Dial(2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("first dial: got %v, want ErrNoAnswer", err)
		}
	case <-opened:
		t.Fatal("first dial opened although its answer came after AnswerTimeout")
	case <-time.After(10 * time.Second):
		t.Fatal("first dial neither failed nor opened")
	}
	// The remote may still hold its side of the failed link: wait it out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := ta.Dial(2)
		if err == nil {
			_ = l
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redial: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case l := <-opened:
		if l.Remote() != 2 {
			t.Fatalf("opened a link to %d", l.Remote())
		}
	case err := <-closed:
		t.Fatalf("redial failed too: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("redial did not open")
	}
}

// TestCandidatesFollowDescription: trickled candidates go out only after
// the offer or answer they belong to; one sent before the offer reaches a
// peer with no link to us and is dropped.
func TestCandidatesFollowDescription(t *testing.T) {
	b := newBus(t)
	opened := make(chan *Link, 64)
	cfg := Config{OnOpen: func(l *Link) { opened <- l }}
	ta := b.transport(t, 1, cfg)
	const n = 6
	for i := range n {
		b.transport(t, peer.PeerID(2+i), cfg)
		if _, err := ta.Dial(peer.PeerID(2 + i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 * n {
		select {
		case <-opened:
		case <-time.After(15 * time.Second):
			t.Fatal("links did not open")
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.early > 0 {
		t.Errorf("%d candidates reached a peer before the offer", b.early)
	}
}

func TestRefusesUnpairedOffer(t *testing.T) {
	b := newBus(t)
	ta := b.transport(t, 1, Config{})
	tb := b.transport(t, 2, Config{Accept: func(peer.PeerID) bool { return false }})
	if _, err := ta.Dial(2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if tb.Link(1) != nil {
		t.Error("offer from an unpaired peer accepted")
	}
	_ = context.Background()
}
