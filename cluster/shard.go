package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/banyan-live/banyan/protocol"
)

// Trackers own streams, not machines: each tracker keeps a lease and a
// record (trackers/ID); a stream's owner is the live tracker that wins
// rendezvous hashing over (stream, tracker id), and it claims the stream
// (owners/STREAM = its id) under its lease in a transaction. Without
// ShardConfig.Moved a claim outlives membership changes (a new tracker
// does not steal streams already owned); with it, an owner hands a stream
// over to a tracker that joins and wins it (rebalancing). When the
// owner's lease ends, the claim goes with it and the next client to
// arrive at any tracker is sent to the new winner.

// TrackerRecord is what a tracker tells the cluster about itself.
type TrackerRecord struct {
	ID string `json:"id"`
	// URL is its signaling websocket, ws(s)://host/ws, as clients reach it.
	URL string `json:"url"`
}

func trackersPrefix(prefix string) string { return prefix + "trackers/" }
func ownersPrefix(prefix string) string   { return prefix + "owners/" }

// ShardConfig configures a tracker's share of the streams.
type ShardConfig struct {
	Client *clientv3.Client
	Prefix string
	Self   TrackerRecord
	// TTL is the lease (default 10 s, at least 2 s).
	TTL time.Duration
	// Lost is called for each stream this tracker no longer owns: its
	// lease ended (fencing: it may have been taken over meanwhile) or
	// another tracker holds the claim. The tracker closes that stream's
	// sessions; their clients come back through any tracker. Must not
	// block.
	Lost func(stream string)
	// Moved, when set, turns rebalancing on: when a tracker joins and
	// wins a stream this one owns (rendezvous hashing over the live
	// trackers), this one gives up its claim and calls Moved with the
	// winner's URL; the tracker sends the stream's clients there. Nil:
	// claims are sticky while their owner lives. Must not block.
	Moved  func(stream, url string)
	Logger *slog.Logger
}

