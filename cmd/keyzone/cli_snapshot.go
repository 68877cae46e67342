package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
	"github.com/keyzone/keyzone/snapshot"
)

func newSnapshotCommand(g *cliGlobal) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, inspect and restore snapshots of the zone's state",
		Long: `A snapshot is a gzip'd tar archive of the zone's state (keys stay wrapped
under the root key inside), its metadata (format, zone, root key id, Raft
index), a SHA256SUMS file and a MAC under a key derived from the root key.
Only a deployment started with the same root key can restore it, and only
into the zone it was taken in.`,
	}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotInspectCommand(g), newSnapshotRestoreCommand(g))
	return cmd
}

// snapshotSummary is what save, inspect and restore print.
type snapshotSummary struct {
	File string            `json:"file"`
	Size int64             `json:"size"`
	Meta wire.SnapshotMeta `json:"meta"`
}

func printSnapshot(w io.Writer, s snapshotSummary) {
	fmt.Fprintf(w, "File:\t%s\n", s.File)
	fmt.Fprintf(w, "Size:\t%s\n", humanBytes(s.Size))
	zone := s.Meta.Zone
	if zone == "" {
		zone = "(single zone)"
	}
	fmt.Fprintf(w, "Zone:\t%s\n", zone)
	fmt.Fprintf(w, "Taken on:\t%s at %s\n", s.Meta.NodeID, s.Meta.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "Raft index:\t%d (term %d)\n", s.Meta.Index, s.Meta.Term)
	fmt.Fprintf(w, "Keys:\t%d\n", s.Meta.Keys)
	fmt.Fprintf(w, "Root key:\t%s\n", s.Meta.RekID)
	fmt.Fprintf(w, "Format:\t%d (state format %d)\n", s.Meta.Format, s.Meta.StateFormat)
	fmt.Fprintf(w, "State SHA-256:\t%s\n", s.Meta.StateSHA256)
}

func wireMeta(m snapshot.Meta) wire.SnapshotMeta {
	return wire.SnapshotMeta{
		Format: m.Format, CreatedAt: m.CreatedAt, Zone: m.Zone, NodeID: m.NodeID, RekID: m.RekID,
		Index: m.Index, Term: m.Term, StateFormat: m.StateFormat, StateSize: m.StateSize,
		StateSHA256: m.StateSHA256, Keys: m.Keys,
	}
}

// checkArchive reads the archive at path and checks its layout and
// checksums (the MAC needs the root key: the node checks it).
func checkArchive(path string) (snapshot.Meta, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return snapshot.Meta{}, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return snapshot.Meta{}, 0, err
	}
	m, err := snapshot.Read(f, io.Discard, snapshot.ReadOptions{})
	if err != nil {
		return snapshot.Meta{}, 0, fmt.Errorf("%s: %w", path, err)
	}
	return m, st.Size(), nil
}

func newSnapshotSaveCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "save FILE",
		Short: "Save a consistent snapshot of the zone to FILE",
		Long: `Save a snapshot of the zone's state, as of a consistent read on its
leader, to FILE. The archive is written to FILE.part, checked, then renamed
to FILE; a progress bar shows on a terminal.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			path := args[0]
			part := path + ".part"
			f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			defer os.Remove(part)
			bar := newProgressBar(cmd, g, "saving")
			n, err := c.SaveSnapshot(cliContext(cmd), f, bar.update)
			bar.done()
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			meta, _, err := checkArchive(part)
			if err != nil {
				return fmt.Errorf("the snapshot received does not check out, not saved: %w", err)
			}
			if err := os.Rename(part, path); err != nil {
				return err
			}
			s := snapshotSummary{File: path, Size: n, Meta: wireMeta(meta)}
			return g.render(cmd, s, func(w io.Writer) {
				fmt.Fprintf(w, "Saved a snapshot of %s.\n", plural(meta.Keys, "key"))
				printSnapshot(w, s)
			})
		},
	}
}

func newSnapshotInspectCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Check a snapshot file's checksums and show what it holds (no node needed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "table" && g.output != "json" {
				return fmt.Errorf("--output %q: want table or json", g.output)
			}
			meta, size, err := checkArchive(args[0])
			if err != nil {
				return err
			}
			s := snapshotSummary{File: args[0], Size: size, Meta: wireMeta(meta)}
			return g.render(cmd, s, func(w io.Writer) { printSnapshot(w, s) })
		},
	}
}

func newSnapshotRestoreCommand(g *cliGlobal) *cobra.Command {
	return &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the zone's state with a snapshot file",
		Long: `Replace the zone's whole state with the snapshot in FILE. The file is
checked here first (layout and checksums), then by the node (its MAC under
the root key, the root key id and the zone). Keys created after the snapshot
are gone from the zone once it is restored; in a multi-zone deployment the
other zones take the restored state of this zone's keys.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.connect()
			if err != nil {
				return err
			}
			if _, _, err := checkArchive(args[0]); err != nil {
				return fmt.Errorf("not restoring: %w", err)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd, g, "restoring")
			meta, err := c.RestoreSnapshot(cliContext(cmd), f, st.Size(), bar.update)
			bar.done()
			if err != nil {
				return err
			}
			s := snapshotSummary{File: args[0], Size: st.Size(), Meta: meta}
			return g.render(cmd, s, func(w io.Writer) {
				fmt.Fprintf(w, "Restored the zone from %s: %s.\n", filepath.Base(args[0]), plural(meta.Keys, "key"))
				printSnapshot(w, s)
			})
		},
	}
}

// progressBar draws on stderr when it is a terminal and the output is a
// table; otherwise it stays silent, so scripts and -o json see no noise.
type progressBar struct {
	w     io.Writer
	label string
	last  time.Time
	shown bool
}

func newProgressBar(cmd *cobra.Command, g *cliGlobal, label string) *progressBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || g.output != "table" {
		return &progressBar{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &progressBar{}
	}
	return &progressBar{w: f, label: label}
}

func (p *progressBar) update(done, total int64) {
	if p.w == nil || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.shown = time.Now(), true
	if total <= 0 {
		fmt.Fprintf(p.w, "\r%s %s", p.label, humanBytes(done))
		return
	}
	const width = 30
	filled := int(done * width / total)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.w, "\r%s [%s] %s / %s %3d%%", p.label, bar, humanBytes(done), humanBytes(total), done*100/total)
}

func (p *progressBar) done() {
	if p.w != nil && p.shown {
		fmt.Fprintln(p.w)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
