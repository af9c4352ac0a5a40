package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/banyan-live/banyan/store"
)

// MemberConfig configures a seeder's membership.
type MemberConfig struct {
	Client *clientv3.Client
	// Prefix is the store's key prefix ("/banyan/").
	Prefix string
	// TTL is the lease: a seeder silent this long disappears (default
	// 10 s, at least 2 s).
	TTL time.Duration
	// Record returns the seeder's current record; it is written at once
	// and every TTL/3.
	Record func() SeederRecord
	// Lost is called when the cluster takes a live stream from this
	// seeder: another seeder claimed it, or its key was revoked or
	// rotated. The seeder ends that publish. Must not block.
	Lost func(stream, why string)
	// Changed is called with the new record of a stream this seeder
	// carries whenever it changes and the publish goes on (its private
	// switch, say), so the origin applies it at once rather than at the
	// next publish. May be nil. Must not block.
	Changed func(store.Stream)
	Logger  *slog.Logger
}

// Member keeps a seeder's lease, record and claims in etcd. Make it with
// StartMember; Close it (its lease is revoked, so it leaves at once).
type Member struct {
	cfg MemberConfig
	id  string
	log *slog.Logger

	mu      sync.Mutex
	lease   clientv3.LeaseID
	claimed map[string]uint64 // stream → key generation of its publish
	pending []claimOp         // Carry and Drop, for keep to write

	// seenClaims and seenStreams are the last revisions the claims and
	// the streams watches delivered (or a reconcile read): each watch
	// goes on after its own. The watch goroutine's alone.
	seenClaims, seenStreams int64
	// compacted says a watch ended because its revision was compacted:
	// the next resume goes on from the reconcile read instead.
	compacted bool

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartMember registers the seeder and keeps it registered until Close.
func StartMember(cfg MemberConfig) (*Member, error) {
	if cfg.TTL == 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.TTL < 2*time.Second {
		return nil, fmt.Errorf("cluster: lease TTL %v below 2 s", cfg.TTL)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Lost == nil {
		cfg.Lost = func(string, string) {}
	}
	if cfg.Changed == nil {
		cfg.Changed = func(store.Stream) {}
	}
	rec := cfg.Record()
	if err := rec.validate(); err != nil {
		return nil, fmt.Errorf("cluster: seeder record: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Member{cfg: cfg, id: rec.ID, log: cfg.Logger, claimed: map[string]uint64{}, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	if err := m.register(); err != nil {
		cancel()
		return nil, err
	}
	rev, err := m.reconcile(true)
	if err != nil {
		m.Close()
		return nil, err
	}
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.keep() }()
	go func() {
		defer m.wg.Done()
		followFrom(m.ctx, m.log, "cluster member", rev, m.follow, m.resume)
	}()
	return m, nil
}

func (m *Member) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, 5*time.Second)
}

