package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/banyan-live/banyan/cluster"
	"github.com/banyan-live/banyan/protocol"
	"github.com/banyan-live/banyan/store/etcdstore"
)

// runSeederKey makes or revokes a seeder's own secret in the cluster's
// etcd. A seeder makes its own on its first start when etcd lets it;
// where etcd's roles let a seeder only read its own entries
// (docs/cluster.md), the operator makes it here, with the trackers'
// credentials. The secret never leaves etcd: the seeder reads it there.
func runSeederKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var e etcdOptions
	c := newCommand("seeder-key", "create|revoke ID",
		"Makes (create) or revokes a seeder's own secret in the cluster's etcd. The seeder proves its\n"+
			"--id to trackers with it, so one seeder cannot pose as another; after revoke, trackers refuse it.")
	e.register(c)
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return err
	}
	rest := c.fs.Args()
	if len(rest) != 2 || (rest[0] != "create" && rest[0] != "revoke") {
		return usageError{"banyan seeder-key: want create ID or revoke ID (see banyan seeder-key --help)"}
	}
	action, id := rest[0], rest[1]
	if !protocol.ValidSeederID(id) {
		return usageError{"banyan seeder-key: ID: 1-64 of a-z, 0-9, '_' and '-'"}
	}
	st, err := e.open("seeder-key")
	if err != nil {
		return err
	}
	defer st.Close()
	if action == "revoke" {
		if err := st.DeleteSeederKey(id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Seeder %q's key revoked: trackers refuse it until a new one is created.\n", id)
		return nil
	}
	if _, err := st.Secret(etcdstore.SeederKeyName(id), 32); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Seeder %q has its key in etcd; start it with --id %s.\n", id, id)
	return nil
}

// runEtcdRole makes the etcd role a tracker or a seeder needs
// (cluster.TrackerPermissions, cluster.SeederPermissions), so the
// permissions docs/cluster.md lists are applied by code the tests run,
// not copied by hand. Run it as etcd's root user.
func runEtcdRole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var e etcdOptions
	c := newCommand("etcd-role", "tracker|seeder ID",
		"Makes the etcd role banyan-tracker, or banyan-seeder-ID, with the permissions that role needs\n"+
			"under --etcd-prefix (run as etcd's root user). Then add a user and grant it the role:\n"+
			"  etcdctl user add banyan-seeder-eu1 && etcdctl user grant-role banyan-seeder-eu1 banyan-seeder-eu1")
	e.register(c)
	if err := c.parse(interleaveFlags(args), stdout); err != nil {
		return err
	}
	rest := c.fs.Args()
	var role string
	var perms func(prefix string) []cluster.Permission
	switch {
	case len(rest) == 1 && rest[0] == "tracker":
		role, perms = "banyan-tracker", cluster.TrackerPermissions
	case len(rest) == 2 && rest[0] == "seeder" && protocol.ValidSeederID(rest[1]):
		id := rest[1]
		role, perms = "banyan-seeder-"+id, func(p string) []cluster.Permission { return cluster.SeederPermissions(p, id) }
	default:
		return usageError{"banyan etcd-role: want tracker, or seeder ID (1-64 of a-z, 0-9, '_' and '-')"}
	}
	st, err := e.open("etcd-role")
	if err != nil {
		return err
	}
	defer st.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cluster.GrantRole(rctx, st.Client(), role, perms(st.Prefix())); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "etcd role %s is ready; grant it to the %s's etcd user.\n", role, rest[0])
	return nil
}
