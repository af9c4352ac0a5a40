package tracker

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"

	"github.com/banyan-live/banyan/chunk"
	"github.com/banyan-live/banyan/protocol"
)

// maxOldPubs is how many earlier seeder keys a stream remembers.
const maxOldPubs = 4

// rememberPubLocked keeps the current seeder key among the old ones when
// a seeder registers with another (pub).
func (st *streamState) rememberPubLocked(pub ed25519.PublicKey) {
	if st.pub == nil || st.pub.Equal(pub) {
		return
	}
	st.oldPubs = append(st.oldPubs, st.pub)
	if len(st.oldPubs) > maxOldPubs {
		st.oldPubs = st.oldPubs[len(st.oldPubs)-maxOldPubs:]
	}
}

// genuineLocked reports whether sealed is a chunk the stream's seeder
// signed, under its current key or one it had before (peers switch keys
// one by one: a chunk under the last key is no forgery).
func (st *streamState) genuineLocked(sealed []byte) bool {
	if _, err := chunk.Verify(st.pub, st.name, sealed); err == nil {
		return true
	}
	for _, pub := range st.oldPubs {
		if _, err := chunk.Verify(pub, st.name, sealed); err == nil {
			return true
		}
	}
	return false
}

// provedLocked evicts the accused of a bad-chunk report when the report
// proves it sent the bytes (issue 18 #2): its delivery statement, signed
// with the key it joined with, names the reporter and exactly the
// reported bytes, which the caller found to be no chunk the seeder
// signed. An honest parent signs only chunks it verified, so no child can
// make such a proof about it; without one the accused is only demoted.
// The caller has checked that the accused is the reporter's parent.
func (st *streamState) provedLocked(accused, from *session, r protocol.Report) bool {
	if accused.proofKey == nil || len(r.Proof) == 0 || accused.isSeeder {
		return false
	}
	if !protocol.CheckProof(accused.proofKey, st.name, from.id, r.Chunk, r.Proof) {
		st.t.log.Info("bad-chunk report with a proof that does not check", "stream", st.name, "parent", accused.id, "child", from.id)
		return false
	}
	if accused.evicted {
		return true
	}
	accused.evicted = true
	d, _, _ := protocol.ParseProof(r.Proof, from.id)
	h := sha256.Sum256(r.Chunk)
	// The audit trail of an eviction on proof: who, by whose report, for
	// which chunk, and the hash it signed (the report's bytes hash to it).
	st.t.log.Warn("evicting peer: it signed the delivery of a forged chunk", "stream", st.name, "peer", accused.id,
		"remote", accused.remote, "reporter", from.id, "epoch", d.Epoch, "seq", d.Seq, "sha256", hex.EncodeToString(h[:]))
	st.t.metrics.reports.WithLabelValues("bad_chunk_proved").Inc()
	st.event(Event{Kind: EventEvict, Peer: accused.id, Detail: "signed a forged chunk"})
	accused.evict("signed a forged chunk")
	return true
}
