package main

import (
	"github.com/banyan-live/banyan/web"
)

// webConfig is what the web pages learn from the system: which streams
// exist (a watch page for a stream nobody created answers 404) and which
// are live, and over what (issue 21).
func (s *system) webConfig() web.Config {
	return web.Config{Stream: func(name string) web.StreamInfo {
		st, err := s.store.Stream(name)
		if err != nil || st.Revoked {
			return web.StreamInfo{}
		}
		proto, _, _, live := s.seed.Seeder().Info(name)
		_, advice := s.seed.Seeder().KeyframeInterval(name)
		return web.StreamInfo{Known: true, Live: live, Via: proto, Demo: s.opt.Demo && name == s.opt.DemoStream, Advice: advice}
	}}
}
