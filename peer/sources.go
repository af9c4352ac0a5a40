package peer

import "github.com/banyan-live/banyan/protocol"

// Source is who sent the bytes a viewer received. It is the one definition
// of "where did the video come from" that the viewer's stats panel, the
// tracker's dashboard, /metrics and `banyan peer --json` all use:
//
//   - viewers: other viewers (browsers, native peers) over WebRTC
//   - edges: an operator's relay edges over WebRTC
//   - seeder: the seeder's root peer over WebRTC — seeder egress, not P2P
//   - origin: the HTTP origin (also seeder egress)
//
// The four are disjoint and add up to everything received. TURN is a path,
// not a sender: Sources.TURN says how much of the WebRTC bytes (any sender)
// came relayed through a TURN server, which the operator pays for.
type Source uint8

const (
	SourceViewer Source = iota // the default: a neighbour nobody said more about
	SourceEdge
	SourceSeeder
)

// SourceOf maps the kind the tracker gives a parent (protocol.Assign
// ParentKind) to a Source.
func SourceOf(k protocol.ClientKind) Source {
	switch k {
	case protocol.KindSeeder:
		return SourceSeeder
	case protocol.KindRelay:
		return SourceEdge
	}
	return SourceViewer
}

// Sources is what an engine received since New, by sender (see Source and
// protocol.Sources).
type Sources = protocol.Sources

// maxKinds bounds the neighbour-kind table: parents come and go over a
// long session, so entries of departed neighbours are pruned past it.
const maxKinds = 64

// sourceState attributes received WebRTC bytes to their sender's kind.
// The engine's byte totals by path stay in statsState; this only adds the
// seeder's and the edges' shares. Guarded by Engine.mu.
type sourceState struct {
	kind          map[PeerID]Source
	seeder, edges uint64
}

// count attributes b bytes received from n (nil: the origin, counted
// elsewhere).
func (s *sourceState) count(n *nbr, b int) {
	if n == nil {
		return
	}
	switch s.kind[n.id] {
	case SourceSeeder:
		s.seeder += uint64(b)
	case SourceEdge:
		s.edges += uint64(b)
	}
}

// SetSource says what kind of sender neighbour id is (the tracker tells
// with each parent assignment). Unknown neighbours count as viewers.
func (e *Engine) SetSource(id PeerID, src Source) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := &e.src
	if src == SourceViewer {
		delete(s.kind, id)
		return
	}
	if s.kind == nil {
		s.kind = make(map[PeerID]Source)
	}
	if _, ok := s.kind[id]; !ok && len(s.kind) >= maxKinds {
		for k := range s.kind {
			if e.nbrs[k] == nil {
				delete(s.kind, k)
			}
		}
		if len(s.kind) >= maxKinds {
			return // every entry is a live neighbour: keep counting it as a viewer
		}
	}
	s.kind[id] = src
}

// Sources returns what the engine received since New, by sender.
func (e *Engine) Sources() Sources {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sourcesLocked()
}

func (e *Engine) sourcesLocked() Sources {
	return protocol.SourcesOf(protocol.Stats{BytesP2P: e.st.bytesP2P, BytesTURN: e.st.bytesTURN, BytesOrigin: e.st.bytesOrigin,
		BytesSeeder: e.src.seeder, BytesEdge: e.src.edges})
}
