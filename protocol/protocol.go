// Package protocol is Banyan's signaling wire format: JSON messages over one
// websocket per peer at the tracker's /ws. Every message is an object with a
// protocol version "v" and a "type"; the rest of its fields depend on the
// type. Decode bounds the size, rejects unknown types and fields, and
// validates every message so handlers can trust what they get.
//
// A session: the peer sends Join (or a seeder sends SeederHello); the tracker
// answers Welcome (or Error and closes). The tracker then sends Assign
// messages as the overlay changes; paired peers exchange Signal messages
// (SDP and ICE candidates) through the tracker, which relays them only
// between a parent and its child. Peers send Stats every few seconds (these
// double as heartbeats), Report when a parent misbehaves, and Leave when they
// go. The tracker sends Keys when content keys rotate. The package builds for
// GOOS=js (the browser peer) and does no I/O.
package protocol

import (
	"errors"
	"strconv"

	"github.com/banyan-live/banyan/internal/errs"
	"github.com/banyan-live/banyan/internal/jsonwire"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxMessage bounds one signaling message. A bad-chunk report carries the
// offending sealed chunk, which is what makes the limit this large; every
// other type has a much smaller limit checked after decoding.
const MaxMessage = 1 << 20

// maxSmall bounds every message but Report.
const maxSmall = 64 << 10

// Message types.
const (
	TypeJoin        = "join"
	TypeSeederHello = "seeder_hello"
	TypeWelcome     = "welcome"
	TypeAssign      = "assign"
	TypeSignal      = "signal"
	TypeStats       = "stats"
	TypeReport      = "report"
	TypeKeys        = "keys"
	TypeLeave       = "leave"
	TypeError       = "error"
	TypeEnded       = "ended"
	TypeICE         = "ice"
	TypeMoved       = "moved"
)

// PeerID names a peer within a tracker. 0 is never a valid peer; the
// seeder's root peer gets an ID like any other.
type PeerID uint64

// String is the ID in decimal, as fmt prints it; the wasm's log lines,
// written without fmt, need the method to show it.
func (id PeerID) String() string { return strconv.FormatUint(uint64(id), 10) }

// Message is implemented by every message type.
type Message interface {
	Type() string
	validate() error
	// writeJSON writes the message's fields (wire.go).
	writeJSON(w *jsonwire.Writer) error
}

// ClientKind says what runs the peer.
type ClientKind string

const (
	KindBrowser ClientKind = "browser"
	KindNative  ClientKind = "native"
	KindRelay   ClientKind = "relay" // a high-capacity edge an operator runs
	// KindSeeder is never a joining peer's kind: the tracker uses it in
	// Assign.ParentKind for the seeder's root peer.
	KindSeeder ClientKind = "seeder"
)

// Join asks to watch (and relay) a stream.
type Join struct {
	Stream string `json:"stream"`
	// Token is the viewer token of a private stream.
	Token string `json:"token,omitempty"`
	// UploadKbps is the declared upload capacity; 0 means unknown. The
	// tracker replaces it with measured upload as stats arrive.
	UploadKbps int `json:"upload_kbps"`
	// NoUpload opts out of relaying: the peer is a leaf everywhere.
	NoUpload bool       `json:"no_upload,omitempty"`
	Kind     ClientKind `json:"kind"`
	// NAT is the peer's own guess ("open", "cone", "symmetric", "" unknown).
	NAT    string `json:"nat,omitempty"`
	Region string `json:"region,omitempty"`
	// Client is a free-form user agent for the dashboard.
	Client string `json:"client,omitempty"`
	// ProofKey is the peer's own Ed25519 public key (base64), with which
	// it signs what it sends its children (proof.go); empty: the tracker
	// can never evict it on its children's word.
	ProofKey string `json:"proof_key,omitempty"`
}

// SeederHello registers a seeder as the root peer of a stream it publishes.
type SeederHello struct {
	Stream string `json:"stream"`
	// SeederID names the seeder; Time (Unix milliseconds) and Nonce make
	// each hello fresh. Auth is SeederMAC over them: the tracker refuses
	// a hello whose time is off by more than SeederAuthSkew or whose
	// nonce it has seen, so a captured hello cannot be replayed to take
	// over a stream's root.
	SeederID   string `json:"seeder_id"`
	Time       int64  `json:"time"`
	Nonce      string `json:"nonce"`
	Auth       string `json:"auth"`
	UploadKbps int    `json:"upload_kbps"`
	Region     string `json:"region,omitempty"`
	// OriginURL is the seeder's HTTP base for chunks and LL-HLS; empty
	// means the tracker's own HTTP origin (the all-in-one `banyan up`).
	OriginURL string `json:"origin_url"`
	// RTMPURL and WHIPURL are where broadcasters publish to this seeder.
	RTMPURL string `json:"rtmp_url,omitempty"`
	WHIPURL string `json:"whip_url,omitempty"`
	// PublicKey is the seeder's Ed25519 public key (base64), which viewers
	// use to verify chunks.
	PublicKey string `json:"public_key"`
	// Keys are the stream's content keys, which the tracker hands only to
	// admitted viewers.
	Keys []ContentKey `json:"keys"`
	// Epoch is the current publishing epoch, 0 before the first publish.
	Epoch uint32 `json:"epoch"`
}

// ContentKey is one master key of a stream (see package chunk), base64.
type ContentKey struct {
	ID   uint32 `json:"id"`
	Key  string `json:"key"`
	Salt string `json:"salt"`
}

// ICEServer is an ICE server as RTCPeerConnection takes it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Welcome admits a peer.
type Welcome struct {
	Peer       PeerID       `json:"peer"`
	ICEServers []ICEServer  `json:"ice_servers"`
	PublicKey  string       `json:"public_key"`
	Keys       []ContentKey `json:"keys"`
	Stripes    int          `json:"stripes"`
	OriginURL  string       `json:"origin_url"`
	Epoch      uint32       `json:"epoch"`
	Live       bool         `json:"live"`
	// StatsMillis is how often the tracker wants Stats; a peer silent for
	// three periods is taken for dead.
	StatsMillis int `json:"stats_ms"`
}

// Assign tells a peer about one edge of the overlay in one stripe: it is the
// child of Parent, or the parent of Child. Remove ends the edge. Parent 0
// with Remove=false means: no parent has room, fetch this stripe from the
// origin until told otherwise.
type Assign struct {
	Stripe int    `json:"stripe"`
	Parent PeerID `json:"parent,omitempty"`
	Child  PeerID `json:"child,omitempty"`
	Remove bool   `json:"remove,omitempty"`
	// Depth is the receiving peer's depth in the stripe tree (root 0).
	Depth int `json:"depth,omitempty"`
	// ParentKind is what Parent is (KindSeeder for the seeder's root
	// peer, KindRelay for an edge; empty for a viewer), so the child can
	// tell peer bytes from seeder bytes (peer.Source).
	ParentKind ClientKind `json:"parent_kind,omitempty"`
}

// Signal carries WebRTC negotiation between two paired peers. The tracker
// fills From and only relays To a peer paired with the sender.
type Signal struct {
	To   PeerID `json:"to,omitempty"`
	From PeerID `json:"from,omitempty"`
	// SDP is an offer or answer; Candidate a trickled ICE candidate
	// (RTCIceCandidateInit JSON). Exactly one is set.
	SDP       *SDP    `json:"sdp,omitempty"`
	Candidate RawJSON `json:"candidate,omitempty"`
	// Attempt numbers the dialer's attempts at a link to To: the offer
	// carries it and every later signal of that attempt echoes it, so an
	// answer or candidate of an attempt that already failed is told apart
	// from the current one's. 0: not known (accepted).
	Attempt uint32 `json:"attempt,omitempty"`
}

// SDP is a session description.
type SDP struct {
	Type string `json:"type"` // "offer" or "answer"
	SDP  string `json:"sdp"`
}

// Stats is a peer's periodic report; it doubles as a heartbeat.
type Stats struct {
	// Bytes received by path since join.
	BytesP2P    uint64 `json:"bytes_p2p"`
	BytesTURN   uint64 `json:"bytes_turn"`
	BytesOrigin uint64 `json:"bytes_origin"`
	// BytesSeeder and BytesEdge are the parts of BytesP2P+BytesTURN the
	// seeder's root peer and operator edges sent (peer.Source): the rest
	// came from other viewers.
	BytesSeeder uint64 `json:"bytes_seeder,omitempty"`
	BytesEdge   uint64 `json:"bytes_edge,omitempty"`
	// BytesUp is what the peer sent to its children since join.
	BytesUp uint64 `json:"bytes_up"`
	// UploadKbps is measured upload over the last period.
	UploadKbps int `json:"upload_kbps"`
	// UplinkKbps is the uplink's capacity as the peer measured it (the
	// drain rate of its links while they were backed up); 0 while it has
	// never been busy enough to tell. The tracker sizes the peer's child
	// slots from it.
	UplinkKbps int `json:"uplink_kbps,omitempty"`
	// UplinkBusy says UplinkKbps was measured with the links backed up
	// (the uplink's capacity); without it UplinkKbps is a lower bound
	// (the links never stayed busy long enough to tell more).
	UplinkBusy bool `json:"uplink_busy,omitempty"`
	// StreamKbps is the stream's bitrate as the peer measured it (the
	// seeder's tells the tracker how big a child slot is).
	StreamKbps int `json:"stream_kbps,omitempty"`
	// PlayoutMS is the adaptive playout delay the peer runs at.
	PlayoutMS int `json:"playout_ms,omitempty"`
	// DupBytes is what the peer received twice since join (wasted upload
	// of its neighbours).
	DupBytes uint64 `json:"dup_bytes,omitempty"`
	BufferMS int    `json:"buffer_ms"`
	// BehindLiveMS is how far playback is behind the newest chunk.
	BehindLiveMS int `json:"behind_live_ms"`
	Stalls       int `json:"stalls"`
	StalledMS    int `json:"stalled_ms"`
	// HopLatencyMS is the median delay from the parent's send to receipt.
	HopLatencyMS int            `json:"hop_latency_ms"`
	Parents      []ParentHealth `json:"parents,omitempty"`
	Children     int            `json:"children"`
	Epoch        uint32         `json:"epoch"`
	LastSeq      uint64         `json:"last_seq"`
}

// ParentHealth is what a child sees of one parent.
type ParentHealth struct {
	Stripe int    `json:"stripe"`
	Parent PeerID `json:"parent"`
	Kbps   int    `json:"kbps"`
	// Path is "direct", "turn", "connecting", or "unknown" (a browser that
	// does not tell which ICE pair it selected).
	Path string `json:"path"`
}

// Report kinds.
const (
	ReportBadChunk = "bad_chunk" // Chunk holds the sealed chunk as received
	ReportSilent   = "silent"    // the parent sends nothing
	ReportNoConn   = "no_connection"
	ReportSlow     = "slow_child" // a parent reporting a child that cannot keep up
	ReportFlood    = "flood"      // a neighbour sends far more than the stream rate
)

// Report accuses a parent (or, for slow_child, a child) of misbehaving.
type Report struct {
	Kind   string `json:"kind"`
	Peer   PeerID `json:"peer"`
	Stripe int    `json:"stripe"`
	// Chunk is the sealed chunk for bad_chunk; the tracker verifies it
	// itself before acting, so a false accuser gains nothing.
	Chunk []byte `json:"chunk,omitempty"`
	// Proof is the accused parent's signed statement that it sent the
	// reporter exactly Chunk (ProofSize bytes, bad_chunk only; proof.go).
	Proof []byte `json:"proof,omitempty"`
}

// Keys delivers the stream's current keys and source: sent on content-key
// rotation and when a seeder (re)registers, which may change the signing
// key, the origin and the epoch.
type Keys struct {
	Keys      []ContentKey `json:"keys"`
	PublicKey string       `json:"public_key,omitempty"`
	OriginURL string       `json:"origin_url,omitempty"`
	Epoch     uint32       `json:"epoch,omitempty"`
	// Live is whether a broadcaster is publishing right now.
	Live bool `json:"live"`
}

// ICE hands a viewer fresh ICE servers: the TURN credentials in a
// welcome are short-lived, and the tracker re-mints them while the session
// lives. A peer uses the newest ones for its next connections.
type ICE struct {
	ICEServers []ICEServer `json:"ice_servers"`
}

// Leave ends a session cleanly.
type Leave struct{}

// Ended tells viewers the broadcast stopped; they wait for a new epoch.
type Ended struct {
	Stream string `json:"stream"`
}

// Error is the tracker's refusal or complaint. Fatal ones are followed by a
// close.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes.
const (
	CodeBadMessage   = "bad_message"
	CodeUnauthorized = "unauthorized"
	CodeNoStream     = "no_stream"
	CodeRateLimited  = "rate_limited"
	CodeNotPaired    = "not_paired"
	CodeFull         = "full"
	CodeEvicted      = "evicted"
	CodeInternal     = "internal"
)

func (Join) Type() string        { return TypeJoin }
func (SeederHello) Type() string { return TypeSeederHello }
func (Welcome) Type() string     { return TypeWelcome }
func (Assign) Type() string      { return TypeAssign }
func (Signal) Type() string      { return TypeSignal }
func (Stats) Type() string       { return TypeStats }
func (Report) Type() string      { return TypeReport }
func (Keys) Type() string        { return TypeKeys }
func (Leave) Type() string       { return TypeLeave }
func (Ended) Type() string       { return TypeEnded }
func (Error) Type() string       { return TypeError }
func (ICE) Type() string         { return TypeICE }
func (Moved) Type() string       { return TypeMoved }

func (e Error) Error() string { return e.Code + ": " + e.Message }

// ValidStream reports whether s is a valid stream name: 1-64 of a-z, 0-9,
// '_' and '-', starting with a letter or digit. (A loop, not a regexp: the
// package is in the browser's wasm, where regexp costs 50 KB.)
func ValidStream(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Sanity bounds shared by validation.
const (
	MaxStripes    = 16
	maxUploadKbps = 10_000_000 // 10 Gbit/s: anything above is a lie
	maxShortText  = 256
	maxSDP        = 32 << 10
	maxCandidate  = 2 << 10
	maxKeys       = 8
)

func (m Join) validate() error {
	if !ValidStream(m.Stream) {
		return errors.New("join: invalid stream name")
	}
	if m.UploadKbps < 0 || m.UploadKbps > maxUploadKbps {
		return errors.New("join: impossible upload_kbps")
	}
	switch m.Kind {
	case KindBrowser, KindNative, KindRelay:
	default:
		return errors.New("join: unknown kind " + strconv.Quote(string(m.Kind)))
	}
	switch m.NAT {
	case "", "open", "cone", "symmetric":
	default:
		return errors.New("join: unknown nat " + strconv.Quote(m.NAT))
	}
	if len(m.Token) > 2048 || len(m.Region) > 64 || len(m.Client) > maxShortText {
		return errors.New("join: field too long")
	}
	if m.ProofKey != "" {
		if _, err := ParseProofKey(m.ProofKey); err != nil {
			return errs.Wrap("join: ", err, "")
		}
	}
	return nil
}

func (m SeederHello) validate() error {
	if !ValidStream(m.Stream) {
		return errors.New("seeder_hello: invalid stream name")
	}
	if m.UploadKbps <= 0 || m.UploadKbps > maxUploadKbps {
		return errors.New("seeder_hello: impossible upload_kbps")
	}
	if m.Auth == "" || m.PublicKey == "" || m.SeederID == "" || m.Nonce == "" || m.Time <= 0 {
		return errors.New("seeder_hello: seeder_id, time, nonce, auth and public_key are required")
	}
	if !ValidSeederID(m.SeederID) || len(m.Nonce) > 64 {
		return errors.New("seeder_hello: bad seeder_id or nonce")
	}
	if len(m.Auth) > 512 || len(m.PublicKey) > 128 || len(m.OriginURL) > 1024 || len(m.RTMPURL) > 1024 || len(m.WHIPURL) > 1024 || len(m.Region) > 64 {
		return errors.New("seeder_hello: field too long")
	}
	return validateKeys(m.Keys)
}

func validateKeys(keys []ContentKey) error {
	if len(keys) > maxKeys {
		return errors.New("too many content keys")
	}
	for _, k := range keys {
		if len(k.Key) > 64 || len(k.Salt) > 64 {
			return errors.New("content key too long")
		}
	}
	return nil
}

func (m ICE) validate() error {
	if len(m.ICEServers) > 8 {
		return errors.New("ice: too many servers")
	}
	return nil
}

func (m Welcome) validate() error {
	if m.Peer == 0 || m.Stripes < 1 || m.Stripes > MaxStripes {
		return errors.New("welcome: invalid peer or stripes")
	}
	if len(m.ICEServers) > 8 {
		return errors.New("welcome: too many ICE servers")
	}
	return validateKeys(m.Keys)
}

func (m Assign) validate() error {
	if m.Stripe < 0 || m.Stripe >= MaxStripes || m.Depth < 0 {
		return errors.New("assign: invalid stripe or depth")
	}
	if m.Parent != 0 && m.Child != 0 {
		return errors.New("assign: parent and child are exclusive")
	}
	switch m.ParentKind {
	case "", KindBrowser, KindNative, KindRelay, KindSeeder:
	default:
		return errors.New("assign: unknown parent_kind " + strconv.Quote(string(m.ParentKind)))
	}
	return nil
}

func (m Signal) validate() error {
	if (m.SDP == nil) == (len(m.Candidate) == 0) {
		return errors.New("signal: exactly one of sdp and candidate")
	}
	if m.SDP != nil {
		if m.SDP.Type != "offer" && m.SDP.Type != "answer" {
			return errors.New("signal: sdp type must be offer or answer")
		}
		if len(m.SDP.SDP) == 0 || len(m.SDP.SDP) > maxSDP {
			return errors.New("signal: sdp empty or too large")
		}
	}
	if len(m.Candidate) > maxCandidate {
		return errors.New("signal: candidate too large")
	}
	return nil
}

func (m Stats) validate() error {
	if m.UploadKbps < 0 || m.UploadKbps > maxUploadKbps || m.UplinkKbps < 0 || m.UplinkKbps > maxUploadKbps || m.StreamKbps < 0 || m.StreamKbps > maxUploadKbps || m.PlayoutMS < 0 || m.BufferMS < 0 || m.Stalls < 0 ||
		m.StalledMS < 0 || m.HopLatencyMS < 0 || m.Children < 0 || m.BehindLiveMS < 0 {
		return errors.New("stats: negative or impossible value")
	}
	// The seeder's and edges' shares are parts of the WebRTC bytes
	// (compared without overflow: a hostile peer picks the values).
	if webrtc := m.BytesP2P + m.BytesTURN; webrtc < m.BytesP2P || m.BytesSeeder > webrtc || m.BytesEdge > webrtc-m.BytesSeeder {
		return errors.New("stats: seeder and edge bytes exceed the WebRTC bytes")
	}
	if len(m.Parents) > MaxStripes {
		return errors.New("stats: too many parents")
	}
	for _, p := range m.Parents {
		if p.Stripe < 0 || p.Stripe >= MaxStripes || p.Kbps < 0 || len(p.Path) > 16 {
			return errors.New("stats: invalid parent entry")
		}
	}
	return nil
}

func (m Report) validate() error {
	switch m.Kind {
	case ReportBadChunk:
		if len(m.Chunk) == 0 {
			return errors.New("report: bad_chunk without the chunk")
		}
		if len(m.Proof) != 0 && len(m.Proof) != ProofSize {
			return errors.New("report: proof of the wrong size")
		}
	case ReportSilent, ReportNoConn, ReportSlow, ReportFlood:
		if len(m.Chunk) != 0 || len(m.Proof) != 0 {
			return errors.New("report: chunk and proof only go with bad_chunk")
		}
	default:
		return errors.New("report: unknown kind " + strconv.Quote(m.Kind))
	}
	if m.Peer == 0 || m.Stripe < 0 || m.Stripe >= MaxStripes {
		return errors.New("report: invalid peer or stripe")
	}
	return nil
}

func (m Keys) validate() error  { return validateKeys(m.Keys) }
func (Leave) validate() error   { return nil }
func (m Ended) validate() error { return nil }
func (m Error) validate() error {
	if m.Code == "" || len(m.Code) > 64 || len(m.Message) > 1024 {
		return errors.New("error: invalid code or message")
	}
	return nil
}

// ErrTooLarge is returned for a message over MaxMessage.
var ErrTooLarge = errors.New("protocol: message too large")

// Encode marshals m with its version and type: {"v":1,"type":"…", then
// the message's own fields, as encoding/json writes the struct (wire.go).
func Encode(m Message) ([]byte, error) {
	w := jsonwire.Writer{B: make([]byte, 0, 128)}
	w.B = append(w.B, `{"v":`+strconv.Itoa(Version)+`,"type":`...)
	w.B = jsonwire.AppendString(w.B, m.Type())
	w.Continue()
	if err := m.writeJSON(&w); err != nil {
		return nil, errs.Wrap("protocol: encode "+m.Type()+": ", err, "")
	}
	w.Close()
	return w.B, nil
}

// Decode parses and validates one message.
func Decode(data []byte) (Message, error) {
	if len(data) > MaxMessage {
		return nil, ErrTooLarge
	}
	var env envelope
	if err := readWire(data, &env); err != nil {
		return nil, errs.Wrap("protocol: invalid JSON: ", err, "")
	}
	if env.V != Version {
		return nil, errors.New("protocol: unsupported version " + strconv.Itoa(env.V) + " (want " + strconv.Itoa(Version) + ")")
	}
	var m wireMessage
	switch env.Type {
	case TypeJoin:
		m = &Join{}
	case TypeSeederHello:
		m = &SeederHello{}
	case TypeWelcome:
		m = &Welcome{}
	case TypeAssign:
		m = &Assign{}
	case TypeSignal:
		m = &Signal{}
	case TypeStats:
		m = &Stats{}
	case TypeReport:
		m = &Report{}
	case TypeKeys:
		m = &Keys{}
	case TypeLeave:
		m = &Leave{}
	case TypeEnded:
		m = &Ended{}
	case TypeError:
		m = &Error{}
	case TypeICE:
		m = &ICE{}
	case TypeMoved:
		m = &Moved{}
	default:
		return nil, errors.New("protocol: unknown message type " + strconv.Quote(env.Type))
	}
	if env.Type != TypeReport && len(data) > maxSmall {
		return nil, ErrTooLarge
	}
	// Unknown fields are ignored, not refused: a newer peer may add fields
	// within the same version, and every field we do read is validated.
	if err := readWire(data, m); err != nil {
		return nil, errs.Wrap("protocol: "+env.Type+": ", err, "")
	}
	// Return values, not pointers, so a type switch reads naturally.
	msg := deref(m)
	if msg == nil {
		return nil, errors.New("protocol: " + env.Type + ": no message value")
	}
	if err := msg.validate(); err != nil {
		return nil, errs.Wrap("protocol: ", err, "")
	}
	return msg, nil
}

// readWire reads one JSON value, and nothing after it, into m.
func readWire(data []byte, m wireMessage) error {
	r := jsonwire.NewReader(data)
	m.readJSON(r)
	return r.Done()
}

func deref(m wireMessage) Message {
	switch v := m.(type) {
	case *Join:
		return *v
	case *SeederHello:
		return *v
	case *Welcome:
		return *v
	case *Assign:
		return *v
	case *Signal:
		return *v
	case *Stats:
		return *v
	case *Report:
		return *v
	case *Keys:
		return *v
	case *Leave:
		return *v
	case *Ended:
		return *v
	case *Error:
		return *v
	case *ICE:
		return *v
	case *Moved:
		return *v
	}
	return nil
}
