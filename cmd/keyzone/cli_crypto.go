package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyzone/keyzone/api/wire"
)

func newEncryptCommand(g *cliGlobal) *cobra.Command {
	var (
		in       string
		ctxPairs []string
	)
	cmd := &cobra.Command{
		Use:   "encrypt KEY_ID",
		Short: "Encrypt stdin (or --in FILE) and print the base64 ciphertext",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := parseContextFlags("context", ctxPairs)
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			pt, err := readInput(cmd, in)
			if err != nil {
				return err
			}
			res, err := c.Encrypt(cliContext(cmd), args[0], wire.EncryptRequest{Plaintext: pt, EncryptionContext: ec})
			if err != nil {
				return err
			}
			return g.printCiphertext(cmd, res, res.Ciphertext)
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "read the plaintext from this file instead of stdin")
	cmd.Flags().StringArrayVar(&ctxPairs, "context", nil, "encryption context entry key=value (repeatable)")
	return cmd
}

func newDecryptCommand(g *cliGlobal) *cobra.Command {
	var (
		in, keyID string
		ctxPairs  []string
	)
	cmd := &cobra.Command{
		Use:   "decrypt",
		Short: "Decrypt a base64 ciphertext from stdin (or --in FILE) and print the raw plaintext",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := parseContextFlags("context", ctxPairs)
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			ct, err := readCiphertext(cmd, in)
			if err != nil {
				return err
			}
			req := wire.DecryptRequest{Ciphertext: ct, EncryptionContext: ec}
			var res wire.DecryptResponse
			if keyID != "" {
				res, err = c.DecryptWithKey(cliContext(cmd), keyID, req)
			} else {
				res, err = c.Decrypt(cliContext(cmd), req)
			}
			if err != nil {
				return err
			}
			if g.output == "json" {
				return g.render(cmd, res, nil)
			}
			_, err = cmd.OutOrStdout().Write(res.Plaintext)
			return err
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "read the base64 ciphertext from this file instead of stdin")
	cmd.Flags().StringVar(&keyID, "key-id", "", "also require the ciphertext to be this key's")
	cmd.Flags().StringArrayVar(&ctxPairs, "context", nil, "encryption context entry key=value (repeatable)")
	return cmd
}

func newGenerateDataKeyCommand(g *cliGlobal) *cobra.Command {
	var (
		req      wire.GenerateDataKeyRequest
		ctxPairs []string
	)
	cmd := &cobra.Command{
		Use:   "generate-data-key KEY_ID",
		Short: "Generate a data key wrapped under a KMS key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := parseContextFlags("context", ctxPairs)
			if err != nil {
				return err
			}
			if req.KeySize != 128 && req.KeySize != 256 {
				return fmt.Errorf("--key-size %d: want 128 or 256", req.KeySize)
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			req.EncryptionContext = ec
			res, err := c.GenerateDataKey(cliContext(cmd), args[0], req)
			if err != nil {
				return err
			}
			return g.render(cmd, res, func(w io.Writer) {
				fmt.Fprintf(w, "Key ID:\t%s\n", res.KeyID)
				fmt.Fprintf(w, "Key version:\t%d\n", res.KeyVersion)
				if res.Plaintext != nil {
					fmt.Fprintf(w, "Plaintext:\t%s\n", base64.StdEncoding.EncodeToString(res.Plaintext))
				}
				fmt.Fprintf(w, "Ciphertext:\t%s\n", base64.StdEncoding.EncodeToString(res.Ciphertext))
			})
		},
	}
	cmd.Flags().IntVar(&req.KeySize, "key-size", 256, "data key size in bits: 128 or 256")
	cmd.Flags().BoolVar(&req.WithoutPlaintext, "without-plaintext", false, "return only the wrapped data key")
	cmd.Flags().StringArrayVar(&ctxPairs, "context", nil, "encryption context entry key=value (repeatable)")
	return cmd
}

func newReEncryptCommand(g *cliGlobal) *cobra.Command {
	var (
		in, keyID       string
		req             wire.ReEncryptRequest
		ctxPairs, dstEC []string
	)
	cmd := &cobra.Command{
		Use:   "re-encrypt",
		Short: "Re-encrypt a base64 ciphertext from stdin under a key's current version",
		Long: "Re-encrypt a base64 ciphertext from stdin (or --in FILE) under the current version of\n" +
			"--destination-key-id (default: the ciphertext's own key) and print the new base64\n" +
			"ciphertext. The plaintext never leaves the server.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ec, err := parseContextFlags("context", ctxPairs)
			if err != nil {
				return err
			}
			dec, err := parseContextFlags("destination-context", dstEC)
			if err != nil {
				return err
			}
			c, err := g.connect()
			if err != nil {
				return err
			}
			ct, err := readCiphertext(cmd, in)
			if err != nil {
				return err
			}
			req.Ciphertext, req.EncryptionContext, req.DestinationEncryptionContext = ct, ec, dec
			var res wire.ReEncryptResponse
			if keyID != "" {
				res, err = c.ReEncryptWithKey(cliContext(cmd), keyID, req)
			} else {
				res, err = c.ReEncrypt(cliContext(cmd), req)
			}
			if err != nil {
				return err
			}
			return g.printCiphertext(cmd, res, res.Ciphertext)
		},
	}
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "read the base64 ciphertext from this file instead of stdin")
	f.StringVar(&keyID, "key-id", "", "also require the ciphertext to be this key's")
	f.StringVar(&req.DestinationKeyID, "destination-key-id", "", "key to re-encrypt under (default: the ciphertext's own key)")
	f.StringArrayVar(&ctxPairs, "context", nil, "encryption context of the ciphertext, key=value (repeatable)")
	f.StringArrayVar(&dstEC, "destination-context", nil, "encryption context of the new ciphertext, key=value (repeatable)")
	return cmd
}

// printCiphertext prints res as JSON with -o json, else the base64
// ciphertext and a newline.
func (g *cliGlobal) printCiphertext(cmd *cobra.Command, res any, ct []byte) error {
	if g.output == "json" {
		return g.render(cmd, res, nil)
	}
	_, err := fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(ct))
	return err
}

// readCiphertext reads a base64 ciphertext; surrounding whitespace and
// line breaks (as base64 tools wrap) are ignored.
func readCiphertext(cmd *cobra.Command, in string) ([]byte, error) {
	b, err := readInput(cmd, in)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("no ciphertext: pipe the base64 ciphertext to stdin or pass --in")
	}
	ct, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("ciphertext is not standard base64: %w", err)
	}
	return ct, nil
}
