package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Permission is one etcd role grant: Key alone, or the range [Key,
// RangeEnd) (a prefix when RangeEnd is clientv3.GetPrefixRangeEnd(Key)).
type Permission struct {
	Key, RangeEnd string
	Write         bool // read and write; else read only
}

func prefixPerm(key string, write bool) Permission {
	return Permission{Key: key, RangeEnd: clientv3.GetPrefixRangeEnd(key), Write: write}
}

// TrackerPermissions are what a tracker needs under prefix: everything.
func TrackerPermissions(prefix string) []Permission {
	return []Permission{prefixPerm(prefix, true)}
}

// SeederPermissions are what seeder id needs under prefix: it reads
// streams, hashed keys and meta (the admin token's hash, for /drain) and
// its own secret; it writes only its registry record, claims and epochs,
// and its signing seed (made on its first start). It cannot write a
// stream, a key, a secret but its seed, another seeder's record, or read
// another seeder's secrets, so a seeder's credentials do not make
// another seeder (docs/cluster.md).
func SeederPermissions(prefix, id string) []Permission {
	return []Permission{
		prefixPerm(prefix+"streams/", false),
		prefixPerm(prefix+"keys/", false),
		prefixPerm(prefix+"meta/", false),
		prefixPerm(claimsPrefix(prefix), true),
		prefixPerm(epochsPrefix(prefix), true),
		{Key: seedersPrefix(prefix) + id, Write: true},
		{Key: prefix + "secrets/seeder-key/" + id},
		{Key: prefix + "secrets/seeder-ed25519-seed/" + id, Write: true},
	}
}

// GrantRole makes etcd role name (if missing) and grants it perms. The
// client must be etcd's root user (or one with the root role).
func GrantRole(ctx context.Context, c *clientv3.Client, name string, perms []Permission) error {
	roles, err := c.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("list etcd roles: %w", err)
	}
	exists := false
	for _, r := range roles.Roles {
		exists = exists || r == name
	}
	if !exists {
		if _, err := c.RoleAdd(ctx, name); err != nil {
			return fmt.Errorf("add etcd role %s: %w", name, err)
		}
	}
	for _, p := range perms {
		t := clientv3.PermissionType(clientv3.PermRead)
		if p.Write {
			t = clientv3.PermissionType(clientv3.PermReadWrite)
		}
		if _, err := c.RoleGrantPermission(ctx, name, p.Key, p.RangeEnd, t); err != nil {
			return fmt.Errorf("grant %s on %s: %w", name, p.Key, err)
		}
	}
	return nil
}
