package whip

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pion/ice/v4"
)

// Bounds on a trickle-ICE SDP fragment (RFC 8840).
const (
	maxFragLines      = 512
	maxFragLine       = 2048
	maxFragCandidates = 64
)

// sdpFrag is a parsed application/trickle-ice-sdpfrag body.
type sdpFrag struct {
	ufrag, pwd      string // the ICE credentials it names (empty: none)
	candidates      []fragCandidate
	endOfCandidates bool
}

// fragCandidate is one a=candidate line, without the "candidate:" prefix
// of the attribute value, with the media section it came in.
type fragCandidate struct {
	value  string
	mid    string
	mline  uint16
	hasMid bool
}

// parseSDPFrag parses a trickle-ICE fragment: a=ice-ufrag, a=ice-pwd,
// a=candidate, a=end-of-candidates, a=mid, m= lines; other attributes
// (a=ice-options, a=group) are allowed and ignored. Anything that is not
// an a= or m= line, an over-long line, too many lines or candidates, or a
// candidate that does not parse is an error.
func parseSDPFrag(b []byte) (*sdpFrag, error) {
	f := &sdpFrag{}
	lines := strings.Split(string(b), "\n")
	if len(lines) > maxFragLines {
		return nil, fmt.Errorf("fragment has more than %d lines", maxFragLines)
	}
	mline := -1
	mid, hasMid := "", false
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		if len(line) > maxFragLine {
			return nil, fmt.Errorf("line %d longer than %d bytes", i+1, maxFragLine)
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("line %d is not an SDP line", i+1)
		}
		val := line[2:]
		switch line[0] {
		case 'm':
			mline++
			if mline > maxMediaSections {
				return nil, errors.New("too many media sections")
			}
			mid, hasMid = "", false
			continue
		case 'a':
		default:
			return nil, fmt.Errorf("line %d: %q lines do not belong in a trickle fragment", i+1, line[:2])
		}
		key, v, _ := strings.Cut(val, ":")
		switch key {
		case "ice-ufrag":
			if err := checkICEToken(v, 4, 256); err != nil {
				return nil, fmt.Errorf("ice-ufrag: %w", err)
			}
			if f.ufrag != "" && f.ufrag != v {
				return nil, errors.New("two different ice-ufrag values")
			}
			f.ufrag = v
		case "ice-pwd":
			if err := checkICEToken(v, 22, 256); err != nil {
				return nil, fmt.Errorf("ice-pwd: %w", err)
			}
			if f.pwd != "" && f.pwd != v {
				return nil, errors.New("two different ice-pwd values")
			}
			f.pwd = v
		case "mid":
			if v == "" || len(v) > 64 {
				return nil, fmt.Errorf("line %d: bad mid", i+1)
			}
			mid, hasMid = v, true
		case "candidate":
			if len(f.candidates) >= maxFragCandidates {
				return nil, fmt.Errorf("more than %d candidates", maxFragCandidates)
			}
			if _, err := ice.UnmarshalCandidate(v); err != nil {
				if errors.Is(err, ice.ErrUnknownCandidateTyp) || errors.Is(err, ice.ErrDetermineNetworkType) {
					continue // well formed but not usable here; pion would drop it too
				}
				return nil, fmt.Errorf("line %d: bad candidate: %w", i+1, err)
			}
			c := fragCandidate{value: v, mid: mid, hasMid: hasMid}
			if mline > 0 {
				c.mline = uint16(mline)
			}
			f.candidates = append(f.candidates, c)
		case "end-of-candidates":
			f.endOfCandidates = true
		}
	}
	return f, nil
}

// checkICEToken checks an ice-ufrag or ice-pwd value: ice-char is
// ALPHA / DIGIT / "+" / "/" (RFC 8839), within the given lengths (the
// RFC's minimums; maximums generous for peers that exceed the RFC's 256).
func checkICEToken(v string, minLen, maxLen int) error {
	if len(v) < minLen || len(v) > maxLen {
		return fmt.Errorf("length %d outside %d..%d", len(v), minLen, maxLen)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
