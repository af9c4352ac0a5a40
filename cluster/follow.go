package cluster

import (
	"context"
	"log/slog"
	"time"
)

// followFrom keeps a watch going without a gap: follow(rev) watches from
// rev+1 until the watch ends (etcd away, its member without a leader,
// the revision compacted); a second later (bounded by ctx) reload reads
// the state afresh and follow goes on from the read's revision. When the
// read fails, follow goes on from rev again: nothing is missed, and a
// compacted revision ends the watch at once, to be read again.
func followFrom(ctx context.Context, log *slog.Logger, what string, rev int64, follow func(rev int64), reload func() (int64, error)) {
	for ctx.Err() == nil {
		follow(rev)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		r, err := reload()
		if err != nil {
			log.Warn(what+" reload", "err", err)
			continue
		}
		rev = r
	}
}
