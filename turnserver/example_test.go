package turnserver_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/banyan-live/banyan/turnserver"
)

func ExampleCredentials() {
	secret := []byte("secret")
	user, pass := turnserver.Credentials(secret, "alice", time.Hour, time.Unix(1_700_000_000, 0))
	fmt.Println(user, pass)
	// Output: 1700003600:alice LLPLO4qjdVL2qZhwr3eImhn7J20=
}

// Example_up is how `banyan up` runs the relay next to the tracker: loopback peers allowed,
// and the tracker's welcome carries one TURN URL per transport (the UDP and TCP ports differ
// when --turn asks for port 0).
func Example_up() {
	var (
		turnAddr   = "127.0.0.1:0"               // --turn
		publicHost = "127.0.0.1"                 // --public-host
		secret     = []byte("kept-in-data-dir!") // --turn-secret, else store.Secret("turn-secret", 32)
		reg        = prometheus.NewRegistry()
		log        = slog.Default()
	)
	srv, err := turnserver.New(turnserver.Config{
		UDPAddr:       turnAddr,
		TCPAddr:       turnAddr,
		Secret:        secret,
		RelayIP:       net.ParseIP(publicHost), // nil for a host name: the listen IP, else 127.0.0.1
		AllowLoopback: true,                    // all-in-one: peers on this machine
		Logger:        log.With("component", "turn"),
		Registerer:    reg,
	})
	if err != nil {
		log.Error("cannot start TURN (--turn)", "err", err)

		return
	}
	defer srv.Close()

	// Per peer, in the welcome: credentials valid for the session, renewed on rejoin.
	user, pass := turnserver.Credentials(secret, "peer-id-from-tracker", 12*time.Hour, time.Now())
	urls := []string{
		"turn:" + net.JoinHostPort(publicHost, portOf(srv.UDPAddr())) + "?transport=udp",
		"turn:" + net.JoinHostPort(publicHost, portOf(srv.TCPAddr())) + "?transport=tcp",
	}
	_, _, _ = urls, user, pass
}

// portOf is the port of a listen address.
func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())

	return port
}

// Example_standalone is `banyan turn`: a public relay sharing the tracker's secret.
func Example_standalone() {
	ctx := context.Background() // the command's signal context
	srv, err := turnserver.New(turnserver.Config{
		UDPAddr:                ":3478",                      // --turn
		TCPAddr:                ":3478",                      // --turn
		TLSAddr:                ":5349",                      // --turn-tls, used with --turn-cert/--turn-key
		CertFile:               "",                           // --turn-cert
		KeyFile:                "",                           // --turn-key
		Realm:                  "banyan",                     // --realm
		Secret:                 []byte("the-tracker-secret"), // --turn-secret (required)
		RelayIP:                net.ParseIP("203.0.113.10"),  // --relay-ip (the public IP)
		RelayPortMin:           49152,                        // --relay-ports 49152-65535
		RelayPortMax:           65535,
		MaxAllocationsPerUser:  32,             // --max-allocations
		MaxBandwidthBpsPerUser: 50_000_000,     // --max-mbps 50
		MaxLifetime:            24 * time.Hour, // --max-lifetime
		Logger:                 slog.Default(),
		Registerer:             prometheus.DefaultRegisterer, // or the command's /metrics registry
	})
	if err != nil {
		return
	}
	<-ctx.Done()
	_ = srv.Close()
}
