package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banyan-live/banyan/store"
	"github.com/banyan-live/banyan/tracker"
)

type reportOptions struct {
	Server, Token, Data string
	Since               time.Duration
	JSON, CSV           bool
}

// runReport prints what a stream's viewers received by sender, what the
// seeder sent and what the mesh saved, minute by minute, from the running
// server's figures (issue 21). The tracker keeps a day of minutes in
// memory.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o reportOptions
	c := newCommand("report", "STREAM",
		"Prints a stream's savings minute by minute from the running server: bytes viewers received\n"+
			"by sender (viewers, edges, seeder, origin HTTP; and via TURN), the seeder's egress, what the\n"+
			"mesh saved against serving every viewer from the origin, offload and stalled share. The\n"+
			"server keeps a day of minutes in memory (a restart starts afresh).")
	c.String(&o.Server, "server", "http://127.0.0.1:8080", "URL of the running banyan (up or tracker)")
	c.String(&o.Token, "token", "", "admin token (default: read from DATA/admin.token)")
	c.String(&o.Data, "data", "./banyan-data", "data directory, for the admin token")
	c.Duration(&o.Since, "since", 24*time.Hour, "how far back (at most 24h)")
	c.Bool(&o.JSON, "json", false, "print the report as one JSON object")
	c.Bool(&o.CSV, "csv", false, "print the report as CSV, one minute a line and a total")
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return err
	}
	if c.fs.NArg() != 1 {
		return usageError{"banyan report: give one STREAM (see banyan report --help)"}
	}
	if o.JSON && o.CSV {
		return usageError{"banyan report: --json and --csv exclude each other"}
	}
	if o.Since <= 0 {
		return usageError{"banyan report: --since must be positive"}
	}
	name := c.fs.Arg(0)
	tok := o.Token
	if tok == "" {
		var err error
		if tok, err = store.ReadAdminTokenFile(o.Data); err != nil {
			return fmt.Errorf("banyan report: no admin token: pass --token or BANYAN_TOKEN, or --data with the server's data dir (%v)", err)
		}
	}
	format := "json"
	if o.CSV {
		format = "csv"
	}
	q := url.Values{"stream": {name}, "since": {o.Since.String()}, "format": {format}}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(o.Server, "/")+"/dashboard/api/report?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("banyan report: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := apiClient.Do(req)
	if err != nil {
		return fmt.Errorf("banyan report: no server answers at %s: %w", o.Server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("banyan report: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("banyan report: server: %s", e.Error)
		}
		return fmt.Errorf("banyan report: server: %s", resp.Status)
	}
	if o.JSON || o.CSV {
		_, err = stdout.Write(body)
		return err
	}
	var rep tracker.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("banyan report: decode the answer: %w", err)
	}
	return printReport(stdout, &rep)
}

// printReport is the human summary: the totals, then the last minutes.
func printReport(w io.Writer, r *tracker.Report) error {
	t := r.Total
	pct := func(v *float64) string {
		if v == nil {
			return "—"
		}
		return fmt.Sprintf("%.1f %%", 100**v)
	}
	mb := func(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Fprintf(w, "Stream %s, %d minutes since %s\n\n", r.Stream, len(r.Rows), r.Since.Local().Format(time.DateTime))
	fmt.Fprintf(w, "  Viewers received  %s: from viewers %s, edges %s, seeder %s, origin HTTP %s (via TURN %s)\n",
		mb(t.Received.Total()), mb(t.Received.Viewers), mb(t.Received.Edges), mb(t.Received.Seeder), mb(t.Received.Origin), mb(t.Received.TURN))
	fmt.Fprintf(w, "  Seeder egress     %s; saved %s against serving every viewer from the origin\n", mb(t.SeederEgress), mb(t.EgressSaved))
	fmt.Fprintf(w, "  Offload %s · stalled %s of watch time · peak %d viewers\n\n", pct(t.Offload), pct(t.StalledShare), t.ViewersMax)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "minute\tviewers\treceived\tseeder egress\tsaved\toffload\tstalled\t")
	rows := r.Rows
	if len(rows) > 15 {
		rows = rows[len(rows)-15:]
		fmt.Fprintf(w, "  (last 15 minutes; --csv or --json for all)\n")
	}
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", time.Unix(x.T, 0).Local().Format("15:04"), x.ViewersAvg,
			mb(x.Received.Total()), mb(x.SeederEgress), mb(x.EgressSaved), pct(x.Offload), pct(x.StalledShare))
	}
	return tw.Flush()
}
