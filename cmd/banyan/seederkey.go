package main

import (
	"context"
	"fmt"
	"io"

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
