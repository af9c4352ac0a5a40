package protocol

import (
	"errors"
	"strings"
)

// Moved answers a join or seeder_hello sent to a tracker that does not own
// the stream: URL is the owner's signaling websocket, and the client
// reconnects there. It is in-band because browsers do not follow HTTP
// redirects on a websocket upgrade. The tracker closes the connection
// after sending it.
type Moved struct {
	URL string `json:"url"`
}

func (m Moved) validate() error {
	if len(m.URL) > 1024 || !(strings.HasPrefix(m.URL, "ws://") || strings.HasPrefix(m.URL, "wss://")) {
		return errors.New("moved: url must be ws:// or wss://, at most 1024 bytes")
	}
	return nil
}
