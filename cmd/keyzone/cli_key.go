package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/client"
)

func newKeyCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage KMS keys",
	}
	cmd.AddCommand(
		newKeyCreateCommand(g),
		newKeyListCommand(g),
		newKeyGetCommand(g),
		newKeyUpdateCommand(g),
		newKeyVersionsCommand(g),
		newKeyScheduleDeletionCommand(g),
		newKeyReplicaCommand(g, "add-replica", "Replicate a key to another zone (run against its primary zone)", (*client.Client).AddReplica),
		newKeyReplicaCommand(g, "remove-replica", "Stop replicating a key to a zone, which deletes its copy", (*client.Client).RemoveReplica),
		newKeyUpdatePrimaryCommand(g),
		newKeyImportCommand(g),
	)
	lifecycle := []struct {
		use, short string
		call       func(c *client.Client, ctx context.Context, id string, opts ...client.CallOption) (wire.Key, error)
	}{
		{"enable", "Enable a disabled key", (*client.Client).EnableKey},
		{"disable", "Disable a key: it refuses crypto until enabled", (*client.Client).DisableKey},
		{"protect", "Protect a key from deletion", (*client.Client).ProtectKey},
		{"unprotect", "Let a key be deleted again", (*client.Client).UnprotectKey},
		{"rotate", "Add a key version that becomes the encrypting one", (*client.Client).RotateKey},
		{"cancel-deletion", "Cancel a scheduled deletion (the key comes back disabled)", (*client.Client).CancelDeletion},
	}
	for _, l := range lifecycle {
		cmd.AddCommand(newKeyLifecycleCommand(g, l.use, l.short, l.call))
	}
	return cmd
}

