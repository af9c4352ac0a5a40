// Package cluster is what ties Banyan's processes together through etcd:
// each seeder keeps a lease, a record of itself and a claim on every
// stream it carries (Member); trackers watch them (Directory) to answer
// /api/ingest with the seeder carrying a stream, else the least-loaded
// healthy one in the broadcaster's region. A seeder that dies leaves with
// its lease; a claim taken by another seeder, or a key revoked or rotated
// through any tracker, ends the publish where it runs.
//
// Keys under the store's prefix:
//
//	seeders/ID     JSON SeederRecord, under the seeder's lease
//	claims/STREAM  the carrying seeder's ID, under its lease
//	epochs/STREAM  the last epoch any seeder started for it (no lease)
package cluster

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/banyan-live/banyan/protocol"
)

// SeederRecord is what a seeder tells the cluster about itself.
type SeederRecord struct {
	ID        string `json:"id"`
	Region    string `json:"region,omitempty"`
	OriginURL string `json:"origin_url"`
	RTMPURL   string `json:"rtmp_url"`
	WHIPURL   string `json:"whip_url,omitempty"`
	// Live and MaxLive are the streams it carries and may carry.
	Live    int `json:"live"`
	MaxLive int `json:"max_live"`
	// IngestKbps is the summed bitrate of its publishes.
	IngestKbps float64 `json:"ingest_kbps"`
	// Draining: it finishes what it carries and takes no new stream.
	Draining  bool      `json:"draining,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// validate guards the directory against a record it cannot use (a bad
// writer with etcd access can still lie; it cannot crash a tracker).
func (r SeederRecord) validate() error {
	if !protocol.ValidSeederID(r.ID) {
		return errors.New("bad seeder id")
	}
	if len(r.Region) > 64 || len(r.OriginURL) > 1024 || len(r.RTMPURL) > 1024 || len(r.WHIPURL) > 1024 {
		return errors.New("field too long")
	}
	if r.Live < 0 || r.MaxLive < 0 {
		return fmt.Errorf("negative load")
	}
	return nil
}

func seedersPrefix(prefix string) string { return prefix + "seeders/" }
func claimsPrefix(prefix string) string  { return prefix + "claims/" }
func streamsPrefix(prefix string) string { return prefix + "streams/" }
func epochsPrefix(prefix string) string  { return prefix + "epochs/" }

// last is the final path element of an etcd key.
func last(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }
