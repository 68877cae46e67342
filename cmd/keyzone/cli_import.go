package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/client"
)

// Bounds of imported material, as the server enforces them; checked here
// too so that a wrong file is refused before anything is sent.
const (
	minImportMaterial = 16
	maxImportMaterial = 64
)

func newKeyImportCommand(g *cliGlobal) *cobra.Command {
	var (
		file string
		raw  bool
	)
	cmd := &cobra.Command{
		Use:   "import ID --material-file FILE [--raw]",
		Short: "Import key material into a key of origin external (sealed here, never sent in clear)",
		Long: `Import key material you generated (16 to 64 raw bytes, e.g. "openssl rand 32 > material.bin")
into a key created with --origin external. The command fetches fresh import
parameters, seals the material to their X25519 public key with HPKE on this
machine, and sends only the sealed form with the single-use import token.
Keyzone derives the version key from the material with a fresh random salt:
the first import enables the key, each later one adds a version.

With --raw the material is sent unsealed, protected by TLS alone, to a node
started with --allow-raw-import and TLS (--tls-cert-file); the address must
be https (the command refuses to send it to an http address), and --ca-file
or $KEYZONE_CA_FILE names the CA of the node's certificate when it is a
private one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			material, err := readMaterial(cmd, file)
			if err != nil {
				return err
			}
			defer clear(material)
			c, err := g.connect()
			if err != nil {
				return err
			}
			send := c.ImportMaterial
			if raw {
				send = c.ImportRawMaterial
			}
			k, err := send(cliContext(cmd), args[0], material)
			if errors.Is(err, client.ErrRawImportNeedsTLS) {
				return errors.New("--raw sends the material unsealed, so only to an https address, and this node's address is not one: use its https address, or leave --raw out and the material is sealed here before it is sent")
			}
			if err != nil {
				return err
			}
			return g.renderKey(cmd, k)
		},
	}
	cmd.Flags().StringVar(&file, "material-file", "", "file holding the raw key material (- for stdin)")
	cmd.Flags().BoolVar(&raw, "raw", false, "send the material unsealed over https, to a node started with --allow-raw-import")
	_ = cmd.MarkFlagRequired("material-file")
	return cmd
}

// readMaterial reads the key material file, refusing a size the server
// would refuse.
func readMaterial(cmd *cobra.Command, file string) ([]byte, error) {
	var r io.Reader = cmd.InOrStdin()
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxImportMaterial+1))
	if err != nil {
		return nil, fmt.Errorf("read key material: %w", err)
	}
	if len(b) < minImportMaterial || len(b) > maxImportMaterial {
		clear(b)
		if len(b) > maxImportMaterial {
			return nil, fmt.Errorf("key material file %s holds more than %d bytes; it must hold %d to %d raw bytes", file, maxImportMaterial, minImportMaterial, maxImportMaterial)
		}
		return nil, fmt.Errorf("key material file %s holds %d bytes; it must hold %d to %d raw bytes", file, len(b), minImportMaterial, maxImportMaterial)
	}
	return b, nil
}
