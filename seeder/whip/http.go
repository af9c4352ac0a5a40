package whip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// Media types of the WHIP requests.
const (
	typeSDP     = "application/sdp"
	typeSDPFrag = "application/trickle-ice-sdpfrag"
)

const (
	maxKeyLen     = 512
	maxStreamName = 128
	// deleteWait bounds how long DELETE waits for the session to end, so
	// that the publish is over (End called) when the client hears 200.
	deleteWait = 5 * time.Second
)

// Handler serves POST and OPTIONS on <prefix><stream> and PATCH, DELETE
// and OPTIONS on <prefix><stream>/<session>. Mount it at the prefix:
// mux.Handle("/whip/", srv.Handler()).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", s.cfg.AllowOrigin)
	h.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch, Accept-Post")
	if s.cfg.AllowOrigin != "*" {
		h.Add("Vary", "Origin")
	}
	rest, ok := strings.CutPrefix(r.URL.Path, s.cfg.PathPrefix)
	if !ok {
		s.fail(w, refuse(http.StatusNotFound, "not_found", "not a WHIP endpoint"))
		return
	}
	stream, id, hasID := strings.Cut(rest, "/")
	if !validName(stream) || hasID && !validID(id) {
		s.fail(w, refuse(http.StatusNotFound, "not_found", "no such WHIP endpoint or session"))
		return
	}
	switch {
	case r.Method == http.MethodOptions:
		s.handleOptions(w, r, stream, hasID)
	case !hasID && r.Method == http.MethodPost:
		s.handlePost(w, r, stream)
	case hasID && r.Method == http.MethodPatch:
		s.handlePatch(w, r, stream, id)
	case hasID && r.Method == http.MethodDelete:
		s.handleDelete(w, r, stream, id)
	default:
		allow := "POST, OPTIONS"
		if hasID {
			allow = "PATCH, DELETE, OPTIONS"
		}
		h.Set("Allow", allow)
		s.fail(w, refuse(http.StatusMethodNotAllowed, "method", "method %s not allowed here (allowed: %s)", r.Method, allow))
	}
}

