package tracker

import (
	"slices"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// SeriesLen is how many one-second points each stream's time series keeps
// (ten minutes).
const SeriesLen = 600

// Point is one second of a stream's time series. Optional figures are nil
// (JSON null, a gap in the chart) when nothing measured them.
type Point struct {
	T       int64 `json:"t"` // unix seconds
	Viewers int   `json:"viewers"`
	// Offload is the share of viewer bytes other peers (viewers, edges)
	// sent rather than the seeder (its root peer or the origin), over the
	// last 10 s (protocol.Sources).
	Offload *float64 `json:"offload"`
	// EgressBps is what the seeder sent (root peer + origin fallback), in
	// bytes per second over the last 4 s.
	EgressBps float64 `json:"egress_bps"`
	// JoinMS is the median join time of the last 64 joins: join to the
	// first stats report carrying media (an upper bound: reports come
	// every stats interval).
	JoinMS *float64 `json:"join_ms"`
	// BehindMS is the median playback distance behind the live edge of
	// viewers that play.
	BehindMS *float64 `json:"behind_ms"`
	// Stalls is how many stalls viewers reported in this second.
	Stalls     uint64  `json:"stalls"`
	IngestKbps float64 `json:"ingest_kbps"`
	FPS        float64 `json:"fps"`
}

// pathCounters are byte and stall counts folded in from stats reports.
type pathCounters struct {
	// Src is what viewers received, by sender (protocol.Sources: the one
	// definition the viewer panel, /metrics and `banyan peer` share).
	Src       protocol.Sources
	SeederUp  uint64 // sent by the seeder's root peer
	Stalls    uint64
	StalledMS uint64 // time viewers spent stalled
}

func (a *pathCounters) add(b pathCounters) {
	a.Src.Add(b.Src)
	a.SeederUp += b.SeederUp
	a.Stalls += b.Stalls
	a.StalledMS += b.StalledMS
}

// received is what viewers got, every source.
func (a pathCounters) received() uint64 { return a.Src.Total() }

// fromSeeder is what the seeder sent: its root peer's upload and every
// origin fetch (its egress, duplicates and all).
func (a pathCounters) fromSeeder() uint64 { return a.SeederUp + a.Src.Origin }

// offload is the share of received bytes other peers (viewers and edges)
// sent, nil when nothing was received.
func (a pathCounters) offload() *float64 {
	v, ok := a.Src.Offload()
	if !ok {
		return nil
	}
	return &v
}

// window is how many samples the rolling figures cover.
const window = 10

type sampleDelta struct {
	c  pathCounters
	dt float64 // seconds
}

// dashState is what the dashboard keeps of one stream. It lives in
// streamState and is guarded by the stream's mutex.
type dashState struct {
	events eventRing

	// total counts since the stream state was created; pending since the
	// last sample. Both grow from per-report deltas, so a departed peer's
	// bytes still count.
	total, pending pathCounters
	viewerSeconds  float64

	joins  [64]int32 // join times in ms, a ring
	nJoins int

	recent  [window]sampleDelta
	nRecent int
	last    time.Time // the last sample

	series  []Point // a ring of SeriesLen
	nSeries int

	// minute sums the current minute; minutes is a ring of ReportMinutes
	// closed ones (report.go).
	minute   minuteAcc
	minutes  []ReportRow
	nMinutes int
}

func delta(old, cur uint64) uint64 {
	if cur >= old {
		return cur - old
	}
	return cur // the counter restarted
}

// noteStats folds a stats report into the counters. Call it before the
// session takes the report: s.stats is still the previous one.
func (st *streamState) noteStats(s *session, n protocol.Stats) {
	d, o := &st.dash, s.stats
	var c pathCounters
	if s.isSeeder {
		c.SeederUp = delta(o.BytesUp, n.BytesUp)
	} else {
		os, ns := protocol.SourcesOf(o), protocol.SourcesOf(n)
		c.Src = protocol.Sources{Viewers: delta(os.Viewers, ns.Viewers), Edges: delta(os.Edges, ns.Edges),
			Seeder: delta(os.Seeder, ns.Seeder), Origin: delta(os.Origin, ns.Origin), TURN: delta(os.TURN, ns.TURN)}
		if n.Stalls > o.Stalls {
			c.Stalls = uint64(n.Stalls - o.Stalls)
		}
		if n.StalledMS > o.StalledMS {
			c.StalledMS = uint64(n.StalledMS - o.StalledMS)
		}
		if o.BytesP2P+o.BytesTURN+o.BytesOrigin == 0 && n.BytesP2P+n.BytesTURN+n.BytesOrigin > 0 && !s.joined.IsZero() {
			ms := st.t.cfg.Now().Sub(s.joined).Milliseconds()
			d.joins[d.nJoins%len(d.joins)] = int32(min(ms, 1<<31-1))
			s.joinMS = int32(max(1, min(ms, 1<<31-1)))
			d.nJoins++
		}
	}
	d.total.add(c)
	d.pending.add(c)
}

// sample closes one second of the series. Callers hold st.mu.
func (st *streamState) sample(now time.Time, in IngestStat) Point {
	d := &st.dash
	dt := 1.0
	if !d.last.IsZero() {
		dt = min(max(now.Sub(d.last).Seconds(), 0.001), 5)
	}
	d.last = now
	viewers := st.forest.Len()
	d.viewerSeconds += float64(viewers) * dt
	d.recent[d.nRecent%window] = sampleDelta{d.pending, dt}
	d.nRecent++
	stalls := d.pending.Stalls
	d.rollMinute(now, d.pending, dt, viewers)
	d.pending = pathCounters{}

	p := Point{T: now.Unix(), Viewers: viewers, Stalls: stalls, IngestKbps: in.Kbps, FPS: in.FPS}
	var win pathCounters
	var egress uint64
	var egressDT float64
	for i := 0; i < min(d.nRecent, window); i++ {
		s := d.recent[(d.nRecent-1-i)%window]
		win.add(s.c)
		if i < 4 {
			egress += s.c.fromSeeder()
			egressDT += s.dt
		}
	}
	p.Offload = win.offload()
	if egressDT > 0 {
		p.EgressBps = float64(egress) / egressDT
	}
	if n := min(d.nJoins, len(d.joins)); n > 0 {
		js := make([]int32, n)
		copy(js, d.joins[:n])
		slices.Sort(js)
		v := float64(js[n/2])
		p.JoinMS = &v
	}
	behind := make([]int, 0, len(st.sessions))
	for _, s := range st.sessions {
		if !s.isSeeder && (s.stats.BufferMS > 0 || s.stats.BehindLiveMS > 0) {
			behind = append(behind, s.stats.BehindLiveMS)
		}
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		v := float64(behind[len(behind)/2])
		p.BehindMS = &v
	}
	if d.series == nil {
		d.series = make([]Point, SeriesLen)
	}
	d.series[d.nSeries%SeriesLen] = p
	d.nSeries++
	return p
}

// seriesLocked returns the stored points, oldest first.
func (d *dashState) seriesLocked() []Point {
	n := min(d.nSeries, SeriesLen)
	out := make([]Point, 0, n)
	for i := d.nSeries - n; i < d.nSeries; i++ {
		out = append(out, d.series[i%SeriesLen])
	}
	return out
}

// latestLocked is the newest point, if any.
func (d *dashState) latestLocked() (Point, bool) {
	if d.nSeries == 0 {
		return Point{}, false
	}
	return d.series[(d.nSeries-1)%SeriesLen], true
}

// IngestStat is what the seeder says about a stream's publish.
type IngestStat struct {
	Live     bool    `json:"live"`
	Protocol string  `json:"protocol,omitempty"` // "rtmp", "whip"
	Kbps     float64 `json:"kbps"`               // ingest bitrate
	FPS      float64 `json:"fps"`
	// KeyframeS is the measured keyframe interval in seconds (0 unknown);
	// Advice is what the broadcaster should change when it is too long.
	KeyframeS float64 `json:"keyframe_s,omitempty"`
	Advice    string  `json:"advice,omitempty"`
}

// sampleAll takes one point of every stream's series.
func (t *Tracker) sampleAll(now time.Time, ingest func(string) IngestStat) {
	for _, st := range t.streamList() {
		var in IngestStat
		if ingest != nil {
			in = ingest(st.name)
		}
		st.mu.Lock()
		st.sample(now, in)
		st.mu.Unlock()
	}
}

// sampleLoop samples every second until the tracker closes.
func (t *Tracker) sampleLoop(ingest func(string) IngestStat) {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			t.sampleAll(t.cfg.Now(), ingest)
		}
	}
}