// register takes a new lease and writes the record and every claim
// under it.
func (m *Member) register() error {
	ctx, cancel := m.opCtx()
	defer cancel()
	g, err := m.cfg.Client.Grant(ctx, int64((m.cfg.TTL+time.Second-1)/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: grant lease: %w", err)
	}
	m.mu.Lock()
	m.lease = g.ID
	streams := make([]string, 0, len(m.claimed))
	for s := range m.claimed {
		streams = append(streams, s)
	}
	m.mu.Unlock()
	if err := m.putRecord(ctx, g.ID); err != nil {
		return err
	}
	for _, s := range streams {
		if err := m.putClaim(ctx, g.ID, s); err != nil {
			return err
		}
	}
	m.log.Info("registered in the cluster", "seeder", m.id, "lease", fmt.Sprintf("%x", g.ID), "ttl", m.cfg.TTL)
	return nil
}

func (m *Member) putRecord(ctx context.Context, lease clientv3.LeaseID) error {
	rec := m.cfg.Record()
	rec.UpdatedAt = time.Now().UTC()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if _, err := m.cfg.Client.Put(ctx, seedersPrefix(m.cfg.Prefix)+m.id, string(b), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("cluster: write seeder record: %w", err)
	}
	return nil
}

func (m *Member) putClaim(ctx context.Context, lease clientv3.LeaseID, stream string) error {
	if _, err := m.cfg.Client.Put(ctx, claimsPrefix(m.cfg.Prefix)+stream, m.id, clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("cluster: claim %s: %w", stream, err)
	}
	return nil
}

// claimOp is a Carry (carry true), a Drop or (epoch set) an Epoch
// waiting to be written.
type claimOp struct {
	stream string
	keyGen uint64
	carry  bool
	epoch  uint32
}

// Epoch records that stream started epoch here, soon: the next seeder to
// publish the stream starts above it (EpochFloor).
func (m *Member) Epoch(stream string, epoch uint32) { m.enqueue(claimOp{stream: stream, epoch: epoch}) }

// EpochFloor is the last epoch any seeder recorded for stream (0 when
// none, or when etcd does not answer within a second: the clock then
// decides, as on one machine).
func (m *Member) EpochFloor(stream string) uint32 {
	ctx, cancel := context.WithTimeout(m.ctx, time.Second)
	defer cancel()
	resp, err := m.cfg.Client.Get(ctx, epochsPrefix(m.cfg.Prefix)+stream)
	if err != nil || len(resp.Kvs) == 0 {
		return 0
	}
	n, err := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}

// putEpoch raises the stream's recorded epoch to epoch (never lowers it).
func (m *Member) putEpoch(stream string, epoch uint32) error {
	ctx, cancel := m.opCtx()
	defer cancel()
	key := epochsPrefix(m.cfg.Prefix) + stream
	for range 5 { // a conflicting writer: read again, a few times
		resp, err := m.cfg.Client.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("cluster: read epoch of %s: %w", stream, err)
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) > 0 {
			if cur, err := strconv.ParseUint(string(resp.Kvs[0].Value), 10, 32); err == nil && uint32(cur) >= epoch {
				return nil
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		t, err := m.cfg.Client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, strconv.FormatUint(uint64(epoch), 10))).Commit()
		if err != nil {
			return fmt.Errorf("cluster: record epoch of %s: %w", stream, err)
		}
		if t.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("cluster: record epoch of %s: too many conflicts", stream)
}

// Carry is Claim for callers that must not block (a seeder's event
// callback): the claim is written soon, by the member's own goroutine.
func (m *Member) Carry(stream string, keyGen uint64) {
	m.enqueue(claimOp{stream: stream, keyGen: keyGen, carry: true})
}

// Drop is Release, written soon.
func (m *Member) Drop(stream string) { m.enqueue(claimOp{stream: stream}) }

func (m *Member) enqueue(op claimOp) {
	m.mu.Lock()
	m.pending = append(m.pending, op)
	m.mu.Unlock()
	m.Update()
}

// flush writes the queued claims and releases, in order.
func (m *Member) flush() {
	m.mu.Lock()
	ops := m.pending
	m.pending = nil
	m.mu.Unlock()
	for _, op := range ops {
		var err error
		if op.epoch != 0 {
			err = m.putEpoch(op.stream, op.epoch)
		} else if op.carry {
			err = m.Claim(op.stream, op.keyGen)
		} else {
			err = m.Release(op.stream)
		}
		if err != nil {
			m.log.Warn("cluster claim", "stream", op.stream, "carry", op.carry, "err", err)
		}
	}
}

// keep refreshes the lease and the record every TTL/3 (and at once
// after a change); a lost lease is replaced by a new one.
func (m *Member) keep() {
	t := time.NewTicker(m.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
		m.flush()
		m.mu.Lock()
		lease := m.lease
		m.mu.Unlock()
		ctx, cancel := m.opCtx()
		_, err := m.cfg.Client.KeepAliveOnce(ctx, lease)
		if err == nil {
			err = m.putRecord(ctx, lease)
		} else if m.ctx.Err() == nil {
			m.log.Warn("cluster lease lost, registering again", "err", err)
			err = m.register()
		}
		cancel()
		if err != nil && m.ctx.Err() == nil {
			m.log.Warn("cluster registration", "err", err)
		}
	}
}

// Update rewrites the record soon (the load changed).
func (m *Member) Update() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Claim records that this seeder carries stream, published under key
// generation keyGen. Another seeder's claim is overwritten: a publish
// with a valid key takes the stream over, and the old seeder, watching,
// ends its publish.
func (m *Member) Claim(stream string, keyGen uint64) error {
	m.mu.Lock()
	m.claimed[stream] = keyGen
	lease := m.lease
	m.mu.Unlock()
	ctx, cancel := m.opCtx()
	defer cancel()
	err := m.putClaim(ctx, lease, stream)
	m.Update()
	return err
}

// Release drops this seeder's claim on stream (the publish ended), unless
// another seeder holds it by now.
func (m *Member) Release(stream string) error {
	m.mu.Lock()
	delete(m.claimed, stream)
	m.mu.Unlock()
	ctx, cancel := m.opCtx()
	defer cancel()
	key := claimsPrefix(m.cfg.Prefix) + stream
	_, err := m.cfg.Client.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", m.id)).Then(clientv3.OpDelete(key)).Commit()
	m.Update()
	if err != nil {
		return fmt.Errorf("cluster: release %s: %w", stream, err)
	}
	return nil
}

// follow ends publishes the cluster takes away: a claim by another
// seeder, a key revoked or rotated. It watches the claims and the stream
// records, each from after the last revision it delivered (rev at
// least), until either watch ends; StartMember's goroutine then
// reconciles and follows again (followFrom), so that nothing between
// the two watches is missed.
func (m *Member) follow(rev int64) {
	m.seenClaims, m.seenStreams = max(m.seenClaims, rev), max(m.seenStreams, rev)
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(m.ctx))
	defer cancel()
	claims := m.cfg.Client.Watch(wctx, claimsPrefix(m.cfg.Prefix), clientv3.WithPrefix(), clientv3.WithRev(m.seenClaims+1))
	streams := m.cfg.Client.Watch(wctx, streamsPrefix(m.cfg.Prefix), clientv3.WithPrefix(), clientv3.WithRev(m.seenStreams+1))
	// Seen is the last event's revision rather than the header's: a
	// catching-up watch may send a header revision ahead of the events
	// it has delivered.
	for {
		select {
		case <-m.ctx.Done():
			return
		case wr, ok := <-claims:
			if !ok || wr.Err() != nil {
				m.watchEnded(wr)
				return
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					m.checkClaim(last(string(ev.Kv.Key)), string(ev.Kv.Value))
				}
				m.seenClaims = ev.Kv.ModRevision
			}
		case wr, ok := <-streams:
			if !ok || wr.Err() != nil {
				m.watchEnded(wr)
				return
			}
			for _, ev := range wr.Events {
				var record []byte // nil: deleted
				if ev.Type == clientv3.EventTypePut {
					record = ev.Kv.Value
				}
				m.checkStream(last(string(ev.Kv.Key)), record, true)
				m.seenStreams = ev.Kv.ModRevision
			}
		}
	}
}