// validName accepts the stream names the key store does, and a little
// more; the key decides which stream it is anyway.
func validName(n string) bool {
	if n == "" || len(n) > maxStreamName {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return n != "." && n != ".."
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

func (s *Server) fail(w http.ResponseWriter, e *httpError) {
	s.refused(e.reason)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="whip"`)
	}
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, e.msg, e.status)
}

// authorize checks the bearer key and that it is the key of stream.
func (s *Server) authorize(ctx context.Context, r *http.Request, stream string) (g Grant, e *httpError) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return Grant{}, refuse(http.StatusUnauthorized, "no_key", "missing Authorization: Bearer <stream key>")
	}
	scheme, key, ok := strings.Cut(auth, " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return Grant{}, refuse(http.StatusUnauthorized, "no_key", "the Authorization header must be: Bearer <stream key>")
	}
	if len(key) > maxKeyLen {
		return Grant{}, refuse(http.StatusUnauthorized, "bad_key", "stream key refused")
	}
	g, err := s.cfg.Authorize(ctx, key)
	switch {
	case errors.Is(err, ErrUnavailable):
		s.log.Warn("WHIP authorization unavailable", "err", err)
		return Grant{}, refuse(http.StatusServiceUnavailable, "auth_unavailable", "stream keys cannot be checked right now; try again")
	case err != nil:
		return Grant{}, refuse(http.StatusUnauthorized, "bad_key", "stream key refused")
	case g.Stream != stream:
		return Grant{}, refuse(http.StatusForbidden, "wrong_stream", "this stream key is not the key of stream %q", stream)
	}
	return g, nil
}

func checkType(r *http.Request, want string) *httpError {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		return refuse(http.StatusUnsupportedMediaType, "content_type", "Content-Type must be %s", want)
	}
	return nil
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *httpError) {
	if r.ContentLength > s.cfg.MaxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "body of %d bytes exceeds %d", r.ContentLength, s.cfg.MaxBody)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, refuse(http.StatusRequestEntityTooLarge, "too_large", "body exceeds %d bytes", s.cfg.MaxBody)
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "read", "reading the body: %v", err)
	case len(b) == 0:
		return nil, refuse(http.StatusBadRequest, "empty", "empty body")
	}
	return b, nil
}

// handleOptions answers CORS preflights, and tells an authorized WHIP
// client (an OPTIONS with its key, not a preflight) its ICE servers.
// Preflights carry no credentials, so they never get TURN credentials.
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request, stream string, hasID bool) {
	h := w.Header()
	if hasID {
		h.Set("Allow", "PATCH, DELETE, OPTIONS")
		h.Set("Accept-Patch", typeSDPFrag)
		h.Set("Access-Control-Allow-Methods", "PATCH, DELETE, OPTIONS")
	} else {
		h.Set("Allow", "POST, OPTIONS")
		h.Set("Accept-Post", typeSDP)
		h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	}
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "86400")
	if r.Header.Get("Access-Control-Request-Method") == "" && r.Header.Get("Authorization") != "" {
		if _, e := s.authorize(r.Context(), r, stream); e != nil {
			s.fail(w, e)
			return
		}
		s.setLinks(h, stream)
	}
	w.WriteHeader(http.StatusNoContent)
}

// setLinks advertises the ICE servers (RFC 9725 section 4.6).
func (s *Server) setLinks(h http.Header, stream string) {
	if s.cfg.ICEServers == nil {
		return
	}
	for _, srv := range s.cfg.ICEServers(stream) {
		for _, u := range srv.URLs {
			if l, ok := linkHeader(u, srv); ok {
				h.Add("Link", l)
			}
		}
	}
}

// linkHeader formats one ICE server URL as an RFC 8288 link; a value that
// could break the header is left out.
func linkHeader(url string, srv webrtc.ICEServer) (string, bool) {
	if url == "" || strings.ContainsAny(url, "<>\"\r\n\t ,;") {
		return "", false
	}
	l := "<" + url + `>; rel="ice-server"`
	cred, _ := srv.Credential.(string)
	if srv.Username != "" || cred != "" {
		u, ok1 := quote(srv.Username)
		c, ok2 := quote(cred)
		if !ok1 || !ok2 {
			return "", false
		}
		l += `; username=` + u + `; credential=` + c + `; credential-type="password"`
	}
	return l, true
}

// quote makes an RFC 9110 quoted-string; control characters refuse.
func quote(v string) (string, bool) {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f {
			return "", false
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), true
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request, stream string) {
	grant, e := s.authorize(r.Context(), r, stream)
	if e == nil {
		e = checkType(r, typeSDP)
	}
	var body []byte
	if e == nil {
		body, e = s.readBody(w, r)
	}
	var sum offerSummary
	if e == nil {
		sum, e = checkOffer(body)
	}
	if e == nil && sum.candidates > s.cfg.MaxCandidates {
		e = refuse(http.StatusUnprocessableEntity, "too_many_candidates", "the offer has %d candidates; at most %d are accepted", sum.candidates, s.cfg.MaxCandidates)
	}
	if e != nil {
		s.fail(w, e)
		return
	}
	if ok, closing := s.reserve(); !ok {
		msg := "too many WHIP sessions; try again later"
		if closing {
			msg = "the server is shutting down"
		}
		s.fail(w, refuse(http.StatusServiceUnavailable, "busy", "%s", msg))
		return
	}
	se, answer, e := s.negotiate(r.Context(), grant, body, sum)
	if e != nil {
		s.release()
		s.fail(w, e)
		return
	}
	s.metrics.sessions.Inc()
	s.log.Info("WHIP publish started", "stream", stream, "session", se.id[:8], "remote", r.RemoteAddr, "opus", sum.hasOpus)
	go se.run() // owns the reservation from here

	h := w.Header()
	h.Set("Content-Type", typeSDP)
	h.Set("Location", r.URL.Path+"/"+se.id)
	h.Set("ETag", se.etag)
	h.Set("Accept-Patch", typeSDPFrag)
	s.setLinks(h, stream)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// negotiate applies the offer, answers it with the server's candidates
// gathered, starts the publish and registers the session. On error
// nothing is left behind.
func (s *Server) negotiate(ctx context.Context, g Grant, offer []byte, sum offerSummary) (*session, string, *httpError) {
	stream := g.Stream
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{ICEServers: s.cfg.ServerICEServers})
	if err != nil {
		return nil, "", refuse(http.StatusInternalServerError, "internal", "cannot create a peer connection: %v", err)
	}
	se := newSession(s, newID(), stream, pc)
	se.ufrag = sum.ufrag
	se.candidates = sum.candidates
	ok := false
	defer func() {
		if !ok {
			se.cancel(errors.New("negotiation failed"))
			_ = pc.Close()
		}
	}()
	pc.OnTrack(se.onTrack)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		se.log.Debug("connection state", "state", st.String())
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			se.cancel(fmt.Errorf("%w (%s)", ErrConnectionFailed, st))
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return nil, "", refuse(http.StatusBadRequest, "bad_offer", "cannot use the offer: %v", err)
	}
	se.preferH264()
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return nil, "", refuse(http.StatusUnprocessableEntity, "bad_offer", "cannot answer the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return nil, "", refuse(http.StatusInternalServerError, "internal", "cannot apply the answer: %v", err)
	}
	t := time.NewTimer(s.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C: // answer with the candidates gathered so far
	case <-ctx.Done():
		return nil, "", refuse(http.StatusServiceUnavailable, "cancelled", "request cancelled")
	case <-s.baseCtx.Done():
		return nil, "", refuse(http.StatusServiceUnavailable, "busy", "the server is shutting down")
	}
	local := pc.LocalDescription()
	if local == nil || answerVideo(local.SDP) == "" {
		return nil, "", refuse(http.StatusUnprocessableEntity, "no_video_codec",
			"none of the offered video formats can be received: the offer's video codecs are %s; accepted are %s", strings.Join(sum.videoCodecs, ", "), acceptedVideo)
	}
	pub, err := s.cfg.Publisher.StartPublish(g, func() { se.cancel(ErrStopped) })
	if errors.Is(err, ErrKeyRevoked) {
		return nil, "", refuse(http.StatusUnauthorized, "key_revoked", "stream key revoked or rotated while the offer was read")
	}
	if err != nil || pub == nil {
		return nil, "", refuse(http.StatusServiceUnavailable, "publish_refused", "the publish cannot start: %v", err)
	}
	se.pub = pub
	se.created = s.cfg.Now()
	if !s.register(se) {
		pub.End(ErrServerClosed)
		return nil, "", refuse(http.StatusServiceUnavailable, "busy", "the server is shutting down")
	}
	ok = true
	return se, local.SDP, nil
}

// preferH264 orders each video transceiver's formats, which pion keeps in
// the offer's order (Chromium and OBS offer AV1 and VP9 before H.264), so
// that the answer lists H.264 first (see videoRank): a sender sends the
// answer's first format it has.
func (se *session) preferH264() {
	for _, tr := range se.pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeVideo || tr.Receiver() == nil {
			continue
		}
		codecs := slices.Clone(tr.Receiver().GetParameters().Codecs)
		slices.SortStableFunc(codecs, func(a, b webrtc.RTPCodecParameters) int {
			return videoRank(a.MimeType) - videoRank(b.MimeType)
		})
		if err := tr.SetCodecPreferences(codecs); err != nil {
			se.log.Debug("order the answer's video formats", "err", err)
		}
	}
}

// session finds a live session of stream for PATCH and DELETE, after the
// key was checked.
func (s *Server) session(w http.ResponseWriter, r *http.Request, stream, id string) *session {
	if _, e := s.authorize(r.Context(), r, stream); e != nil {
		s.fail(w, e)
		return nil
	}
	se := s.lookup(id)
	if se == nil || se.stream != stream {
		s.fail(w, refuse(http.StatusNotFound, "no_session", "no such WHIP session (it ended, or never existed)"))
		return nil
	}
	return se
}

// handlePatch takes trickled candidates (RFC 8840 fragments). ICE
// restarts are not supported: RFC 9725 section 4.3.1 asks for 422 then.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, stream, id string) {
	se := s.session(w, r, stream, id)
	if se == nil {
		return
	}
	if e := checkType(r, typeSDPFrag); e != nil {
		s.fail(w, e)
		return
	}
	body, e := s.readBody(w, r)
	if e != nil {
		s.fail(w, e)
		return
	}
	switch m := r.Header.Get("If-Match"); {
	case m == "*":
		s.fail(w, refuse(http.StatusUnprocessableEntity, "ice_restart", "ICE restarts are not supported; DELETE this session and POST a new offer"))
		return
	case m != "" && m != se.etag:
		s.fail(w, refuse(http.StatusPreconditionFailed, "etag", "If-Match does not match this session's ETag"))
		return
	}
	frag, err := parseSDPFrag(body)
	if err != nil {
		s.fail(w, refuse(http.StatusBadRequest, "bad_sdpfrag", "malformed trickle-ice-sdpfrag: %v", err))
		return
	}
	if frag.ufrag != "" && frag.ufrag != se.ufrag {
		s.fail(w, refuse(http.StatusUnprocessableEntity, "ice_restart", "ICE restarts are not supported; DELETE this session and POST a new offer"))
		return
	}
	if !se.addCandidates(len(frag.candidates)) {
		s.fail(w, refuse(http.StatusUnprocessableEntity, "too_many_candidates", "more than %d remote candidates for one session", s.cfg.MaxCandidates))
		return
	}
	for _, c := range frag.candidates {
		init := webrtc.ICECandidateInit{Candidate: "candidate:" + c.value}
		if c.hasMid {
			mid := c.mid
			init.SDPMid = &mid
		} else {
			idx := c.mline
			init.SDPMLineIndex = &idx
		}
		if err := se.pc.AddICECandidate(init); err != nil {
			if se.ctx.Err() != nil {
				s.fail(w, refuse(http.StatusNotFound, "no_session", "the WHIP session has ended"))
				return
			}
			s.fail(w, refuse(http.StatusBadRequest, "bad_candidate", "candidate refused: %v", err))
			return
		}
	}
	w.Header().Set("ETag", se.etag)
	w.WriteHeader(http.StatusNoContent)
}

// handleDelete ends the session and answers once the publish is over.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, stream, id string) {
	se := s.session(w, r, stream, id)
	if se == nil {
		return
	}
	se.cancel(errDeleted)
	t := time.NewTimer(deleteWait)
	defer t.Stop()
	select {
	case <-se.done:
	case <-t.C:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusOK)
}