func newKeyCreateCommand(g *cliGlobal) *cobra.Command {
	var (
		req    wire.CreateKeyRequest
		period time.Duration
		idem   string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if period < 0 {
				return errors.New("--rotation-period must not be negative")
			}
			if quiet && g.output == "json" {
				return errors.New("--quiet prints the id alone; -o json prints the key: give one")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			if period > 0 {
				req.RotationPolicy.RotationPeriod = period.String()
			}
			var opts []client.CallOption
			if idem != "" {
				opts = append(opts, client.IdempotencyKey(idem))
			}
			k, err := c.CreateKey(cliContext(cmd), req, opts...)
			if err != nil {
				return err
			}
			if quiet {
				_, err := fmt.Fprintln(cmd.OutOrStdout(), k.ID)
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "key name (required)")
	f.StringVar(&req.Description, "description", "", "free-form description")
	f.StringArrayVar(&req.Tags, "tag", nil, "tag (repeatable)")
	f.BoolVar(&req.Protected, "protected", false, "refuse deletion until unprotected")
	f.StringVar(&req.Origin, "origin", "", "keyzone (default: Keyzone generates the material) or external (import the material with keyzone key import)")
	f.DurationVar(&period, "rotation-period", 0, "rotate automatically this often (e.g. 720h); 0: never")
	f.StringArrayVar(&req.ReplicaZones, "replica-zone", nil, "zone to replicate the key to (repeatable)")
	f.StringVar(&idem, "idempotency-key", "", "makes a retry return the first result")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the new key's id (for scripts)")
	_ = cmd.MarkFlagRequired("name")
	return cmd
}

func newKeyListCommand(g *cliGlobal) *cobra.Command {
	var o client.ListKeysOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List keys, one page at a time",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			page, err := c.ListKeys(cliContext(cmd), o)
			if err != nil {
				return err
			}
			return g.render(cmd, page, func(w io.Writer) {
				fmt.Fprintln(w, "ID\tNAME\tSTATE\tVERSION\tPROTECTED")
				for _, k := range page.Keys {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%t\n", k.ID, k.Name, k.State, k.CurrentVersion, k.Protected)
				}
				if page.NextPageToken != "" {
					fmt.Fprintf(w, "\nmore: --page-token %s\n", page.NextPageToken)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "only keys with this name")
	f.StringVar(&o.Tag, "tag", "", "only keys with this tag")
	f.StringVar(&o.State, "state", "", "only keys in this state (enabled, disabled, pending_deletion, pending_import)")
	f.IntVar(&o.PageSize, "page-size", 0, "keys per page (server default 100, at most 1000)")
	f.StringVar(&o.PageToken, "page-token", "", "continue after a previous page")
	f.BoolVar(&o.Stale, "stale", false, "read the node's local state instead of the leader's")
	return cmd
}

func newKeyGetCommand(g *cliGlobal) *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			var opts []client.CallOption
			if stale {
				opts = append(opts, client.Stale())
			}
			k, err := c.GetKey(cliContext(cmd), args[0], opts...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "read the node's local state instead of the leader's")
	return cmd
}

func newKeyUpdateCommand(g *cliGlobal) *cobra.Command {
	var (
		name, description string
		tags              []string
		clearTags         bool
		period            time.Duration
		ifMatch           uint64
	)
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change a key's name, description, tags or rotation period",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			f := cmd.Flags()
			var req wire.UpdateKeyRequest
			if f.Changed("name") {
				req.Name = &name
			}
			if f.Changed("description") {
				req.Description = &description
			}
			switch {
			case clearTags && f.Changed("tag"):
				return errors.New("--clear-tags and --tag: give one")
			case clearTags:
				req.Tags = &[]string{}
			case f.Changed("tag"):
				req.Tags = &tags
			}
			if f.Changed("rotation-period") {
				if period < 0 {
					return errors.New("--rotation-period must not be negative")
				}
				req.RotationPolicy = &wire.RotationPolicySpec{}
				if period > 0 {
					req.RotationPolicy.RotationPeriod = period.String()
				}
			}
			if req == (wire.UpdateKeyRequest{}) {
				return errors.New("nothing to update: pass --name, --description, --tag, --clear-tags or --rotation-period")
			}
			k, err := c.UpdateKey(cliContext(cmd), args[0], req, ifMatchOption(ifMatch)...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "new name")
	f.StringVar(&description, "description", "", "new description")
	f.StringArrayVar(&tags, "tag", nil, "tag (repeatable; replaces all tags)")
	f.BoolVar(&clearTags, "clear-tags", false, "remove every tag")
	f.DurationVar(&period, "rotation-period", 0, "rotate automatically this often; 0 turns automatic rotation off")
	f.Uint64Var(&ifMatch, "if-match", 0, "fail unless the key is still at this revision")
	return cmd
}

func newKeyLifecycleCommand(g *cliGlobal, use, short string, call func(*client.Client, context.Context, string, ...client.CallOption) (wire.Key, error)) *cobra.Command {
	var (
		ifMatch uint64
		idem    string
	)
	cmd := &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			opts := ifMatchOption(ifMatch)
			if idem != "" {
				opts = append(opts, client.IdempotencyKey(idem))
			}
			k, err := call(c, cliContext(cmd), args[0], opts...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "fail unless the key is still at this revision")
	if use == "rotate" {
		cmd.Flags().StringVar(&idem, "idempotency-key", "", "makes a retry return the first result")
	}
	return cmd
}

func newKeyScheduleDeletionCommand(g *cliGlobal) *cobra.Command {
	var (
		window  time.Duration
		ifMatch uint64
	)
	cmd := &cobra.Command{
		Use:   "schedule-deletion ID",
		Short: "Schedule a key's deletion after a pending window",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if window < 0 {
				return errors.New("--pending-window must not be negative")
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			k, err := c.ScheduleDeletion(cliContext(cmd), args[0], window, ifMatchOption(ifMatch)...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().DurationVar(&window, "pending-window", 0, "delete after this long, e.g. 168h (default: the server's, 7 days)")
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "fail unless the key is still at this revision")
	return cmd
}

func newKeyReplicaCommand(g *cliGlobal, use, short string, call func(*client.Client, context.Context, string, string, ...client.CallOption) (wire.Key, error)) *cobra.Command {
	var ifMatch uint64
	cmd := &cobra.Command{
		Use:   use + " ID ZONE",
		Short: short,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			k, err := call(c, cliContext(cmd), args[0], args[1], ifMatchOption(ifMatch)...)
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().Uint64Var(&ifMatch, "if-match", 0, "fail unless the key is still at this revision")
	return cmd
}

func newKeyVersionsCommand(g *cliGlobal) *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "versions ID",
		Short: "List a key's versions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			var opts []client.CallOption
			if stale {
				opts = append(opts, client.Stale())
			}
			v, err := c.KeyVersions(cliContext(cmd), args[0], opts...)
			if err != nil {
				return err
			}
			return g.render(cmd, v, func(w io.Writer) {
				fmt.Fprintln(w, "VERSION\tSTATE\tCREATED\tCURRENT")
				for _, kv := range v.Versions {
					current := ""
					if kv.Number == v.CurrentVersion {
						current = "*"
					}
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", kv.Number, kv.State, cliTime(kv.CreatedAt), current)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "read the node's local state instead of the leader's")
	return cmd
}

func ifMatchOption(rev uint64) []client.CallOption {
	if rev == 0 {
		return nil
	}
	return []client.CallOption{client.IfMatch(rev)}
}

// renderKey prints one key as JSON or as a two-column table.
func (g *cliGlobal) renderKey(cmd *cobra.Command, k wire.Key) error {
	return g.render(cmd, k, func(w io.Writer) {
		rows := [][2]string{
			{"ID", k.ID},
			{"Name", k.Name},
			{"Description", k.Description},
			{"State", k.State},
			{"Protected", strconv.FormatBool(k.Protected)},
			{"Current version", strconv.FormatUint(uint64(k.CurrentVersion), 10)},
			{"Tags", strings.Join(k.Tags, ", ")},
			{"Rotation period", k.RotationPolicy.RotationPeriod},
		}
		if !k.RotationPolicy.NextRotationAt.IsZero() {
			rows = append(rows, [2]string{"Next rotation", cliTime(k.RotationPolicy.NextRotationAt)})
		}
		if !k.DeletionAt.IsZero() {
			rows = append(rows, [2]string{"Deletion at", cliTime(k.DeletionAt)})
		}
		rows = append(rows,
			[2]string{"Usage", k.Usage},
			[2]string{"Algorithm", k.Algorithm},
			[2]string{"Origin", k.Origin},
			[2]string{"Organization", k.Organization},
			[2]string{"Primary zone", k.PrimaryZone},
			[2]string{"Replica zones", strings.Join(k.ReplicaZones, ", ")},
		)
		if k.PendingVersion != 0 {
			rows = append(rows,
				[2]string{"Pending version", strconv.FormatUint(uint64(k.PendingVersion), 10)},
				[2]string{"Waiting for zones", strings.Join(k.PendingZones, ", ")},
			)
		}
		if k.ReplicaSeq != 0 {
			rows = append(rows, [2]string{"Replica of change seq", strconv.FormatUint(k.ReplicaSeq, 10)})
		}
		rows = append(rows,
			[2]string{"Created", cliTime(k.CreatedAt)},
			[2]string{"Updated", cliTime(k.UpdatedAt)},
			[2]string{"Revision", strconv.FormatUint(k.Revision, 10)},
		)
		for _, r := range rows {
			fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
		}
	})
}

func cliTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