// resume is where a watch that ended goes on. The reconcile read applies
// what the state says now; the watches then go on after the last events
// they delivered, so that a change overwritten meanwhile (another
// seeder's claim that this one's keep loop claimed back) is still seen.
// Only past a compaction, whose events are gone, do they go on from the
// read.
func (m *Member) resume() (int64, error) {
	// Changed records are the replay's to report, unless there is none.
	rev, err := m.reconcile(m.compacted)
	if err != nil {
		return 0, err
	}
	if m.compacted {
		m.compacted = false
		return rev, nil
	}
	return min(m.seenClaims, m.seenStreams), nil
}

// reconcile reads the claims and the stream records at one revision and
// applies to the streams this seeder carries what follow applies to
// their events: it is what a watch that ended may have missed. With
// changed, a record changed since the streams watch last saw it is
// Changed. It returns the revision read.
func (m *Member) reconcile(changed bool) (int64, error) {
	ctx, cancel := m.opCtx()
	defer cancel()
	// A read that requires a leader, as the watch does: without one
	// clientv3 retries it (bounded by ctx) until there is one again.
	resp, err := m.cfg.Client.Txn(clientv3.WithRequireLeader(ctx)).Then(
		clientv3.OpGet(claimsPrefix(m.cfg.Prefix), clientv3.WithPrefix()),
		clientv3.OpGet(streamsPrefix(m.cfg.Prefix), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: read claims and streams: %w", err)
	}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		m.checkClaim(last(string(kv.Key)), string(kv.Value))
	}
	records := map[string]*mvccpb.KeyValue{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		records[last(string(kv.Key))] = kv
	}
	m.mu.Lock()
	carried := make([]string, 0, len(m.claimed))
	for s := range m.claimed {
		carried = append(carried, s)
	}
	m.mu.Unlock()
	for _, name := range carried {
		if kv := records[name]; kv != nil {
			m.checkStream(name, kv.Value, changed && kv.ModRevision > m.seenStreams)
		} else {
			m.checkStream(name, nil, false)
		}
	}
	return resp.Header.Revision, nil
}

// checkClaim ends the publish of stream here when another seeder holds
// its claim.
func (m *Member) checkClaim(stream, holder string) {
	if holder != m.id && m.drop(stream) {
		m.cfg.Lost(stream, "taken over by seeder "+holder)
	}
}

// checkStream applies stream name's record (nil: deleted) to its publish
// here, if any: revoked, under another key generation or deleted, it
// ends the publish; else, when changed, it is Changed (the private
// switch, a key's last use).
func (m *Member) checkStream(name string, record []byte, changed bool) {
	m.mu.Lock()
	gen, carried := m.claimed[name]
	m.mu.Unlock()
	if !carried {
		return
	}
	var st store.Stream
	if record != nil && json.Unmarshal(record, &st) == nil && !st.Revoked && st.KeyGen == gen {
		if changed {
			m.cfg.Changed(st)
		}
		return
	}
	if m.drop(name) {
		m.cfg.Lost(name, "key revoked or rotated")
	}
}

// watchEnded notes a compaction for resume and logs that a watch ended
// (etcd away, no leader, the revision compacted), unless the member is
// closing.
func (m *Member) watchEnded(wr clientv3.WatchResponse) {
	if wr.CompactRevision != 0 {
		m.compacted = true
	}
	if m.ctx.Err() == nil {
		m.log.Warn(watchEndedMsg, "err", wr.Err())
	}
}

const watchEndedMsg = "cluster watch ended"

// drop forgets a claim; it reports whether there was one.
func (m *Member) drop(stream string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.claimed[stream]
	delete(m.claimed, stream)
	return ok
}

// Close stops the membership and revokes the lease: the record and the
// claims go at once.
func (m *Member) Close() error {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := m.cfg.Client.Revoke(ctx, lease); err != nil {
		return fmt.Errorf("cluster: revoke lease: %w", err)
	}
	return nil
}
