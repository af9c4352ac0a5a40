package protocol

// The JSON of every message, written and read by hand (internal/jsonwire)
// instead of by encoding/json: reflection-driven JSON was a fifth of the
// browser viewer's wasm (docs/wasm-size.md). The struct types and their
// json tags in protocol.go stay the one description of the wire format:
// wire_test.go checks that these functions and encoding/json write the
// same bytes and read the same values for every message type, and
// FuzzDecode compares the two readers on arbitrary input.

import "github.com/banyan-live/banyan/internal/jsonwire"

// RawJSON is a JSON value carried as it is (a Signal's ICE candidate):
// encoding/json's RawMessage, declared here so that the package (and the
// browser's wasm) does not link encoding/json for its type.
type RawJSON []byte

// MarshalJSON returns m, or null when m is nil.
func (m RawJSON) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	return m, nil
}

// UnmarshalJSON stores a copy of data.
func (m *RawJSON) UnmarshalJSON(data []byte) error {
	*m = append((*m)[:0], data...)
	return nil
}

// wireMessage is a message's pointer: it reads its fields.
type wireMessage interface {
	readJSON(r *jsonwire.Reader)
}

func (m Join) writeJSON(w *jsonwire.Writer) error {
	w.Key("stream")
	w.String(m.Stream)
	if m.Token != "" {
		w.Key("token")
		w.String(m.Token)
	}
	w.Key("upload_kbps")
	w.Int(int64(m.UploadKbps))
	if m.NoUpload {
		w.Key("no_upload")
		w.Bool(true)
	}
	w.Key("kind")
	w.String(string(m.Kind))
	if m.NAT != "" {
		w.Key("nat")
		w.String(m.NAT)
	}
	if m.Region != "" {
		w.Key("region")
		w.String(m.Region)
	}
	if m.Client != "" {
		w.Key("client")
		w.String(m.Client)
	}
	if m.ProofKey != "" {
		w.Key("proof_key")
		w.String(m.ProofKey)
	}
	return nil
}

func (m *Join) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "stream":
			r.String(&m.Stream)
		case "token":
			r.String(&m.Token)
		case "upload_kbps":
			readInt(r, &m.UploadKbps)
		case "no_upload":
			readBool(r, &m.NoUpload)
		case "kind":
			readKind(r, &m.Kind)
		case "nat":
			r.String(&m.NAT)
		case "region":
			r.String(&m.Region)
		case "client":
			r.String(&m.Client)
		case "proof_key":
			r.String(&m.ProofKey)
		default:
			r.Skip()
		}
	})
}

func (m SeederHello) writeJSON(w *jsonwire.Writer) error {
	w.Key("stream")
	w.String(m.Stream)
	w.Key("seeder_id")
	w.String(m.SeederID)
	w.Key("time")
	w.Int(m.Time)
	w.Key("nonce")
	w.String(m.Nonce)
	w.Key("auth")
	w.String(m.Auth)
	w.Key("upload_kbps")
	w.Int(int64(m.UploadKbps))
	if m.Region != "" {
		w.Key("region")
		w.String(m.Region)
	}
	w.Key("origin_url")
	w.String(m.OriginURL)
	if m.RTMPURL != "" {
		w.Key("rtmp_url")
		w.String(m.RTMPURL)
	}
	if m.WHIPURL != "" {
		w.Key("whip_url")
		w.String(m.WHIPURL)
	}
	w.Key("public_key")
	w.String(m.PublicKey)
	w.Key("keys")
	writeKeys(w, m.Keys)
	w.Key("epoch")
	w.Uint(uint64(m.Epoch))
	return nil
}

func (m *SeederHello) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "stream":
			r.String(&m.Stream)
		case "seeder_id":
			r.String(&m.SeederID)
		case "time":
			if v, ok := r.Int(64); ok {
				m.Time = v
			}
		case "nonce":
			r.String(&m.Nonce)
		case "auth":
			r.String(&m.Auth)
		case "upload_kbps":
			readInt(r, &m.UploadKbps)
		case "region":
			r.String(&m.Region)
		case "origin_url":
			r.String(&m.OriginURL)
		case "rtmp_url":
			r.String(&m.RTMPURL)
		case "whip_url":
			r.String(&m.WHIPURL)
		case "public_key":
			r.String(&m.PublicKey)
		case "keys":
			readKeys(r, &m.Keys)
		case "epoch":
			readUint32(r, &m.Epoch)
		default:
			r.Skip()
		}
	})
}

func writeKeys(w *jsonwire.Writer, keys []ContentKey) {
	if keys == nil {
		w.Null()
		return
	}
	w.OpenArray()
	for _, k := range keys {
		w.Open()
		w.Key("id")
		w.Uint(uint64(k.ID))
		w.Key("key")
		w.String(k.Key)
		w.Key("salt")
		w.String(k.Salt)
		w.Close()
	}
	w.CloseArray()
}

