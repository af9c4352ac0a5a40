package bench

import (
	"context"
	"fmt"
)

// swarmWebRTC runs the swarm over real nodes (peer/node), the tracker and
// the seeder on loopback. Placeholder until the lead wires it: it must fill
// the same SwarmResult (a collector helps: fill).
func swarmWebRTC(ctx context.Context, cfg SwarmConfig) (SwarmResult, error) {
	return SwarmResult{}, fmt.Errorf("bench swarm: --transport webrtc: %w (use --transport mem)", ErrNotAvailable)
}