// Shard keeps a tracker's lease and claims, and answers who owns a
// stream. Make it with StartShard; Close it.
type Shard struct {
	cfg ShardConfig
	log *slog.Logger

	mu       sync.Mutex
	lease    clientv3.LeaseID
	trackers map[string]TrackerRecord
	owned    map[string]bool

	rebalance chan struct{} // a tracker joined: see handOver

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartShard registers the tracker and follows the others.
func StartShard(cfg ShardConfig) (*Shard, error) {
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("cluster: lease TTL %v below 2 s", cfg.TTL)
	}
	if !protocol.ValidSeederID(cfg.Self.ID) {
		return nil, errors.New("cluster: bad tracker id: 1-64 of a-z, 0-9, '_' and '-'")
	}
	if !strings.HasPrefix(cfg.Self.URL, "ws://") && !strings.HasPrefix(cfg.Self.URL, "wss://") {
		return nil, fmt.Errorf("cluster: tracker URL %q is not ws:// or wss://", cfg.Self.URL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lost == nil {
		cfg.Lost = func(string) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shard{cfg: cfg, log: cfg.Logger, trackers: map[string]TrackerRecord{}, owned: map[string]bool{},
		rebalance: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	if err := s.register(); err != nil {
		cancel()
		return nil, err
	}
	rev, err := s.load()
	if err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(3)
	go func() { defer s.wg.Done(); s.keep() }()
	go func() { defer s.wg.Done(); s.watch(rev) }()
	go func() { defer s.wg.Done(); s.rebalancer() }()
	return s, nil
}

func (s *Shard) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, 5*time.Second)
}

func (s *Shard) register() error {
	ctx, cancel := s.opCtx()
	defer cancel()
	g, err := s.cfg.Client.Grant(ctx, int64((s.cfg.TTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: grant tracker lease: %w", err)
	}
	b, _ := json.Marshal(s.cfg.Self)
	if _, err := s.cfg.Client.Put(ctx, trackersPrefix(s.cfg.Prefix)+s.cfg.Self.ID, string(b), clientv3.WithLease(g.ID)); err != nil {
		return fmt.Errorf("cluster: write tracker record: %w", err)
	}
	s.mu.Lock()
	s.lease = g.ID
	s.mu.Unlock()
	s.log.Info("tracker registered in the cluster", "id", s.cfg.Self.ID, "url", s.cfg.Self.URL, "ttl", s.cfg.TTL)
	return nil
}

func (s *Shard) load() (int64, error) {
	ctx, cancel := s.opCtx()
	defer cancel()
	resp, err := s.cfg.Client.Get(ctx, trackersPrefix(s.cfg.Prefix), clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("cluster: read trackers: %w", err)
	}
	trackers := map[string]TrackerRecord{}
	for _, kv := range resp.Kvs {
		var r TrackerRecord
		if json.Unmarshal(kv.Value, &r) == nil && r.ID == last(string(kv.Key)) {
			trackers[r.ID] = r
		}
	}
	s.mu.Lock()
	s.trackers = trackers
	s.mu.Unlock()
	return resp.Header.Revision, nil
}

// keep renews the lease every TTL/3. A lease that cannot be renewed
// fences the tracker: every stream it owned is Lost (another tracker may
// own it by now), and it registers anew.
func (s *Shard) keep() {
	t := time.NewTicker(s.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		ctx, cancel := s.opCtx()
		resp, err := s.cfg.Client.KeepAliveOnce(ctx, lease)
		cancel()
		if err == nil && resp.TTL > 0 {
			continue
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("tracker lease lost: closing the streams it owned", "err", err)
		s.loseAll()
		if err := s.register(); err != nil {
			s.log.Warn("cluster registration", "err", err)
		}
	}
}

func (s *Shard) loseAll() {
	s.mu.Lock()
	owned := s.owned
	s.owned = map[string]bool{}
	s.mu.Unlock()
	for stream := range owned {
		s.cfg.Lost(stream)
	}
}

// watch follows trackers coming and going and claims changing hands.
func (s *Shard) watch(rev int64) {
	followFrom(s.ctx, s.log, "cluster shard", rev, s.follow, s.load)
}

func (s *Shard) follow(rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
	defer cancel()
	wc := s.cfg.Client.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tp, op := trackersPrefix(s.cfg.Prefix), ownersPrefix(s.cfg.Prefix)
	for wr := range wc {
		if wr.Err() != nil {
			return
		}
		var lost []string
		joined := false
		s.mu.Lock()
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch {
			case len(key) > len(tp) && key[:len(tp)] == tp:
				id := key[len(tp):]
				var r TrackerRecord
				if ev.Type == clientv3.EventTypeDelete {
					delete(s.trackers, id)
				} else if json.Unmarshal(ev.Kv.Value, &r) == nil && r.ID == id {
					s.trackers[id] = r
					joined = joined || id != s.cfg.Self.ID
				}
			case len(key) > len(op) && key[:len(op)] == op:
				stream := key[len(op):]
				if s.owned[stream] && (ev.Type == clientv3.EventTypeDelete || string(ev.Kv.Value) != s.cfg.Self.ID) {
					delete(s.owned, stream)
					lost = append(lost, stream)
				}
			}
		}
		s.mu.Unlock()
		for _, stream := range lost {
			s.cfg.Lost(stream)
		}
		if joined && s.cfg.Moved != nil {
			select {
			case s.rebalance <- struct{}{}:
			default:
			}
		}
	}
}

// rebalancer hands streams over after trackers join (handOver), one pass
// at a time, off the watch's goroutine.
func (s *Shard) rebalancer() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.rebalance:
			s.handOver()
		}
	}
}

// handOver gives up each owned stream that another live tracker now wins:
// the claim is deleted first (only if still this tracker's), so the
// winner can claim it when the moved clients arrive, then Moved sends
// them there. A claim that cannot be deleted stays, and so do its
// clients.
func (s *Shard) handOver() {
	s.mu.Lock()
	ids := s.liveIDs()
	type move struct{ stream, url string }
	var moves []move
	for stream := range s.owned {
		if w := Rendezvous(stream, ids); w != s.cfg.Self.ID {
			moves = append(moves, move{stream, s.trackers[w].URL})
		}
	}
	s.mu.Unlock()
	for _, m := range moves {
		key := ownersPrefix(s.cfg.Prefix) + m.stream
		ctx, cancel := s.opCtx()
		resp, err := s.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", s.cfg.Self.ID)).
			Then(clientv3.OpDelete(key)).Commit()
		cancel()
		if err != nil {
			s.log.Warn("rebalance: keeping the stream", "stream", m.stream, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.owned, m.stream)
		s.mu.Unlock()
		if resp.Succeeded {
			s.log.Info("rebalance: stream handed over", "stream", m.stream, "to", m.url)
			s.cfg.Moved(m.stream, m.url)
		} else {
			s.cfg.Lost(m.stream) // the claim was not ours any more
		}
	}
}

// liveIDs are the live trackers' ids, this one's included. s.mu held.
func (s *Shard) liveIDs() []string {
	ids := make([]string, 0, len(s.trackers)+1)
	seenSelf := false
	for id := range s.trackers {
		ids = append(ids, id)
		seenSelf = seenSelf || id == s.cfg.Self.ID
	}
	if !seenSelf {
		ids = append(ids, s.cfg.Self.ID)
	}
	return ids
}

// Rendezvous is the tracker among ids that wins stream: the highest
// SHA-256 of (stream, id). Every tracker computes the same answer from
// the same set, and a tracker joining or leaving moves only its share.
func Rendezvous(stream string, ids []string) string {
	var best string
	var bestW uint64
	for _, id := range ids {
		h := sha256.Sum256([]byte(stream + "\x00" + id))
		w := binary.BigEndian.Uint64(h[:8])
		if best == "" || w > bestW || (w == bestW && id < best) {
			best, bestW = id, w
		}
	}
	return best
}

// ErrNoOwner means the stream's owner could not be settled (etcd away, or
// an owner whose record is gone while its claim lingers): the client
// should try again shortly.
var ErrNoOwner = errors.New("cluster: stream owner unknown, try again")

// Owner says who owns stream: "" when this tracker does (claiming it
// when it is the rendezvous winner and nobody holds it), else the
// owner's signaling URL.
func (s *Shard) Owner(stream string) (string, error) {
	s.mu.Lock()
	if s.owned[stream] {
		s.mu.Unlock()
		return "", nil
	}
	lease := s.lease
	ids := s.liveIDs()
	s.mu.Unlock()

	key := ownersPrefix(s.cfg.Prefix) + stream
	ctx, cancel := s.opCtx()
	defer cancel()
	holder := ""
	if winner := Rendezvous(stream, ids); winner == s.cfg.Self.ID {
		resp, err := s.cfg.Client.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, s.cfg.Self.ID, clientv3.WithLease(lease))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return "", fmt.Errorf("cluster: claim %s: %w", stream, err)
		}
		if resp.Succeeded {
			return s.claimed(stream), nil
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			holder = string(kvs[0].Value)
		}
	} else {
		resp, err := s.cfg.Client.Get(ctx, key)
		if err != nil {
			return "", fmt.Errorf("cluster: read owner of %s: %w", stream, err)
		}
		if len(resp.Kvs) == 0 {
			holder = winner // it claims the stream when the client arrives
		} else {
			holder = string(resp.Kvs[0].Value)
		}
	}
	if holder == s.cfg.Self.ID {
		// Ours from before (same lease): take it back.
		return s.claimed(stream), nil
	}
	s.mu.Lock()
	r, ok := s.trackers[holder]
	s.mu.Unlock()
	if !ok {
		return "", ErrNoOwner
	}
	return r.URL, nil
}

func (s *Shard) claimed(stream string) string {
	s.mu.Lock()
	s.owned[stream] = true
	s.mu.Unlock()
	s.log.Info("stream claimed", "stream", stream)
	return ""
}

// Trackers lists the live trackers.
func (s *Shard) Trackers() []TrackerRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TrackerRecord, 0, len(s.trackers))
	for _, r := range s.trackers {
		out = append(out, r)
	}
	return out
}

// Close stops the shard and revokes its lease: its claims go at once.
func (s *Shard) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	lease := s.lease
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.cfg.Client.Revoke(ctx, lease); err != nil {
		return fmt.Errorf("cluster: revoke tracker lease: %w", err)
	}
	return nil
}
