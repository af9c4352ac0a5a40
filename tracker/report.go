package tracker

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/banyan-live/banyan/internal/httpx"
	"github.com/banyan-live/banyan/protocol"
)

// ReportMinutes is how many one-minute rows each stream's report keeps
// (a day). They live in memory: a restart of the tracker starts afresh.
const ReportMinutes = 24 * 60

// ReportRow is one minute of a stream: what viewers received by sender
// (protocol.Sources), what the seeder sent, and what that saved against
// serving every viewer from the origin.
type ReportRow struct {
	T          int64   `json:"t"` // unix seconds, the minute's start
	ViewersAvg float64 `json:"viewers_avg"`
	ViewersMax int     `json:"viewers_max"`
	// Received is what viewers received in the minute, by sender.
	Received protocol.Sources `json:"received"`
	// SeederEgress is what the seeder sent (its root peer's upload and
	// origin HTTP); EgressSaved is received minus that: what serving
	// every viewer from the origin would have cost on top.
	SeederEgress uint64   `json:"seeder_egress"`
	EgressSaved  uint64   `json:"egress_saved"`
	Offload      *float64 `json:"offload"`
	Stalls       uint64   `json:"stalls"`
	// StalledShare is the share of watch time viewers spent stalled.
	StalledShare  *float64 `json:"stalled_share"`
	ViewerSeconds float64  `json:"viewer_seconds"`
}

// Report is a stream's rows since a time and their sum.
type Report struct {
	Stream string      `json:"stream"`
	Since  time.Time   `json:"since"`
	Rows   []ReportRow `json:"rows"`
	Total  ReportRow   `json:"total"` // T is the first row's
}

// minuteAcc sums one minute of samples; it lives in dashState.
type minuteAcc struct {
	start      int64
	c          pathCounters
	viewerSecs float64
	dt         float64
	maxViewers int
}

// rollMinute folds one second's counters into the minute rows. Callers
// hold st.mu.
func (d *dashState) rollMinute(now time.Time, c pathCounters, dt float64, viewers int) {
	m := now.Unix() / 60 * 60
	if d.minute.start != 0 && d.minute.start != m {
		if d.minutes == nil {
			d.minutes = make([]ReportRow, ReportMinutes)
		}
		d.minutes[d.nMinutes%ReportMinutes] = d.minute.row()
		d.nMinutes++
		d.minute = minuteAcc{}
	}
	d.minute.start = m
	d.minute.c.add(c)
	d.minute.viewerSecs += float64(viewers) * dt
	d.minute.dt += dt
	d.minute.maxViewers = max(d.minute.maxViewers, viewers)
}

func (a minuteAcc) row() ReportRow {
	r := ReportRow{T: a.start, ViewersMax: a.maxViewers, Received: a.c.Src, SeederEgress: a.c.fromSeeder(),
		Offload: a.c.offload(), Stalls: a.c.Stalls, ViewerSeconds: a.viewerSecs}
	if a.dt > 0 {
		r.ViewersAvg = a.viewerSecs / a.dt
	}
	r.fill(a.c.StalledMS)
	return r
}

// fill derives the saved egress and the stalled share.
func (r *ReportRow) fill(stalledMS uint64) {
	if rec := r.Received.Total(); rec > r.SeederEgress {
		r.EgressSaved = rec - r.SeederEgress
	}
	if r.ViewerSeconds > 0 {
		v := min(1, float64(stalledMS)/1000/r.ViewerSeconds)
		r.StalledShare = &v
	}
}

// Report returns stream's minute rows from since on (the current minute
// included, partial), oldest first, and their sum.
func (t *Tracker) Report(stream string, since time.Time) (*Report, error) {
	st := t.streamState(stream)
	if st == nil {
		return nil, ErrUnknownStream
	}
	st.mu.Lock()
	d := &st.dash
	var rows []ReportRow
	n := min(d.nMinutes, ReportMinutes)
	for i := d.nMinutes - n; i < d.nMinutes; i++ {
		if r := d.minutes[i%ReportMinutes]; r.T+60 > since.Unix() {
			rows = append(rows, r)
		}
	}
	if d.minute.start != 0 {
		rows = append(rows, d.minute.row())
	}
	st.mu.Unlock()
	rep := &Report{Stream: stream, Since: since, Rows: rows}
	var tot pathCounters
	var stalledMS uint64
	for i, r := range rows {
		if i == 0 {
			rep.Total.T = r.T
		}
		tot.Src.Add(r.Received)
		tot.Stalls += r.Stalls
		rep.Total.SeederEgress += r.SeederEgress
		rep.Total.ViewerSeconds += r.ViewerSeconds
		rep.Total.ViewersMax = max(rep.Total.ViewersMax, r.ViewersMax)
		if r.StalledShare != nil {
			stalledMS += uint64(*r.StalledShare * r.ViewerSeconds * 1000)
		}
	}
	rep.Total.Received, rep.Total.Stalls, rep.Total.Offload = tot.Src, tot.Stalls, tot.offload()
	if len(rows) > 0 {
		span := float64(rows[len(rows)-1].T + 60 - rows[0].T) // minutes covered, the last one partial
		rep.Total.ViewersAvg = rep.Total.ViewerSeconds / max(span, 1)
	}
	rep.Total.fill(stalledMS)
	return rep, nil
}

// WriteCSV writes the rows and a "total" row, one minute a line.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"minute", "viewers_avg", "viewers_max", "from_viewers", "from_edges", "from_seeder", "from_origin",
		"via_turn", "seeder_egress", "egress_saved", "offload", "stalls", "stalled_share"})
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', 4, 64)
	}
	line := func(t string, x ReportRow) {
		u := func(v uint64) string { return strconv.FormatUint(v, 10) }
		_ = cw.Write([]string{t, strconv.FormatFloat(x.ViewersAvg, 'f', 2, 64), strconv.Itoa(x.ViewersMax),
			u(x.Received.Viewers), u(x.Received.Edges), u(x.Received.Seeder), u(x.Received.Origin), u(x.Received.TURN),
			u(x.SeederEgress), u(x.EgressSaved), opt(x.Offload), u(x.Stalls), opt(x.StalledShare)})
	}
	for _, x := range r.Rows {
		line(time.Unix(x.T, 0).UTC().Format(time.RFC3339), x)
	}
	line("total", r.Total)
	cw.Flush()
	return cw.Error()
}

// maxReportSince bounds ?since=: the rows cover a day.
const maxReportSince = ReportMinutes * time.Minute

// apiReport answers GET /dashboard/api/report?stream=NAME&since=24h&format=json|csv.
func (d *dashboard) apiReport(w http.ResponseWriter, r *http.Request) {
	name, ok := streamParam(w, r, "stream")
	if !ok {
		return
	}
	since := maxReportSince
	if s := r.URL.Query().Get("since"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			httpx.Error(w, http.StatusBadRequest, "since= must be a positive duration such as 90m or 24h")
			return
		}
		since = min(v, maxReportSince)
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		httpx.Error(w, http.StatusBadRequest, "format= must be json or csv")
		return
	}
	rep, err := d.t.Report(name, d.t.cfg.Now().Add(-since))
	if errors.Is(err, ErrUnknownStream) {
		httpx.Error(w, http.StatusNotFound, "no figures for stream "+name+" since the tracker started")
		return
	}
	if err != nil {
		httpx.Error(w, http.StatusInternalServerError, "report failed")
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+"-report.csv"))
		_ = rep.WriteCSV(w)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
}
