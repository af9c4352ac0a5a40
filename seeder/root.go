package seeder

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/banyan-live/banyan/peer/node"
	"github.com/banyan-live/banyan/protocol"
)

// Roots runs the root peer of every live stream: a node in root mode that
// takes the seeder's sealed chunks and feeds the stream's first-level
// children over WebRTC. Its signaling rides the Announcer's session.
type Roots struct {
	api *webrtc.API
	log *slog.Logger
	// send passes a root's message to the tracker (Announcer.Send).
	send func(stream string, m protocol.Message)

	mu    sync.Mutex
	nodes map[string]*node.Node
	// inits is each stream's latest init segment: a root peer made anew
	// (the seeder re-registered, with another tracker say) starts with
	// it, or its children could never start the running epoch.
	inits map[string]*Entry

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRoots makes the root peers' manager; api may be nil (pion's default).
// Connect it to an Announcer with SetSend and AnnouncerConfig.OnMessage.
func NewRoots(api *webrtc.API, log *slog.Logger) *Roots {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Roots{api: api, log: log, nodes: make(map[string]*node.Node), inits: make(map[string]*Entry), ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go r.tick()
	return r
}

// SetSend sets where root messages go; call before any stream is live.
func (r *Roots) SetSend(send func(stream string, m protocol.Message)) { r.send = send }

// OnMessage takes what the tracker sent a stream's root.
func (r *Roots) OnMessage(stream string, m protocol.Message) {
	r.mu.Lock()
	n := r.nodes[stream]
	var init *Entry
	if _, welcome := m.(protocol.Welcome); welcome {
		init = r.inits[stream]
		// A (re)registration: start a fresh root peer.
		if n != nil {
			n.Close()
		}
		var err error
		n, err = node.New(node.Config{
			Stream: stream, Root: true, API: r.api, Logger: r.log.With("stream", stream, "role", "root"),
			Send: func(m protocol.Message) { r.send(stream, m) },
		})
		if err != nil {
			r.mu.Unlock()
			r.log.Error("root peer", "stream", stream, "err", err)
			return
		}
		r.nodes[stream] = n
	}
	r.mu.Unlock()
	if n != nil {
		n.Handle(m)
	}
	if n != nil && init != nil {
		if err := n.Publish(init.Sealed); err != nil {
			r.log.Debug("root: init for a new root peer", "stream", stream, "epoch", init.Epoch, "err", err)
		}
	}
}

// Publish feeds a sealed chunk (or init) of stream into its tree.
func (r *Roots) Publish(stream string, e *Entry) {
	r.mu.Lock()
	n := r.nodes[stream]
	if e.Seq == 0 {
		r.inits[stream] = e
	}
	r.mu.Unlock()
	if n == nil {
		return // not registered yet: viewers start from the origin
	}
	if err := n.Publish(e.Sealed); err != nil {
		r.log.Debug("root publish", "stream", stream, "epoch", e.Epoch, "seq", e.Seq, "err", err)
	}
}

// Sent is how many bytes stream's current root peer has sent into the
// trees (0 when the stream has no root peer).
func (r *Roots) Sent(stream string) uint64 {
	r.mu.Lock()
	n := r.nodes[stream]
	r.mu.Unlock()
	if n == nil {
		return 0
	}
	if e := n.Engine(); e != nil {
		return e.Traffic().Up
	}
	return 0
}

func (r *Roots) tick() {
	defer r.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			r.mu.Lock()
			nodes := make([]*node.Node, 0, len(r.nodes))
			for _, n := range r.nodes {
				nodes = append(nodes, n)
			}
			r.mu.Unlock()
			for _, n := range nodes {
				n.Tick(now)
			}
		}
	}
}

// Close ends every root peer.
func (r *Roots) Close() {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.nodes {
		n.Close()
	}
	r.nodes = map[string]*node.Node{}
}
