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

// acceptedVideo names the video formats the answer can take, for refusals
// the broadcaster reads (OBS shows the body of a failed WHIP POST once,
// instead of reconnecting in a loop as after a dropped connection).
const acceptedVideo = "H.264 (packetization-mode 0 or 1; baseline, main or high profile) or AV1 (main profile)"

// playableVideo lists the encoding names the seeder can package and
// viewers play, in the order the answer prefers them.
var playableVideo = []string{"H264", "AV1"}

// checkOffer parses an SDP offer and refuses, with a status and a message
// the publisher can act on, what cannot become a publish here: malformed
// SDP (400), no media (422), data channels (422) or video in none of the
// playable codecs (422, naming the offered and the accepted ones). pion
// checks the transport (ICE, DTLS) when it applies the offer.
func checkOffer(raw []byte) (offerSummary, *httpError) {
	var sum offerSummary
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(raw)); err != nil {
		return sum, refuse(http.StatusBadRequest, "bad_sdp", "malformed SDP offer: %v", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return sum, refuse(http.StatusUnprocessableEntity, "no_media", "the offer has no media sections: send one video section, "+acceptedVideo+", and optionally Opus audio")
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
		return sum, refuse(http.StatusUnprocessableEntity, "no_video_codec", "video is required, %s: the offer has no video section", acceptedVideo)
	}
	if !slices.ContainsFunc(sum.videoCodecs, func(n string) bool { return slices.Contains(playableVideo, n) }) {
		have := strings.Join(sum.videoCodecs, ", ")
		if have == "" {
			have = "none"
		}
		return sum, refuse(http.StatusUnprocessableEntity, "no_video_codec", "no offered video codec can be played: the offer's video codecs are %s; accepted are %s (set the encoder to H.264 or AV1)", have, acceptedVideo)
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

// answerVideo returns the playable codec the answer's video section
// prefers, "" when it kept none (pion drops formats whose profile it
// cannot match, such as AV1's high profile).
func answerVideo(raw string) string {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(raw); err != nil {
		return ""
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "video" || md.MediaName.Port.Value == 0 {
			continue
		}
		for _, n := range encodingNames(md) {
			if slices.Contains(playableVideo, n) {
				return n
			}
		}
	}
	return ""
}

// videoRank orders the answer's video formats: H.264 before AV1, and
// RTX and anything else after. H.264 comes first when both are offered
// because every player decodes it, in hardware (Safari and iOS decode AV1
// only on recent Apple silicon, many phones and older PCs not at all),
// and encoders spend less on it; a publisher that offers AV1 alone still
// gets AV1.
func videoRank(mime string) int {
	_, name, _ := strings.Cut(mime, "/")
	if i := slices.IndexFunc(playableVideo, func(n string) bool { return strings.EqualFold(n, name) }); i >= 0 {
		return i
	}
	return len(playableVideo)
}
