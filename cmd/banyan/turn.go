package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/banyan-live/banyan/turnserver"
)

func runTurn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var addr, tlsAddr, cert, key, secret, realm, relayIP, level string
	var allowLoopback, allowPrivate bool
	var maxAlloc, maxConnsPerIP int
	var maxMbps float64
	var maxLife time.Duration
	c := newCommand("turn", "", "Runs the TURN relay alone. Credentials are short-lived and minted by the tracker with the\nsame --turn-secret (coturn REST convention: a coturn with use-auth-secret works too).")
	c.String(&addr, "turn", ":3478", "TURN listen address (UDP and TCP)")
	c.String(&tlsAddr, "turn-tls", ":5349", "TURN over TLS listen address (only with --cert and --key)")
	c.String(&cert, "cert", "", "TLS certificate file")
	c.String(&key, "key", "", "TLS key file")
	c.String(&secret, "turn-secret", "", "shared secret with the tracker (required)")
	c.String(&realm, "realm", "banyan", "TURN realm")
	c.String(&relayIP, "relay-ip", "", "public IP address advertised for relayed candidates")
	c.Bool(&allowLoopback, "allow-loopback", false, "allow relaying to loopback addresses (local testing only)")
	c.Bool(&allowPrivate, "allow-private", false, "allow relaying to private addresses (10/8, 172.16/12, 192.168/16, fc00::/7)")
	c.Int(&maxAlloc, "max-allocations", 32, "allocations per user")
	c.Int(&maxConnsPerIP, "max-conns-per-ip", turnserver.DefaultMaxConnsPerIP, "TCP/TLS control connections per client address (IPv6 by /64)")
	c.Float(&maxMbps, "max-mbps", 50, "relayed bandwidth per user, Mbit/s")
	c.Duration(&maxLife, "max-lifetime", 24*time.Hour, "longest an allocation may live")
	c.String(&level, "log-level", "info", "log level")
	if err := c.parse(args, stdout); err != nil {
		return err
	}
	if secret == "" {
		return usageError{"banyan turn: --turn-secret is required (the tracker's TURN secret)"}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	cfg := turnserver.Config{
		UDPAddr: addr, TCPAddr: addr, Realm: realm, Secret: []byte(secret), RelayIP: net.ParseIP(relayIP),
		AllowLoopback: allowLoopback, AllowPrivate: allowPrivate, MaxAllocationsPerUser: maxAlloc,
		MaxBandwidthBpsPerUser: int64(maxMbps * 1e6), MaxLifetime: maxLife, MaxConnsPerIP: maxConnsPerIP, Logger: log,
	}
	if cert != "" || key != "" {
		cfg.TLSAddr, cfg.CertFile, cfg.KeyFile = tlsAddr, cert, key
	}
	srv, err := turnserver.New(cfg)
	if err != nil {
		return fmt.Errorf("start TURN: %w", err)
	}
	log.Info("turn listening", "udp", srv.UDPAddr().String(), "tcp", srv.TCPAddr().String(), "relay_ip", srv.RelayIP().String())
	<-ctx.Done()
	return srv.Close()
}
