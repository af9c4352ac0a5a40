package whip

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
)

// maxMediaSections bounds the m= lines of an offer. A WHIP publisher
// sends one video and at most one audio section.
const maxMediaSections = 8

// httpError is a refusal with its status, a message for the client and a
// short reason for metrics.
type httpError struct {
	status int
	reason string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func refuse(status int, reason, format string, args ...any) *httpError {
	return &httpError{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

// offerSummary is what checkOffer learnt.
type offerSummary struct {
	videoCodecs []string // encoding names of the first video section
	hasOpus     bool
	candidates  int
	ufrag       string // the offer's ICE ufrag (session level, or the first section's)
}

// checkOffer parses an SDP offer and refuses, with a status and a message
// the publisher can act on, what cannot become a publish here: malformed
// SDP (400), no media (422), data channels (422) or video without H.264
// (422). pion checks the transport (ICE, DTLS) when it applies the offer.
func checkOffer(raw []byte) (offerSummary, *httpError) {
	var sum offerSummary
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return sum, refuse(http.StatusBadRequest, "bad_sdp", "malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return sum, refuse(http.StatusUnprocessableEntity, "no_media", "the offer has no media sections: send one H.264 video section (and optionally Opus audio)")
	}
	if len(sd.MediaDescriptions) > maxMediaSections {
		return sum, refuse(http.StatusUnprocessableEntity, "too_many_media", "the offer has %d media sections; at most %d are accepted", len(sd.MediaDescriptions), maxMediaSections)
	}
	if v, ok := sd.Attribute("ice-ufrag"); ok {
		sum.ufrag = v
	}
	sawVideo := false
	for _, md := range sd.MediaDescriptions {
		for _, a := range md.Attributes {
			switch {
			case a.Key == "candidate":
				sum.candidates++
			case a.Key == "ice-ufrag" && sum.ufrag == "":
				sum.ufrag = a.Value
			}
		}
		switch md.MediaName.Media {
		case "video":
			names := encodingNames(md)
			if !sawVideo {
				sum.videoCodecs = names
			}
			sawVideo = true
		case "audio":
			if slices.Contains(encodingNames(md), "OPUS") {
				sum.hasOpus = true
			}
		case "application":
			return sum, refuse(http.StatusUnprocessableEntity, "data_channel", "data channels are not accepted by a WHIP ingest; send audio and video only")
		}
	}
	if !sawVideo {
		return sum, refuse(http.StatusUnprocessableEntity, "no_h264", "H.264 video is required: the offer has no video section")
	}
	if !slices.Contains(sum.videoCodecs, "H264") {
		have := strings.Join(sum.videoCodecs, ", ")
		if have == "" {
			have = "none"
		}
		return sum, refuse(http.StatusUnprocessableEntity, "no_h264", "H.264 video is required (packetization-mode 0 or 1); the offer's video codecs are: %s", have)
	}
	return sum, nil
}

// encodingNames lists a media section's codecs (upper case, no repeats).
func encodingNames(md *sdp.MediaDescription) []string {
	var out []string
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// "<pt> <name>/<rate>[/<channels>]"
		_, rest, ok := strings.Cut(a.Value, " ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		name = strings.ToUpper(strings.TrimSpace(name))
		if name != "" && len(name) <= 32 && !slices.Contains(out, name) && len(out) < 64 {
			out = append(out, name)
		}
	}
	return out
}

// answerHasH264 reports whether the answer kept a video section with an
// H.264 format (pion drops formats whose profile it cannot match).
func answerHasH264(raw string) bool {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(raw); err != nil {
		return false
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media == "video" && md.MediaName.Port.Value != 0 && slices.Contains(encodingNames(md), "H264") {
			return true
		}
	}
	return false
}