func readKeys(r *jsonwire.Reader, keys *[]ContentKey) {
	jsonwire.Slice(r, keys, func(r *jsonwire.Reader, k *ContentKey) {
		r.Object(func(key []byte) {
			switch string(key) {
			case "id":
				readUint32(r, &k.ID)
			case "key":
				r.String(&k.Key)
			case "salt":
				r.String(&k.Salt)
			default:
				r.Skip()
			}
		})
	})
}

func writeICEServers(w *jsonwire.Writer, servers []ICEServer) {
	if servers == nil {
		w.Null()
		return
	}
	w.OpenArray()
	for _, s := range servers {
		w.Open()
		w.Key("urls")
		w.Strings(s.URLs)
		if s.Username != "" {
			w.Key("username")
			w.String(s.Username)
		}
		if s.Credential != "" {
			w.Key("credential")
			w.String(s.Credential)
		}
		w.Close()
	}
	w.CloseArray()
}

func readICEServers(r *jsonwire.Reader, servers *[]ICEServer) {
	jsonwire.Slice(r, servers, func(r *jsonwire.Reader, s *ICEServer) {
		r.Object(func(key []byte) {
			switch string(key) {
			case "urls":
				jsonwire.Slice(r, &s.URLs, (*jsonwire.Reader).String)
			case "username":
				r.String(&s.Username)
			case "credential":
				r.String(&s.Credential)
			default:
				r.Skip()
			}
		})
	})
}

func (m Welcome) writeJSON(w *jsonwire.Writer) error {
	w.Key("peer")
	w.Uint(uint64(m.Peer))
	w.Key("ice_servers")
	writeICEServers(w, m.ICEServers)
	w.Key("public_key")
	w.String(m.PublicKey)
	w.Key("keys")
	writeKeys(w, m.Keys)
	w.Key("stripes")
	w.Int(int64(m.Stripes))
	w.Key("origin_url")
	w.String(m.OriginURL)
	w.Key("epoch")
	w.Uint(uint64(m.Epoch))
	w.Key("live")
	w.Bool(m.Live)
	w.Key("stats_ms")
	w.Int(int64(m.StatsMillis))
	return nil
}

func (m *Welcome) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "peer":
			readPeer(r, &m.Peer)
		case "ice_servers":
			readICEServers(r, &m.ICEServers)
		case "public_key":
			r.String(&m.PublicKey)
		case "keys":
			readKeys(r, &m.Keys)
		case "stripes":
			readInt(r, &m.Stripes)
		case "origin_url":
			r.String(&m.OriginURL)
		case "epoch":
			readUint32(r, &m.Epoch)
		case "live":
			readBool(r, &m.Live)
		case "stats_ms":
			readInt(r, &m.StatsMillis)
		default:
			r.Skip()
		}
	})
}

func (m Assign) writeJSON(w *jsonwire.Writer) error {
	w.Key("stripe")
	w.Int(int64(m.Stripe))
	if m.Parent != 0 {
		w.Key("parent")
		w.Uint(uint64(m.Parent))
	}
	if m.Child != 0 {
		w.Key("child")
		w.Uint(uint64(m.Child))
	}
	if m.Remove {
		w.Key("remove")
		w.Bool(true)
	}
	if m.Depth != 0 {
		w.Key("depth")
		w.Int(int64(m.Depth))
	}
	if m.ParentKind != "" {
		w.Key("parent_kind")
		w.String(string(m.ParentKind))
	}
	return nil
}

func (m *Assign) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "stripe":
			readInt(r, &m.Stripe)
		case "parent":
			readPeer(r, &m.Parent)
		case "child":
			readPeer(r, &m.Child)
		case "remove":
			readBool(r, &m.Remove)
		case "depth":
			readInt(r, &m.Depth)
		case "parent_kind":
			readKind(r, &m.ParentKind)
		default:
			r.Skip()
		}
	})
}

func (m Signal) writeJSON(w *jsonwire.Writer) error {
	if m.To != 0 {
		w.Key("to")
		w.Uint(uint64(m.To))
	}
	if m.From != 0 {
		w.Key("from")
		w.Uint(uint64(m.From))
	}
	if m.SDP != nil {
		w.Key("sdp")
		w.Open()
		w.Key("type")
		w.String(m.SDP.Type)
		w.Key("sdp")
		w.String(m.SDP.SDP)
		w.Close()
	}
	if len(m.Candidate) != 0 {
		w.Key("candidate")
		if err := w.Raw(m.Candidate); err != nil {
			return err
		}
	}
	if m.Attempt != 0 {
		w.Key("attempt")
		w.Uint(uint64(m.Attempt))
	}
	return nil
}

