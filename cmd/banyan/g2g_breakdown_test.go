package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/banyan-live/banyan/chunk"
)

// Where glass-to-glass latency goes (issue 22): the origin is followed
// with blocking chunk requests, which answer the moment the seeder seals
// each chunk, and the viewer page notes when each chunk's media reached
// the <video> buffer. With the capture time read from each presented
// frame, a frame's latency splits into
//
//	chunking: its capture → the capture of its chunk's last media (the
//	  packager cannot seal a chunk before its media is over)
//	seal:     that → the chunk sealed at the seeder (encode, RTMP, the
//	  packager's wait for the next frame)
//	deliver:  sealed → in the viewer's media buffer (the mesh hops,
//	  verification, decryption, the append)
//	buffer:   in the buffer → presented (where the player runs behind
//	  its newest media: the playout target)
//
// A chunk's media time is its first decode time; with x264's B-frames the
// presentation times run a frame or two later, so the split is exact only
// for -tune zerolatency.

// sealedChunk is one chunk as the origin served it: its media span in
// seconds and the wall time (ms since 1970) its blocking request answered.
type sealedChunk struct {
	start, end float64
	at         float64
}

// originFollower records when each chunk of stream became available.
type originFollower struct {
	mu     sync.Mutex
	chunks []sealedChunk
}

func (f *originFollower) sealed() []sealedChunk {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.chunks)
}

// followOrigin asks the origin for each next chunk before it exists, until
// ctx ends.
func followOrigin(ctx context.Context, t *testing.T, base, stream string) *originFollower {
	f := &originFollower{}
	get := func(path string) ([]byte, int, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return nil, 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return b, resp.StatusCode, err
	}
	go func() {
		var live struct {
			Epoch uint32 `json:"epoch"`
			Seq   uint64 `json:"seq"`
		}
		next := uint64(0)
		for ctx.Err() == nil {
			if next == 0 {
				b, code, err := get("/chunks/" + stream + "/live")
				if err != nil || code != http.StatusOK || json.Unmarshal(b, &live) != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				next = live.Seq + 1
			}
			b, code, err := get(fmt.Sprintf("/chunks/%s/%d/%d", stream, live.Epoch, next))
			at := float64(time.Now().UnixMicro()) / 1000
			if err != nil || code != http.StatusOK {
				next = 0 // a new epoch, or fallen behind: start again at the edge
				continue
			}
			h, err := chunk.ParseHeader(b)
			if err != nil {
				t.Logf("origin follower: chunk %d: %v", next, err)
				next = 0
				continue
			}
			f.mu.Lock()
			f.chunks = append(f.chunks, sealedChunk{start: float64(h.MediaTime) / 1e6, end: float64(h.MediaTime+uint64(h.Duration)) / 1e6, at: at})
			f.mu.Unlock()
			next++
		}
	}()
	return f
}

// g2gBreakdown splits each sampled frame's latency (see above) and
// returns p50/p95 of each part, in ms.
func g2gBreakdown(res g2gResult, sealed []sealedChunk) string {
	var chunking, seal, deliver, buffer, behind []float64
	for i := range res.Lat {
		if i >= len(res.MT) {
			break
		}
		m := res.MT[i]
		capture := res.At[i] - res.Lat[i]
		offset := capture - m*1000 // wall ms of media time 0
		j := sort.Search(len(sealed), func(j int) bool { return sealed[j].end > m+0.001 })
		if j == len(sealed) || sealed[j].start > m+0.001 {
			continue
		}
		c := sealed[j]
		// The buffer's end is where both tracks have media: the audio of
		// a chunk may end up to an audio frame before its video.
		k := sort.Search(len(res.Append), func(k int) bool { return res.Append[k][1] >= c.end-0.05 })
		if k == len(res.Append) {
			continue
		}
		appended := res.Append[k][0]
		chunking = append(chunking, (c.end-m)*1000)
		seal = append(seal, c.at-(offset+c.end*1000))
		deliver = append(deliver, appended-c.at)
		buffer = append(buffer, res.At[i]-appended)
		behind = append(behind, res.Behind[i]*1000)
	}
	q := func(xs []float64) string {
		if len(xs) == 0 {
			return "n/a"
		}
		xs = slices.Clone(xs)
		slices.Sort(xs)
		at := func(f float64) float64 { return xs[min(len(xs)-1, int(f*float64(len(xs))))] }
		return fmt.Sprintf("%.0f/%.0f", at(0.5), at(0.95))
	}
	return fmt.Sprintf("chunking %s, capture→sealed %s, sealed→in buffer %s, in buffer→presented %s ms (p50/p95 over %d of %d frames); behind the newest buffered media at presentation %s ms",
		q(chunking), q(seal), q(deliver), q(buffer), len(chunking), len(res.Lat), q(behind))
}
