package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/keyzone/keyzone/api/wire"
)

// Progress is told how many bytes of a transfer are done, and the total
// (-1 when the server did not say).
type Progress func(done, total int64)

// SaveSnapshot writes the zone's snapshot archive (GET
// /v1/cluster/snapshot) to w and returns its length. The client's timeout
// does not apply: a large zone takes as long as it takes, bounded by ctx.
// The archive is written as it arrives: check it (snapshot.Read) before
// trusting a file written from it.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer, progress Progress) (int64, error) {
	resp, err := c.stream(ctx, http.MethodGet, "/v1/cluster/snapshot", nil, -1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, &progressReader{r: resp.Body, total: resp.ContentLength, report: progress})
	if err != nil {
		return n, fmt.Errorf("keyzone: receive snapshot: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("keyzone: receive snapshot: got %d of %d bytes", n, resp.ContentLength)
	}
	return n, nil
}

// RestoreSnapshot uploads an archive made by SaveSnapshot (PUT
// /v1/cluster/snapshot): the zone's state is replaced by the archive's
// once the node has checked it. size is r's length (-1 if unknown).
func (c *Client) RestoreSnapshot(ctx context.Context, r io.Reader, size int64, progress Progress) (wire.SnapshotMeta, error) {
	resp, err := c.stream(ctx, http.MethodPut, "/v1/cluster/snapshot", &progressReader{r: r, total: size, report: progress}, size)
	if err != nil {
		return wire.SnapshotMeta{}, err
	}
	defer resp.Body.Close()
	var out wire.SnapshotMeta
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, fmt.Errorf("keyzone: restore snapshot: decode answer: %w", err)
	}
	return out, nil
}

// stream sends a request with a raw body and returns a 2xx answer unread.
func (c *Client) stream(ctx context.Context, method, path string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("keyzone: %w", err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("User-Agent", "keyzone-go-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keyzone: %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, apiError(resp, b)
	}
	return resp, nil
}

type progressReader struct {
	r      io.Reader
	done   int64
	total  int64
	report Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil && n > 0 {
		p.report(p.done, p.total)
	}
	return n, err
}