func (m *Signal) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "to":
			readPeer(r, &m.To)
		case "from":
			readPeer(r, &m.From)
		case "sdp":
			if r.Null() {
				m.SDP = nil
				return
			}
			if m.SDP == nil {
				m.SDP = new(SDP)
			}
			sdp := m.SDP
			r.Object(func(key []byte) {
				switch string(key) {
				case "type":
					r.String(&sdp.Type)
				case "sdp":
					r.String(&sdp.SDP)
				default:
					r.Skip()
				}
			})
		case "candidate":
			r.Raw((*[]byte)(&m.Candidate))
		case "attempt":
			readUint32(r, &m.Attempt)
		default:
			r.Skip()
		}
	})
}

func (m Stats) writeJSON(w *jsonwire.Writer) error {
	w.Key("bytes_p2p")
	w.Uint(m.BytesP2P)
	w.Key("bytes_turn")
	w.Uint(m.BytesTURN)
	w.Key("bytes_origin")
	w.Uint(m.BytesOrigin)
	if m.BytesSeeder != 0 {
		w.Key("bytes_seeder")
		w.Uint(m.BytesSeeder)
	}
	if m.BytesEdge != 0 {
		w.Key("bytes_edge")
		w.Uint(m.BytesEdge)
	}
	w.Key("bytes_up")
	w.Uint(m.BytesUp)
	w.Key("upload_kbps")
	w.Int(int64(m.UploadKbps))
	if m.UplinkKbps != 0 {
		w.Key("uplink_kbps")
		w.Int(int64(m.UplinkKbps))
	}
	if m.UplinkBusy {
		w.Key("uplink_busy")
		w.Bool(true)
	}
	if m.StreamKbps != 0 {
		w.Key("stream_kbps")
		w.Int(int64(m.StreamKbps))
	}
	if m.PlayoutMS != 0 {
		w.Key("playout_ms")
		w.Int(int64(m.PlayoutMS))
	}
	if m.DupBytes != 0 {
		w.Key("dup_bytes")
		w.Uint(m.DupBytes)
	}
	w.Key("buffer_ms")
	w.Int(int64(m.BufferMS))
	w.Key("behind_live_ms")
	w.Int(int64(m.BehindLiveMS))
	w.Key("stalls")
	w.Int(int64(m.Stalls))
	w.Key("stalled_ms")
	w.Int(int64(m.StalledMS))
	w.Key("hop_latency_ms")
	w.Int(int64(m.HopLatencyMS))
	if len(m.Parents) != 0 {
		w.Key("parents")
		w.OpenArray()
		for _, p := range m.Parents {
			w.Open()
			w.Key("stripe")
			w.Int(int64(p.Stripe))
			w.Key("parent")
			w.Uint(uint64(p.Parent))
			w.Key("kbps")
			w.Int(int64(p.Kbps))
			w.Key("path")
			w.String(p.Path)
			w.Close()
		}
		w.CloseArray()
	}
	w.Key("children")
	w.Int(int64(m.Children))
	w.Key("epoch")
	w.Uint(uint64(m.Epoch))
	w.Key("last_seq")
	w.Uint(m.LastSeq)
	return nil
}

func (m *Stats) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "bytes_p2p":
			readUint64(r, &m.BytesP2P)
		case "bytes_turn":
			readUint64(r, &m.BytesTURN)
		case "bytes_origin":
			readUint64(r, &m.BytesOrigin)
		case "bytes_seeder":
			readUint64(r, &m.BytesSeeder)
		case "bytes_edge":
			readUint64(r, &m.BytesEdge)
		case "bytes_up":
			readUint64(r, &m.BytesUp)
		case "upload_kbps":
			readInt(r, &m.UploadKbps)
		case "uplink_kbps":
			readInt(r, &m.UplinkKbps)
		case "uplink_busy":
			readBool(r, &m.UplinkBusy)
		case "stream_kbps":
			readInt(r, &m.StreamKbps)
		case "playout_ms":
			readInt(r, &m.PlayoutMS)
		case "dup_bytes":
			readUint64(r, &m.DupBytes)
		case "buffer_ms":
			readInt(r, &m.BufferMS)
		case "behind_live_ms":
			readInt(r, &m.BehindLiveMS)
		case "stalls":
			readInt(r, &m.Stalls)
		case "stalled_ms":
			readInt(r, &m.StalledMS)
		case "hop_latency_ms":
			readInt(r, &m.HopLatencyMS)
		case "parents":
			jsonwire.Slice(r, &m.Parents, func(r *jsonwire.Reader, p *ParentHealth) {
				r.Object(func(key []byte) {
					switch string(key) {
					case "stripe":
						readInt(r, &p.Stripe)
					case "parent":
						readPeer(r, &p.Parent)
					case "kbps":
						readInt(r, &p.Kbps)
					case "path":
						r.String(&p.Path)
					default:
						r.Skip()
					}
				})
			})
		case "children":
			readInt(r, &m.Children)
		case "epoch":
			readUint32(r, &m.Epoch)
		case "last_seq":
			readUint64(r, &m.LastSeq)
		default:
			r.Skip()
		}
	})
}

