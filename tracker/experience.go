package tracker

import (
	"slices"
	"strings"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// Experience is what viewers of one group live through right now: join
// time, distance behind live, the playout target their engines run (the
// adaptive delay behind the live edge, issue 16) and the share of watch
// time stalled, as
// p50/p95 over the group's current viewers (issue 21). Groups are by
// client ("chromium", "firefox", "safari", "browser" for another engine,
// "native", "edge") and by path ("direct", "turn", "origin": every stripe
// from the origin, "unknown": a browser that does not say).
type Experience struct {
	By       string `json:"by"` // "client" or "path"
	Name     string `json:"name"`
	Viewers  int    `json:"viewers"`
	JoinMS   Dist   `json:"join_ms"`
	BehindMS Dist   `json:"behind_ms"`
	// PlayoutMS is the engines' playout target.
	PlayoutMS Dist `json:"playout_ms"`
	Stalled   Dist `json:"stalled"` // share of watch time, 0..1
}

// Dist is a distribution's median and 95th percentile over N values; nil
// without values.
type Dist struct {
	N   int      `json:"n"`
	P50 *float64 `json:"p50"`
	P95 *float64 `json:"p95"`
}

func distOf(v []float64) Dist {
	d := Dist{N: len(v)}
	if len(v) == 0 {
		return d
	}
	slices.Sort(v)
	p50, p95 := v[(len(v)-1)/2], v[min(len(v)-1, (len(v)*95+99)/100-1)]
	d.P50, d.P95 = &p50, &p95
	return d
}

// clientEngine names a viewer's client group from its join.
func clientEngine(kind protocol.ClientKind, client string) string {
	switch kind {
	case protocol.KindNative:
		return "native"
	case protocol.KindRelay:
		return "edge"
	}
	switch {
	case strings.Contains(client, "Firefox/"):
		return "firefox"
	case strings.Contains(client, "Chrome/"), strings.Contains(client, "Chromium/"):
		return "chromium"
	case strings.Contains(client, "Safari/"):
		return "safari"
	}
	return "browser"
}

// pathOf names how a viewer receives: over TURN if any parent link is
// relayed, from the origin alone when it has no peer parent.
func pathOf(s *protocol.Stats) string {
	path, parents := "direct", 0
	for _, p := range s.Parents {
		if p.Parent == 0 {
			continue
		}
		parents++
		switch p.Path {
		case "turn":
			return "turn"
		case "unknown":
			path = "unknown"
		}
	}
	if parents == 0 {
		return "origin"
	}
	return path
}

// minWatched is how long a viewer must have watched for its stalled share
// to count.
const minWatched = 10 * time.Second

// experienceLocked groups the current viewers. Callers hold st.mu.
func (st *streamState) experienceLocked(now time.Time) []Experience {
	type acc struct{ join, behind, playout, stalled []float64 }
	groups := map[[2]string]*acc{}
	get := func(by, name string) *acc {
		k := [2]string{by, name}
		if groups[k] == nil {
			groups[k] = &acc{}
		}
		return groups[k]
	}
	n := map[[2]string]int{}
	for _, s := range st.sessions {
		if s.isSeeder {
			continue
		}
		ss := &s.stats
		engine := s.engine
		if engine == "" {
			engine = clientEngine(s.kind, "")
		}
		for _, k := range [][2]string{{"client", engine}, {"path", pathOf(ss)}} {
			a := get(k[0], k[1])
			n[k]++
			if s.joinMS > 0 {
				a.join = append(a.join, float64(s.joinMS))
			}
			if ss.BufferMS > 0 || ss.BehindLiveMS > 0 {
				a.behind = append(a.behind, float64(ss.BehindLiveMS))
			}
			if ss.PlayoutMS > 0 {
				a.playout = append(a.playout, float64(ss.PlayoutMS))
			}
			if watched := now.Sub(s.joined) - time.Duration(s.joinMS)*time.Millisecond; s.joinMS > 0 && watched >= minWatched {
				a.stalled = append(a.stalled, min(1, float64(ss.StalledMS)/float64(watched.Milliseconds())))
			}
		}
	}
	out := make([]Experience, 0, len(groups))
	for k, a := range groups {
		out = append(out, Experience{By: k[0], Name: k[1], Viewers: n[k], JoinMS: distOf(a.join), BehindMS: distOf(a.behind), PlayoutMS: distOf(a.playout), Stalled: distOf(a.stalled)})
	}
	slices.SortFunc(out, func(a, b Experience) int {
		if c := strings.Compare(a.By, b.By); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
