package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DirectoryConfig configures a tracker's view of the seeders.
type DirectoryConfig struct {
	Client *clientv3.Client
	Prefix string
	Logger *slog.Logger
}

// Directory is a tracker's live view of the cluster's seeders and claims,
// kept by an etcd watch. Make it with StartDirectory; Close it.
type Directory struct {
	cfg DirectoryConfig
	log *slog.Logger

	mu      sync.Mutex
	seeders map[string]SeederRecord
	claims  map[string]string // stream → seeder id

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartDirectory loads the seeders and claims and keeps them current.
func StartDirectory(cfg DirectoryConfig) (*Directory, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Directory{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel}
	rev, err := d.load()
	if err != nil {
		cancel()
		return nil, err
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.run(rev) }()
	return d, nil
}

// load reads both prefixes at one revision.
func (d *Directory) load() (int64, error) {
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	resp, err := d.cfg.Client.Txn(ctx).Then(
		clientv3.OpGet(seedersPrefix(d.cfg.Prefix), clientv3.WithPrefix()),
		clientv3.OpGet(claimsPrefix(d.cfg.Prefix), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: read seeders: %w", err)
	}
	seeders, claims := map[string]SeederRecord{}, map[string]string{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if r, err := decodeRecord(kv.Value); err == nil {
			seeders[r.ID] = r
		}
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		claims[last(string(kv.Key))] = string(kv.Value)
	}
	d.mu.Lock()
	d.seeders, d.claims = seeders, claims
	d.mu.Unlock()
	return resp.Header.Revision, nil
}

func decodeRecord(b []byte) (SeederRecord, error) {
	var r SeederRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	return r, r.validate()
}

// run follows changes from rev+1; when the watch breaks (etcd away, or
// the revision compacted) it reloads and watches again.
func (d *Directory) run(rev int64) {
	followFrom(d.ctx, d.log, "cluster directory", rev, d.follow, d.load)
}

func (d *Directory) follow(rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(d.ctx))
	defer cancel()
	// One watch over the prefix: seeders/ and claims/ both live under it.
	wc := d.cfg.Client.Watch(wctx, d.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	sp, cp := seedersPrefix(d.cfg.Prefix), claimsPrefix(d.cfg.Prefix)
	for wr := range wc {
		if err := wr.Err(); err != nil {
			d.log.Warn("cluster directory watch", "err", err)
			return
		}
		d.mu.Lock()
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch {
			case len(key) > len(sp) && key[:len(sp)] == sp:
				if ev.Type == clientv3.EventTypeDelete {
					delete(d.seeders, key[len(sp):])
				} else if r, err := decodeRecord(ev.Kv.Value); err == nil && r.ID == key[len(sp):] {
					d.seeders[r.ID] = r
				}
			case len(key) > len(cp) && key[:len(cp)] == cp:
				if ev.Type == clientv3.EventTypeDelete {
					delete(d.claims, key[len(cp):])
				} else {
					d.claims[key[len(cp):]] = string(ev.Kv.Value)
				}
			}
		}
		d.mu.Unlock()
	}
}

// ErrNoSeeder means no healthy seeder can take a stream.
var ErrNoSeeder = errors.New("no seeder available")

// Pick chooses where stream should be published: the seeder carrying it
// (its claim), else the least-loaded healthy one, in region when region
// has one. Healthy: registered (its lease alive), not draining, below its
// maximum. Least loaded: fewest live streams relative to the maximum,
// then the lower ingest bitrate, then the id (stable answers).
func (d *Directory) Pick(stream, region string) (SeederRecord, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id, ok := d.claims[stream]; ok {
		if r, ok := d.seeders[id]; ok {
			return r, nil
		}
	}
	inRegion := func(r SeederRecord) bool { return region != "" && r.Region == region }
	// better orders candidates: in the region, then less loaded, then the
	// lower ingest bitrate, then the id (stable answers).
	better := func(a, b SeederRecord) bool {
		if ra, rb := inRegion(a), inRegion(b); ra != rb {
			return ra
		}
		if la, lb := load(a), load(b); la != lb {
			return la < lb
		}
		if a.IngestKbps != b.IngestKbps {
			return a.IngestKbps < b.IngestKbps
		}
		return a.ID < b.ID
	}
	var best SeederRecord
	found := false
	for _, r := range d.seeders {
		if r.Draining || (r.MaxLive > 0 && r.Live >= r.MaxLive) {
			continue
		}
		if !found || better(r, best) {
			best, found = r, true
		}
	}
	if !found {
		return SeederRecord{}, ErrNoSeeder
	}
	return best, nil
}

func load(r SeederRecord) float64 {
	if r.MaxLive <= 0 {
		return float64(r.Live)
	}
	return float64(r.Live) / float64(r.MaxLive)
}

// Seeders lists the registered seeders, sorted by id.
func (d *Directory) Seeders() []SeederRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]SeederRecord, 0, len(d.seeders))
	for _, r := range d.seeders {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Close stops the watch.
func (d *Directory) Close() {
	d.cancel()
	d.wg.Wait()
}
