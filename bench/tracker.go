// Package bench holds Banyan's benchmark harnesses: the tracker under
// websocket load and the swarm. They print one JSON object so figures can
// be compared run to run.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/banyan-live/banyan/overlay"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/tracker"
)

// TrackerWSConfig configures TrackerWS.
type TrackerWSConfig struct {
	Peers       int // clients that join (default 2000)
	Stripes     int // default 2
	Concurrency int // joins in flight (default 64)
	// Progress receives a line now and then (may be nil).
	Progress io.Writer
}

// TrackerWSResult is what `banyan bench tracker --ws` prints.
type TrackerWSResult struct {
	Mode        string  `json:"mode"`
	Peers       int     `json:"peers"`
	Stripes     int     `json:"stripes"`
	JoinsPerSec float64 `json:"joins_per_sec"`
	JoinP50ms   float64 `json:"join_p50_ms"` // dial to welcome
	JoinP99ms   float64 `json:"join_p99_ms"`
	Failed      int     `json:"failed"`
	MaxDepth    int     `json:"max_depth"`
}

// TrackerWS runs a real tracker on loopback and joins Peers real websocket
// clients to one stream, Concurrency at a time; every client stays
// connected until all have joined.
func TrackerWS(ctx context.Context, cfg TrackerWSConfig) (TrackerWSResult, error) {
	if cfg.Peers <= 0 {
		cfg.Peers = 2000
	}
	if cfg.Stripes <= 0 {
		cfg.Stripes = overlay.DefaultStripes
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	tr, err := tracker.New(tracker.Config{
		Stripes: cfg.Stripes, Logger: slog.New(slog.DiscardHandler),
		StatsInterval: time.Hour, MaxPeersPerStream: cfg.Peers + 1,
		MsgRate: 1000, MsgBurst: 1000,
	})
	if err != nil {
		return TrackerWSResult{}, err
	}
	defer tr.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return TrackerWSResult{}, err
	}
	srv := &http.Server{Handler: tr, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "ws://" + ln.Addr().String() + "/ws"
	join, _ := protocol.Encode(protocol.Join{Stream: "bench", Kind: protocol.KindNative, UploadKbps: 6000})

	var (
		mu    sync.Mutex
		lat   []time.Duration
		fail  int
		conns []*websocket.Conn
	)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < cfg.Peers && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			c, err := joinOne(ctx, url, join)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail++
				return
			}
			lat = append(lat, time.Since(t0))
			conns = append(conns, c)
			if n := len(lat); cfg.Progress != nil && n%500 == 0 {
				fmt.Fprintf(cfg.Progress, "bench tracker --ws: %d/%d joined, %v\n", n, cfg.Peers, time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	res := TrackerWSResult{Mode: "ws", Peers: len(lat), Stripes: cfg.Stripes, Failed: fail,
		JoinsPerSec: float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		res.JoinP50ms = ms(lat[len(lat)/2])
		res.JoinP99ms = ms(lat[len(lat)*99/100])
	}
	res.MaxDepth = tr.MaxDepth("bench")
	return res, ctx.Err()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func joinOne(ctx context.Context, url string, join []byte) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Write(ctx, websocket.MessageText, join); err != nil {
		c.CloseNow()
		return nil, err
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			c.CloseNow()
			return nil, err
		}
		m, err := protocol.Decode(data)
		if err != nil {
			c.CloseNow()
			return nil, err
		}
		switch m := m.(type) {
		case protocol.Welcome:
			// Keep reading in the background so the tracker's queue drains.
			go func() {
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			return c, nil
		case protocol.Error:
			c.CloseNow()
			return nil, m
		}
	}
}
