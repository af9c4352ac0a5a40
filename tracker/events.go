package tracker

import (
	"slices"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
)

// EventKind names what happened in a swarm, for the dashboard's event log.
type EventKind string

// Event kinds.
const (
	EventJoin         EventKind = "join"
	EventLeave        EventKind = "leave"
	EventReparent     EventKind = "reparent" // a peer moved to another parent in one stripe
	EventEvict        EventKind = "evict"
	EventKeys         EventKind = "keys" // the stream's content keys changed (rotation)
	EventPublishStart EventKind = "publish_start"
	EventPublishStop  EventKind = "publish_stop"
	EventSeeder       EventKind = "seeder"      // a seeder registered as the root
	EventSeederGone   EventKind = "seeder_gone" // the seeder's session ended
)

// Event is one entry of a stream's event log. Fields are numbers and
// constant strings so that recording one costs no formatting on the hot
// path; the page renders them.
type Event struct {
	Seq    uint64          `json:"seq"` // 1, 2, 3… per stream
	Time   time.Time       `json:"time"`
	Kind   EventKind       `json:"kind"`
	Peer   protocol.PeerID `json:"peer,omitempty"`
	Stripe int             `json:"stripe"`
	// From and To are the old and new parent of a re-parent (0: the
	// seeder; -1: the origin fallback; -2: none).
	From int64 `json:"from,omitempty"`
	To   int64 `json:"to,omitempty"`
	// Kind-specific detail: the client kind of a join, why a peer left or
	// was evicted, the key ids of a key change.
	Detail string `json:"detail,omitempty"`
	Epoch  uint32 `json:"epoch,omitempty"`
}

// eventRingSize bounds each stream's event log: older events are dropped.
const eventRingSize = 1024

// eventRing is a bounded log. It is guarded by the stream's mutex; adding
// is O(1) and never blocks.
type eventRing struct {
	buf []Event
	n   uint64 // events ever added; the newest has Seq n
}

func (r *eventRing) add(e Event) {
	if r.buf == nil {
		r.buf = make([]Event, eventRingSize)
	}
	r.n++
	e.Seq = r.n
	r.buf[(r.n-1)%eventRingSize] = e
}

// since returns up to limit of the newest events with Seq > after, oldest
// first.
func (r *eventRing) since(after uint64, limit int) []Event {
	if r.n == 0 || after >= r.n || limit <= 0 {
		return nil
	}
	// The oldest still held, the oldest of the newest limit, and the
	// first after the cursor: whichever is latest.
	first := max(after+1, r.n-min(r.n, eventRingSize)+1, r.n-min(r.n, uint64(limit))+1)
	out := make([]Event, 0, r.n-first+1)
	for s := first; s <= r.n; s++ {
		out = append(out, r.buf[(s-1)%eventRingSize])
	}
	return out
}

// nodeRef turns an overlay node into the dashboard's id: 0 the seeder, -1
// the origin, else the peer id.
func nodeRef(id overlay.PeerID) int64 {
	switch id {
	case overlay.Origin:
		return -1
	case overlay.Root:
		return 0
	}
	return int64(id)
}

// event records e. Callers hold st.mu.
func (st *streamState) event(e Event) {
	e.Time = st.t.cfg.Now()
	st.dash.events.add(e)
}

// noteChanges records the re-parents in a batch of overlay changes: an
// edge added for a child that lost an edge in the same stripe in the same
// batch. A joiner's first edges and a leaver's removals are not moves.
func (st *streamState) noteChanges(changes []overlay.Change) {
	type key struct {
		stripe int
		child  overlay.PeerID
	}
	var small [16]key
	removed := small[:0]
	for _, c := range changes {
		if !c.Added {
			removed = append(removed, key{c.Stripe, c.Child})
		}
	}
	if len(removed) == 0 {
		return
	}
	for _, c := range changes {
		if !c.Added {
			continue
		}
		i := slices.Index(removed, key{c.Stripe, c.Child})
		if i < 0 {
			continue
		}
		from := int64(-2)
		// The removal that matches names the old parent.
		for _, r := range changes {
			if !r.Added && r.Stripe == c.Stripe && r.Child == c.Child {
				from = nodeRef(r.Parent)
				break
			}
		}
		st.event(Event{Kind: EventReparent, Peer: protocol.PeerID(c.Child), Stripe: c.Stripe, From: from, To: nodeRef(c.Parent)})
	}
}

// noteKeys records what a seeder's Keys message changes: the publish
// starting or stopping, a new epoch, a key rotation. Call it before the
// stream state takes the message.
func (st *streamState) noteKeys(k protocol.Keys) {
	switch {
	case k.Live && !st.live:
		st.event(Event{Kind: EventPublishStart, Epoch: k.Epoch})
	case !k.Live && st.live:
		st.event(Event{Kind: EventPublishStop, Epoch: st.epoch})
	case k.Live && k.Epoch != 0 && k.Epoch != st.epoch:
		st.event(Event{Kind: EventPublishStart, Epoch: k.Epoch, Detail: "new epoch"})
	}
	if !sameKeyIDs(st.keys, k.Keys) && len(st.keys) > 0 {
		st.event(Event{Kind: EventKeys, Detail: keyIDs(k.Keys)})
	}
}

func sameKeyIDs(a, b []protocol.ContentKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID {
			return false
		}
	}
	return true
}

func keyIDs(keys []protocol.ContentKey) string {
	b := []byte("key ids")
	for i, k := range keys {
		if i == 8 {
			b = append(b, " …"...)
			break
		}
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(k.ID), 10)
	}
	return string(b)
}

// noteLeave records a session's end, with why it ended.
func (st *streamState) noteLeave(s *session) {
	reason, _ := s.reason.Load().(string)
	if s.isSeeder {
		if st.live {
			st.event(Event{Kind: EventPublishStop, Epoch: st.epoch, Detail: "seeder gone"})
		}
		st.event(Event{Kind: EventSeederGone, Peer: s.id, Detail: reason})
		return
	}
	st.event(Event{Kind: EventLeave, Peer: s.id, Detail: reason})
}