func (m Report) writeJSON(w *jsonwire.Writer) error {
	w.Key("kind")
	w.String(m.Kind)
	w.Key("peer")
	w.Uint(uint64(m.Peer))
	w.Key("stripe")
	w.Int(int64(m.Stripe))
	if len(m.Chunk) != 0 {
		w.Key("chunk")
		w.Bytes(m.Chunk)
	}
	if len(m.Proof) != 0 {
		w.Key("proof")
		w.Bytes(m.Proof)
	}
	return nil
}

func (m *Report) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "kind":
			r.String(&m.Kind)
		case "peer":
			readPeer(r, &m.Peer)
		case "stripe":
			readInt(r, &m.Stripe)
		case "chunk":
			r.Bytes(&m.Chunk)
		case "proof":
			r.Bytes(&m.Proof)
		default:
			r.Skip()
		}
	})
}

func (m Keys) writeJSON(w *jsonwire.Writer) error {
	w.Key("keys")
	writeKeys(w, m.Keys)
	if m.PublicKey != "" {
		w.Key("public_key")
		w.String(m.PublicKey)
	}
	if m.OriginURL != "" {
		w.Key("origin_url")
		w.String(m.OriginURL)
	}
	if m.Epoch != 0 {
		w.Key("epoch")
		w.Uint(uint64(m.Epoch))
	}
	w.Key("live")
	w.Bool(m.Live)
	return nil
}

func (m *Keys) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "keys":
			readKeys(r, &m.Keys)
		case "public_key":
			r.String(&m.PublicKey)
		case "origin_url":
			r.String(&m.OriginURL)
		case "epoch":
			readUint32(r, &m.Epoch)
		case "live":
			readBool(r, &m.Live)
		default:
			r.Skip()
		}
	})
}

func (m ICE) writeJSON(w *jsonwire.Writer) error {
	w.Key("ice_servers")
	writeICEServers(w, m.ICEServers)
	return nil
}

func (m *ICE) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		if string(key) == "ice_servers" {
			readICEServers(r, &m.ICEServers)
		} else {
			r.Skip()
		}
	})
}

func (Leave) writeJSON(*jsonwire.Writer) error { return nil }

func (m *Leave) readJSON(r *jsonwire.Reader) {
	r.Object(func([]byte) { r.Skip() })
}

func (m Ended) writeJSON(w *jsonwire.Writer) error {
	w.Key("stream")
	w.String(m.Stream)
	return nil
}

func (m *Ended) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		if string(key) == "stream" {
			r.String(&m.Stream)
		} else {
			r.Skip()
		}
	})
}

func (m Error) writeJSON(w *jsonwire.Writer) error {
	w.Key("code")
	w.String(m.Code)
	w.Key("message")
	w.String(m.Message)
	return nil
}

func (m *Error) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "code":
			r.String(&m.Code)
		case "message":
			r.String(&m.Message)
		default:
			r.Skip()
		}
	})
}

func (m Moved) writeJSON(w *jsonwire.Writer) error {
	w.Key("url")
	w.String(m.URL)
	return nil
}

func (m *Moved) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		if string(key) == "url" {
			r.String(&m.URL)
		} else {
			r.Skip()
		}
	})
}

// envelope is what every message starts with.
type envelope struct {
	V    int    `json:"v"`
	Type string `json:"type"`
}

func (e *envelope) readJSON(r *jsonwire.Reader) {
	r.Object(func(key []byte) {
		switch string(key) {
		case "v":
			readInt(r, &e.V)
		case "type":
			r.String(&e.Type)
		default:
			r.Skip()
		}
	})
}

// The readers below keep the value on null, as encoding/json does.

func readInt(r *jsonwire.Reader, p *int) {
	if v, ok := r.Int(64); ok {
		*p = int(v)
	}
}

func readUint32(r *jsonwire.Reader, p *uint32) {
	if v, ok := r.Uint(32); ok {
		*p = uint32(v)
	}
}

func readUint64(r *jsonwire.Reader, p *uint64) {
	if v, ok := r.Uint(64); ok {
		*p = v
	}
}

func readPeer(r *jsonwire.Reader, p *PeerID) {
	if v, ok := r.Uint(64); ok {
		*p = PeerID(v)
	}
}

func readBool(r *jsonwire.Reader, p *bool) {
	if v, ok := r.Bool(); ok {
		*p = v
	}
}

func readKind(r *jsonwire.Reader, p *ClientKind) {
	r.String((*string)(p))
}
