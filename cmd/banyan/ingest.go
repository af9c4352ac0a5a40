package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/tracker"
)

// runIngest asks a tracker's stream manager where to publish a stream
// (GET /api/ingest): the CLI twin of what OBS users do with curl.
func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var server, region string
	var asJSON bool
	c := newCommand("ingest", "NAME", "Asks the stream manager where to publish stream NAME: the seeder already carrying it,\nelse the least-loaded healthy one in --region. Prints the OBS Server URL and the WHIP URL.")
	c.String(&server, "server", "http://127.0.0.1:8080", "URL of a tracker (or banyan up)")
	c.String(&region, "region", "", "the broadcaster's region")
	c.Bool(&asJSON, "json", false, "print the answer as one JSON object")
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return err
	}
	if c.fs.NArg() != 1 || !protocol.ValidStream(c.fs.Arg(0)) {
		return usageError{"banyan ingest: one stream NAME is required (see banyan ingest --help)"}
	}
	q := url.Values{"stream": {c.fs.Arg(0)}}
	if region != "" {
		q.Set("region", region)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(server, "/")+"/api/ingest?"+q.Encode(), nil)
	if err != nil {
		return usageError{fmt.Sprintf("banyan ingest: bad --server %q: %v", server, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read the answer of %s: %w", server, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answers %s: %s", server, resp.Status, strings.TrimSpace(string(body)))
	}
	var p tracker.IngestPoint
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("decode the answer of %s: %w", server, err)
	}
	if asJSON {
		_, err := stdout.Write(append(body, '\n'))
		return err
	}
	fmt.Fprintf(stdout, "OBS Server:  %s\n", p.RTMPURL)
	if p.WHIPURL != "" {
		fmt.Fprintf(stdout, "WHIP URL:    %s%s\n", p.WHIPURL, c.fs.Arg(0))
	}
	if p.Seeder != "" {
		fmt.Fprintf(stdout, "Seeder:      %s", p.Seeder)
		if p.Region != "" {
			fmt.Fprintf(stdout, " (region %s)", p.Region)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}
