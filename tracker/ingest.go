package tracker

import (
	"net/http"
	"sort"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/protocol"
)

// IngestPoint is a seeder broadcasters can publish to.
type IngestPoint struct {
	RTMPURL string `json:"rtmp_url"` // rtmp://host:1935/live (the key follows)
	WHIPURL string `json:"whip_url,omitempty"`
	Region  string `json:"region,omitempty"`
	// Seeder is the chosen seeder's id (cluster only).
	Seeder string `json:"seeder,omitempty"`
}

type ingestState struct {
	IngestPoint
	static bool // configured, not learned from a seeder session
}

// AddIngest makes a seeder known to the stream manager before any stream
// is published on it (the all-in-one mode, or static configuration).
func (t *Tracker) AddIngest(p IngestPoint) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ingests == nil {
		t.ingests = make(map[string]*ingestState)
	}
	t.ingests[p.RTMPURL] = &ingestState{IngestPoint: p, static: true}
}

// learnIngest records a seeder that registered a stream.
func (t *Tracker) learnIngest(h protocol.SeederHello) {
	if h.RTMPURL == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ingests == nil {
		t.ingests = make(map[string]*ingestState)
	}
	if _, ok := t.ingests[h.RTMPURL]; !ok {
		t.ingests[h.RTMPURL] = &ingestState{IngestPoint: IngestPoint{RTMPURL: h.RTMPURL, WHIPURL: h.WHIPURL, Region: h.Region}}
	}
}

// pickIngest chooses where stream should be published: the seeder already
// carrying it, else the least-loaded one, preferring region.
func (t *Tracker) pickIngest(stream, region string) (IngestPoint, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	load := map[string]int{}
	for name, st := range t.streams {
		st.mu.Lock()
		if st.seeder != nil && st.live {
			url := st.seederRTMP
			load[url]++
			if name == stream {
				if ing := t.ingests[url]; ing != nil {
					st.mu.Unlock()
					return ing.IngestPoint, true
				}
			}
		}
		st.mu.Unlock()
	}
	cands := make([]*ingestState, 0, len(t.ingests))
	for _, ing := range t.ingests {
		cands = append(cands, ing)
	}
	if len(cands) == 0 {
		return IngestPoint{}, false
	}
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		if ra, rb := a.Region == region && region != "", b.Region == region && region != ""; ra != rb {
			return ra
		}
		if load[a.RTMPURL] != load[b.RTMPURL] {
			return load[a.RTMPURL] < load[b.RTMPURL]
		}
		return a.RTMPURL < b.RTMPURL
	})
	return cands[0].IngestPoint, true
}

// IngestHandler serves GET /api/ingest?stream=NAME[&region=R]: where a
// broadcaster should publish. It reveals no secrets and needs no token.
func (t *Tracker) IngestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stream := r.URL.Query().Get("stream")
		if !protocol.ValidStream(stream) {
			httpx.Error(w, http.StatusBadRequest, "stream= must be a valid stream name")
			return
		}
		pick := t.pickIngest
		if t.cfg.Ingest != nil {
			pick = t.cfg.Ingest
		}
		p, ok := pick(stream, r.URL.Query().Get("region"))
		if !ok {
			httpx.Error(w, http.StatusServiceUnavailable, "no seeder available")
			return
		}
		httpx.WriteJSON(w, http.StatusOK, struct {
			Stream string `json:"stream"`
			IngestPoint
		}{stream, p})
	})
}

// Live reports whether a seeder has registered stream and says it is
// being published (the admin API's "live" when no seeder runs in the
// tracker's process).
func (t *Tracker) Live(stream string) bool {
	st := t.lookup(stream)
	if st == nil {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.seeder != nil && st.live
}

// lookup returns a stream's state, nil when the tracker has none (it
// creates nothing, unlike stream).
func (t *Tracker) lookup(name string) *streamState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.streams[name]
}

// CloseStream ends every session of a stream (viewers and seeder): this
// tracker no longer owns it (Config.Owner), and its clients come back
// through any tracker to the new owner.
func (t *Tracker) CloseStream(stream, reason string) {
	sessions := t.sessionsOf(stream)
	for _, s := range sessions {
		s.close(reason)
	}
	t.log.Info("stream sessions closed", "stream", stream, "sessions", len(sessions), "reason", reason)
}

// MoveStream hands a stream over to the tracker at url, which owns it
// now (rebalancing after a tracker joined): every session of the stream
// is told protocol.Moved and closed once that is written, so its client
// goes straight there.
func (t *Tracker) MoveStream(stream, url string) {
	sessions := t.sessionsOf(stream)
	for _, s := range sessions {
		s.send(protocol.Moved{URL: url})
		s.closeAfterFlush("moved to " + url)
	}
	t.log.Info("stream handed over", "stream", stream, "sessions", len(sessions), "to", url)
}

func (t *Tracker) sessionsOf(stream string) []*session {
	st := t.lookup(stream)
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	sessions := make([]*session, 0, len(st.sessions))
	for _, s := range st.sessions {
		sessions = append(sessions, s)
	}
	return sessions
}
