package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// TestByteSourcesAgree runs one stream with a relay edge under the seeder
// and a viewer under the edge (one stripe, root capacity 1), and checks
// that `banyan peer --json`, /metrics and the dashboard's API use the one
// definition of byte sources (issue 21): what the seeder's root peer sends
// over WebRTC is seeder bytes, what the edge sends is edge bytes, and
// nobody counts either as viewer (P2P) bytes.
func TestByteSourcesAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a live stream in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	up := liveDemo(t, ctx, 40, "--root-capacity", "1", "--stripes", "1")
	tok := up.adminToken(t)

	edge := startPeer(t, up.base, "--relay", "--capacity-mbps", "20", "--duration", "14s")
	time.Sleep(2 * time.Second)
	viewer := startPeer(t, up.base, "--duration", "10s")

	// While both watch: /metrics and the dashboard see seeder and edge
	// bytes, and no viewer bytes (no viewer sends to another).
	var mt []byte
	defer func() {
		if t.Failed() {
			t.Logf("last /metrics:\n%s", grepLines(mt, "banyan_swarm"))
			t.Logf("edge stderr:\n%s", edge.errb.String())
			t.Logf("up stderr:\n%s", up.stderr.String())
		}
	}()
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		mt = metrics(t, up.base, tok)
		if metricIn(mt, `banyan_swarm_received_source_bytes{source="seeder",stream="demo"}`) > 0 &&
			metricIn(mt, `banyan_swarm_received_source_bytes{source="edges",stream="demo"}`) > 0 {
			break
		}
	}
	if v := metricIn(mt, `banyan_swarm_received_source_bytes{source="viewers",stream="demo"}`); v != 0 {
		t.Errorf("/metrics: %v bytes from viewers, want 0 (only the seeder and an edge send)", v)
	}
	edgesM := metricIn(mt, `banyan_swarm_received_source_bytes{source="edges",stream="demo"}`)
	seederM := metricIn(mt, `banyan_swarm_received_source_bytes{source="seeder",stream="demo"}`)
	originM := metricIn(mt, `banyan_swarm_received_source_bytes{source="origin",stream="demo"}`)
	if off, want := metricIn(mt, `banyan_swarm_offload_ratio{stream="demo"}`), edgesM/(edgesM+seederM+originM); off < want-0.01 || off > want+0.01 {
		t.Errorf("/metrics offload %.3f, want edges/total %.3f", off, want)
	}
	code, body := adminDo(t, "GET", up.base+"/dashboard/api/streams", tok, "")
	if code != http.StatusOK {
		t.Fatalf("dashboard streams: %d %s", code, body)
	}
	var ov struct {
		Streams []struct {
			Name    string           `json:"name"`
			Viewers int              `json:"viewers"`
			Edges   int              `json:"edges"`
			Bytes   protocol.Sources `json:"bytes"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(body, &ov); err != nil {
		t.Fatalf("dashboard streams: %v: %s", err, body)
	}
	for _, s := range ov.Streams {
		if s.Name == "demo" && (s.Bytes.Viewers != 0 || s.Bytes.Seeder == 0 || s.Bytes.Edges == 0) {
			t.Errorf("dashboard bytes %+v, want seeder and edges, no viewers", s.Bytes)
		}
		if s.Name == "demo" && (s.Viewers != 2 || s.Edges != 1) {
			t.Errorf("dashboard: %d in the overlay, %d edges; want 2 and 1", s.Viewers, s.Edges)
		}
	}

	es, vs := edge.summary(t), viewer.summary(t)
	for _, c := range []struct {
		who  string
		s    peerSummary
		want string
	}{{"edge", es, "seeder"}, {"viewer", vs, "edges"}} {
		f := c.s.From
		t.Logf("%s: from %+v, offload %s, by path p2p %d turn %d origin %d", c.who, f, fmtPtr(c.s.Offload), c.s.BytesP2P, c.s.BytesTURN, c.s.BytesOrigin)
		if f.Total() != c.s.BytesP2P+c.s.BytesTURN+c.s.BytesOrigin {
			t.Errorf("%s: sources add up to %d, paths to %d", c.who, f.Total(), c.s.BytesP2P+c.s.BytesTURN+c.s.BytesOrigin)
		}
		if f.Viewers != 0 {
			t.Errorf("%s: %d bytes from viewers, want 0", c.who, f.Viewers)
		}
		// Its one parent is the seeder (the edge) or the edge (the
		// viewer): all its WebRTC bytes are that sender's, whatever the
		// origin added on a loaded machine.
		by := map[string]uint64{"seeder": f.Seeder, "edges": f.Edges}
		if by[c.want] == 0 || by[c.want] != f.Total()-f.Origin {
			t.Errorf("%s: from %+v, want every WebRTC byte from the %s", c.who, f, c.want)
		}
		if c.s.MaxDepth == 0 || c.s.MaxDepth < slicesMax(c.s.Depths) {
			t.Errorf("%s: max_depth %d next to depths %v", c.who, c.s.MaxDepth, c.s.Depths)
		}
	}
	if es.Offload == nil || *es.Offload != 0 {
		t.Errorf("edge fed by the seeder alone: offload %v, want 0", fmtPtr(es.Offload))
	}

	// banyan report says the same, by minute and in total, as JSON and CSV.
	out, stderr, code := cli(t, "report", "demo", "--json", "--server", up.base, "--data", up.data)
	if code != 0 {
		t.Fatalf("banyan report --json: %d %s", code, stderr)
	}
	var rep struct {
		Rows  []json.RawMessage `json:"rows"`
		Total struct {
			Received     protocol.Sources `json:"received"`
			SeederEgress uint64           `json:"seeder_egress"`
			EgressSaved  uint64           `json:"egress_saved"`
		} `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	tot := rep.Total
	if len(rep.Rows) == 0 || tot.Received.Viewers != 0 || tot.Received.Edges == 0 || tot.Received.Seeder == 0 || tot.SeederEgress == 0 {
		t.Errorf("report total %+v (%d rows)", tot, len(rep.Rows))
	}
	out, stderr, code = cli(t, "report", "--csv", "demo", "--server", up.base, "--data", up.data)
	if code != 0 || !strings.HasPrefix(out, "minute,viewers_avg,viewers_max,from_viewers,from_edges,from_seeder") || !strings.Contains(out, "\ntotal,") {
		t.Errorf("banyan report --csv: %d %s\n%s", code, stderr, out)
	}
	out, stderr, code = cli(t, "report", "demo", "--server", up.base, "--data", up.data)
	if code != 0 || !strings.Contains(out, "saved") || !strings.Contains(out, "Offload") {
		t.Errorf("banyan report: %d %s\n%s", code, stderr, out)
	}
	t.Logf("banyan report:\n%s", out)
}

func slicesMax(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

func fmtPtr(p *float64) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
